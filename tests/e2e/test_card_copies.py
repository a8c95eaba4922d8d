"""Every copy of a case's card, on every platform, follows the case: a 邻长 whose card went
out on Telegram and who later opened the web chat has the Telegram copy refreshed, although
the web chat (which holds no copy) delivers its rows first. The real app against the fake Bot
API and the web chat over HTTP; the Telegram dispatcher is run by the test, so which platform
looks at the outbox first is fixed (the web chat delivers inside its own requests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.handlers.telegram.api import TelegramApi
from bot.handlers.telegram.transport import telegram_dispatcher
from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_telegram_notify import api_act, case_id_of
from tests.e2e.test_telegram_story import buttons
from tests.e2e.test_webchat import Browser
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

LEADER_TG = 9001


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'copies.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    who = {"leader": holder_of(engine, "neighbor_leader", LIN1),
           "secretary": holder_of(engine, "secretary", LIN1[:12])}
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": who["leader"].person_id, "t": str(LEADER_TG)})
        resident = int(conn.execute(sa.text(
            "SELECT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE n.code = :c AND x.role = 'resident' ORDER BY x.id"), {"c": LIN1}).scalar())
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"),
                            web_stream_seconds=1.0, web_keepalive_seconds=0.1)
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, run_jobs=False)) as base:
            yield {"tg": tg, "engine": engine, "clock": clock, "who": who, "url": base,
                   "settings": settings, "resident": resident}


def telegram_pass(w: dict[str, Any]) -> None:
    """The Telegram dispatcher delivers everything it can, as the server's loop would."""
    tg: FakeTelegram = w["tg"]

    async def go() -> None:
        async with TelegramApi(token=tg.token, base=tg.base_url) as api:
            await telegram_dispatcher(engine=w["engine"], api=api, settings=w["settings"],
                                      clock=w["clock"], idle=0.05).pass_once()

    asyncio.run(go())


def now_of(tg: FakeTelegram, card: SentMessage) -> SentMessage:
    m = tg.message(card.chat_id, card.message_id)
    assert m is not None
    return m


def test_a_telegram_copy_is_refreshed_when_the_web_chat_delivers_first(
        world: dict[str, Any]) -> None:
    tg = world["tg"]
    resident = Browser(world["url"], world["resident"])
    assert resident.send("msg-000001", "三楼楼道灯坏了").status_code == 200
    telegram_pass(world)
    [card] = [m for m in tg.sent_to(LEADER_TG) if "楼道灯坏了" in (m.text or "")]
    assert "受理" in buttons(card)
    # Later the 邻长 opens the web chat too: now reachable there, with no copy there.
    leader = Browser(world["url"], world["who"]["leader"].person_id)
    # The village 书记 takes the case over on the dashboard: every copy must say so.
    api_act(world, "secretary", case_id_of(world, "楼道灯坏了"), "accept", version=1)
    # The 邻长 writes in the web chat: its request delivers the web chat's rows at once.
    assert leader.send("msg-000002", "帮助").status_code == 200
    telegram_pass(world)
    assert "已转交书记" in (now_of(tg, card).text or ""), now_of(tg, card).text
    assert not buttons(now_of(tg, card)), "no live buttons on a former holder's copy"
    with world["engine"].connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT platform, status FROM outbox WHERE kind = 'card_update'"
            " AND person_id = :p"), {"p": world["who"]["leader"].person_id}).all()
    assert rows and {tuple(r) for r in rows} == {("telegram", "sent")}
