"""Fetch the files people sent from their platform into the media store, after the fact.

A report is filed the moment it arrives (with the platform's file id); downloading, checking
and thumbnailing happen here, so a slow platform never delays a case or a webhook's 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.flows.refusals import sentence
from core.cases.model import ATTACHMENTS, CASES
from core.clock import Clock
from core.db import write_session
from core.errors import MediaRejected, MediaStoreUnavailable
from core.media import MediaStore, check_media, max_bytes_for, process_image
from core.outbox import Draft, enqueue
from core.settings import Settings

log = logging.getLogger(__name__)

# file_ref, known size → bytes; raises MediaRejected for a file that is refused up front.
Download = Callable[[str, int | None], Awaitable[bytes]]
MEDIA_KIND = {"voice": "voice", "video": "video", "file": "document"}


@dataclass
class FetchResult:
    stored: int = 0
    rejected: int = 0
    failed: int = 0


def _pending(engine: Engine, platform: str, limit: int) -> list[tuple[int, int, str, str,
                                                                     int | None, int | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ATTACHMENTS.c.id, ATTACHMENTS.c.case_id, ATTACHMENTS.c.kind,
                      ATTACHMENTS.c.file_ref, ATTACHMENTS.c.size, ATTACHMENTS.c.added_by)
            .where(ATTACHMENTS.c.fetch_status == "pending", ATTACHMENTS.c.platform == platform)
            .order_by(ATTACHMENTS.c.id).limit(limit)
        ).all()
    return [tuple(r) for r in rows]


def store_bytes(data: bytes, *, kind: str, store: MediaStore,
                settings: Settings) -> dict[str, object]:
    """Check and keep one file; the columns to set on its attachment row."""
    if kind == "photo":
        img = process_image(data, max_bytes=settings.max_photo_bytes,
                            max_pixels=settings.max_image_pixels)
        values: dict[str, object] = {
            "stored_ref": store.put(img.image, img.suffix),
            "thumb_ref": store.put(img.thumbnail, "jpg"), "mime": img.mime,
            "size": len(img.image),
        }
        if img.gps is not None:
            values["exif_latitude"], values["exif_longitude"] = img.gps
        return values
    media_kind = MEDIA_KIND.get(kind, "document")
    info = check_media(data, kind=media_kind, max_bytes=max_bytes_for(settings, media_kind))
    return {"stored_ref": store.put(data, info.suffix), "mime": info.mime, "size": info.size}


async def fetch_pending(engine: Engine, *, platform: str, download: Download,
                        settings: Settings, clock: Clock, limit: int = 20) -> FetchResult:
    """Fetch up to `limit` pending attachments of one platform; a refused file is marked and
    its sender told, a network failure leaves it pending for the next pass."""
    store = MediaStore.from_settings(settings)
    result = FetchResult()
    pending = await asyncio.to_thread(_pending, engine, platform, limit)
    problem = await asyncio.to_thread(store.probe) if pending else None
    if problem is not None:
        # The platform keeps the files: they stay pending, and are fetched once the store
        # takes files again (/healthz and /metrics say it is degraded meanwhile).
        log.error("media store degraded (%s): %d %s file(s) wait", problem, len(pending),
                  platform)
        result.failed = len(pending)
        return result
    for att_id, case_id, kind, file_ref, size, added_by in pending:
        try:
            data = await download(file_ref, size)
            values = await asyncio.to_thread(store_bytes, data, kind=kind, store=store,
                                             settings=settings)
            values["fetch_status"] = "stored"
            result.stored += 1
        except MediaRejected as exc:
            log.warning("attachment %s refused: %s", att_id, exc.reason)
            values = {"fetch_status": "rejected", "fetch_error": exc.reason}
            result.rejected += 1
            await asyncio.to_thread(_tell_sender, engine, att_id, case_id, added_by, sentence(exc),
                                    clock)
        except MediaStoreUnavailable as exc:  # the disk gave out during the pass
            log.error("attachment %s not stored: %s", att_id, exc.reason)
            result.failed += 1
            break
        except Exception as exc:  # the platform or the network: try again next pass
            log.warning("attachment %s not fetched yet: %s", att_id, exc)
            result.failed += 1
            continue
        await asyncio.to_thread(_update, engine, att_id, values)
    return result


def _update(engine: Engine, att_id: int, values: dict[str, object]) -> None:
    with write_session(engine) as s:
        s.execute(sa.update(ATTACHMENTS).where(ATTACHMENTS.c.id == att_id,
                                               ATTACHMENTS.c.fetch_status == "pending")
                  .values(**values))


def _tell_sender(engine: Engine, att_id: int, case_id: int, person_id: int | None, why: str,
                 clock: Clock) -> None:
    if person_id is None:
        return
    with write_session(engine) as s:
        exists = s.execute(sa.select(CASES.c.id).where(CASES.c.id == case_id)).first()
        if exists is None:
            return
        enqueue(s, draft=Draft(
            text=f"您在工单#{case_id}中发送的文件未能保存：{why}。文字内容已收到，不受影响。",
            kind="media_rejected", dedupe_key=f"media-rejected:{att_id}", person_id=person_id,
            case_id=case_id,
        ), now=clock.now())


async def run_fetcher(engine: Engine, *, platform: str, download: Download, settings: Settings,
                      clock: Clock, stop: asyncio.Event, interval: float = 2.0) -> None:
    """Fetch pending files until `stop` is set (a lifespan task)."""
    while not stop.is_set():
        try:
            r = await fetch_pending(engine, platform=platform, download=download,
                                    settings=settings, clock=clock)
            busy = r.stored + r.rejected > 0
        except Exception:
            log.exception("media fetcher for %s failed; retrying", platform)
            busy = False
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
