"""Files people sent are fetched after the case is filed: stored, thumbnailed, or refused."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound, Media
from bot.media_fetch import fetch_pending
from core.clock import FakeClock
from core.media import MediaStore
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo


def jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    gps = {1: "N", 2: (33.0, 50.0, 0.0), 3: "E", 4: (115.0, 47.0, 0.0)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


FILES = {"good": jpeg_with_gps(), "garbage": b"<html>not a photo</html>"}


async def fake_download(file_ref: str, size: int | None) -> bytes:
    """Plays the platform: serves registered files, fails on anything else like a network."""
    if file_ref not in FILES:
        raise ConnectionError("network unreachable")
    return FILES[file_ref]


@pytest.fixture
def setup(engine: Engine, tmp_path: Path, clock: FakeClock) -> tuple[Engine, Settings, int]:
    load_demo(engine)
    settings = Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', '4242', false)"),
                     {"p": resident.person_id})
    inbound = Inbound(platform="telegram", update_id="m1", chat_id="4242", sender_id="4242",
                      received_at=clock.now(), text="路面塌了一个坑",
                      media=(Media("photo", file_ref="good"), Media("photo", file_ref="garbage"),
                             Media("photo", file_ref="offline")))
    assert process(engine, inbound=inbound, payload={}, clock=clock, settings=settings)
    return engine, settings, resident.person_id


def test_photos_are_stored_refused_or_retried(setup, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    engine, settings, resident_id = setup
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one() == 1
        statuses = conn.execute(sa.text(
            "SELECT fetch_status FROM case_attachment ORDER BY id")).scalars().all()
    assert statuses == ["pending"] * 3, "the case is filed before any download"

    result = asyncio.run(fetch_pending(engine, platform="telegram", download=fake_download,
                                       settings=settings, clock=clock))
    assert (result.stored, result.rejected, result.failed) == (1, 1, 1)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT file_ref, fetch_status, stored_ref, thumb_ref, exif_latitude, exif_longitude"
            " FROM case_attachment ORDER BY id")).all()
        told = conn.execute(sa.text(
            "SELECT text FROM outbox WHERE kind = 'media_rejected' AND person_id = :p"),
            {"p": resident_id}).scalars().all()
    good, garbage, offline = rows
    assert good[1] == "stored" and good[2] and good[3]
    assert good[4] == pytest.approx(33 + 50 / 60) and good[5] == pytest.approx(115 + 47 / 60)
    store = MediaStore(Path(settings.media_dir))
    kept = Image.open(io.BytesIO(store.open(good[2])))
    assert not kept.getexif(), "GPS and EXIF are stripped from the kept file"
    assert garbage[1] == "rejected" and garbage[2] is None
    assert len(told) == 1 and "文字内容已收到" in told[0]
    assert offline[1] == "pending", "a network failure is retried on the next pass"

    # The next pass only tries what is still pending.
    again = asyncio.run(fetch_pending(engine, platform="telegram", download=fake_download,
                                      settings=settings, clock=clock))
    assert (again.stored, again.rejected, again.failed) == (0, 0, 1)
