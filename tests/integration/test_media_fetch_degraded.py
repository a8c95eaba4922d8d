"""Telegram's files wait on the platform while our media store cannot take them, and are
fetched once it can: nothing is downloaded into a broken disk, nothing is marked lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound, Media
from bot.media_fetch import fetch_pending
from core.clock import FakeClock
from core.settings import Settings
from tests.integration.test_media_fetch import FILES
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.disk import block, unblock


def test_files_wait_while_the_store_is_broken_and_are_fetched_after(
        engine: Engine, tmp_path: Path, clock: FakeClock) -> None:
    load_demo(engine)
    blocker = tmp_path / "disk"
    block(blocker)  # MEDIA_DIR under a regular file: no write gets in, not even root's
    settings = Settings(_env_file=None, media_dir=str(blocker / "media"))  # type: ignore[call-arg]
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', '4343', false)"),
                     {"p": resident.person_id})
    inbound = Inbound(platform="telegram", update_id="d1", chat_id="4343", sender_id="4343",
                      received_at=clock.now(), text="井盖松了",
                      media=(Media("photo", file_ref="good"),))
    assert process(engine, inbound=inbound, payload={}, clock=clock, settings=settings)
    asked: list[str] = []

    async def download(file_ref: str, size: int | None) -> bytes:
        asked.append(file_ref)
        return FILES[file_ref]

    def status() -> list[tuple[str, str | None]]:
        with engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(sa.text(
                "SELECT fetch_status, stored_ref FROM case_attachment"))]

    for _ in range(2):
        r = asyncio.run(fetch_pending(engine, platform="telegram", download=download,
                                      settings=settings, clock=clock))
        assert (r.stored, r.rejected, r.failed) == (0, 0, 1)
    assert asked == [], "nothing is downloaded while the store cannot keep it"
    assert status() == [("pending", None)]
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM outbox WHERE kind = 'media_rejected'")).scalar_one() == 0

    unblock(blocker)
    r = asyncio.run(fetch_pending(engine, platform="telegram", download=download,
                                  settings=settings, clock=clock))
    assert r.stored == 1 and asked == ["good"]
    (fetch_status, ref), = status()
    assert fetch_status == "stored" and ref
