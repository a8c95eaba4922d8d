"""Telegram with a media store that cannot take files: the real app polling a fake Bot API.
An admin's spreadsheet and a resident's photo arrive while MEDIA_DIR refuses every write;
nothing stops, the admin is told, the report is a case, and the photo is fetched once the
store takes files again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_telegram_story import document, msg, wait_for
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.test_media_fetch import jpeg_with_gps
from tests.support.demo_city import LIN1, TOWN, holder_of, load_demo
from tests.support.disk import block, unblock
from tests.support.server import serve
from webhooks.app import create_app

RESIDENT_TG, LEADER_TG, ADMIN_TG = 5301, 9301, 9302


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[FakeTelegram, Any, str, Path]]:
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    for role, code, tg in (("resident", LIN1, RESIDENT_TG), ("neighbor_leader", LIN1, LEADER_TG),
                           ("admin", TOWN, ADMIN_TG)):
        who = holder_of(engine, role, code)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'telegram', :t, false)"),
                         {"p": who.person_id, "t": str(tg)})
    blocker = tmp_path / "disk"
    block(blocker)
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(blocker / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)) as base:
            yield tg, engine, base, blocker


def test_a_broken_store_stops_nothing_and_the_photo_arrives_after(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, base, blocker = world
    assert httpx.get(f"{base}/healthz").json()["media"] == "degraded"

    # The admin is waiting for a file; the file cannot be kept: told so, and out of the prompt.
    msg(tg, ADMIN_TG, text="/import")
    wait_for(lambda: any("CSV" in (m.text or "") for m in tg.sent_to(ADMIN_TG)),
             why="asked for the file")
    document(tg, ADMIN_TG, "members.csv", b"name,phone,role,node_code\n", None)
    told = wait_for(lambda: [m for m in tg.sent_to(ADMIN_TG) if "已退出" in (m.text or "")],
                    why="the admin told the step did not go through")
    assert told
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM conversation")).scalar_one() == 0

    # Updates keep flowing: the resident's photo report is a case, the photo waits.
    tg.add_file("AgADbroken1", jpeg_with_gps(), file_path="photos/pb1.jpg")
    msg(tg, RESIDENT_TG, caption="井盖松了", photo=[{
        "file_id": "AgADbroken1", "file_unique_id": "pb1", "width": 64, "height": 48,
        "file_size": 1000}])
    wait_for(lambda: any("井盖松了" in (m.text or "") for m in tg.sent_to(LEADER_TG)),
             why="the case card at the 邻长")

    def statuses() -> list[str]:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT fetch_status FROM case_attachment")).scalars())

    assert statuses() == ["pending"]

    # The disk is back: health says so, and the fetcher keeps the photo.
    unblock(blocker)
    assert httpx.get(f"{base}/healthz").json()["media"] == "ok"
    wait_for(lambda: statuses() == ["stored"], why="the photo fetched after the store healed")
