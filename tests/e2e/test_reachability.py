"""Who can be reached, through the real app in polling mode and the fake Bot API: a person is
unreachable only when no platform this deployment runs reaches them, and writing again makes
them reachable and releases what waited for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_telegram_story import (
    GROUP_LEADER_TG,
    LEADER_TG,
    RESIDENT_TG,
    buttons,
    msg,
    press,
    wait_for,
)
from tests.fakes.telegram_api import FakeTelegram
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def identity(engine: Any, person_id: int, platform: str, external_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, :pl, :t, false)"),
                     {"p": person_id, "pl": platform, "t": external_id})


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[FakeTelegram, Any]]:
    """A Telegram-only deployment (no WeChat, no WeCom configured)."""
    url = f"sqlite:///{tmp_path / 'reach.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    identity(engine, leader.person_id, "telegram", str(LEADER_TG))
    identity(engine, holder_of(engine, "group_leader", LIN1[:-3]).person_id, "telegram",
             str(GROUP_LEADER_TG))
    identity(engine, holder_of(engine, "resident", LIN1).person_id, "telegram",
             str(RESIDENT_TG))
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)):
            yield tg, engine


def rows(engine: Any, kind: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT status, attempts, last_error FROM outbox WHERE kind = :k ORDER BY id"),
            {"k": kind}))


def test_a_blocked_leader_whose_other_ids_are_on_platforms_not_run_is_unreachable_at_once(
        world: tuple[FakeTelegram, Any]) -> None:
    tg, engine = world
    leader = holder_of(engine, "neighbor_leader", LIN1)
    # Ids on WeChat and WeCom, which this deployment does not run: they reach nobody.
    identity(engine, leader.person_id, "wechat", "o_leader")
    identity(engine, leader.person_id, "wecom", "lin1")
    tg.block(LEADER_TG)
    msg(tg, RESIDENT_TG, text="电梯坏了，老人下不了楼")
    told = wait_for(lambda: [m for m in tg.sent_to(GROUP_LEADER_TG)
                             if "无法通过聊天联系" in (m.text or "")],
                    why="the 组长 told the 邻长 cannot be reached")
    assert told
    [card] = wait_for(lambda: [r for r in rows(engine, "new_case") if r.status == "dead"],
                      why="the card settled, not waiting at 0 attempts")
    assert card.last_error.startswith("unreachable")


def test_a_resident_who_unblocks_and_writes_again_gets_the_waiting_question(
        world: tuple[FakeTelegram, Any]) -> None:
    tg, engine = world
    msg(tg, RESIDENT_TG, text="楼道灯坏了三天了")
    card = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if "楼道灯" in (m.text or "")],
                    why="the card at the 邻长")[0]
    press(tg, LEADER_TG, card, buttons(card)["受理"])
    edited = wait_for(lambda: [e for e in tg.edits if "已解决" in str(e.get("reply_markup"))],
                      why="the card with 已解决")[-1]
    resolve = {b["text"]: b["callback_data"]
               for row in edited["reply_markup"]["inline_keyboard"] for b in row}["已解决"]
    tg.block(RESIDENT_TG)  # the resident blocked the bot meanwhile
    press(tg, LEADER_TG, card, resolve)
    wait_for(lambda: [r for r in rows(engine, "resolved") if r.status == "dead"],
             why="the fixed? question given up: nobody can reach the resident")
    assert not [m for m in tg.sent_to(RESIDENT_TG) if "★" in str(m.reply_markup)]

    tg.unblock(RESIDENT_TG)
    msg(tg, RESIDENT_TG, text="我回来了")
    asked = wait_for(lambda: [m for m in tg.sent_to(RESIDENT_TG) if "★" in str(m.reply_markup)],
                     why="the waiting fixed? question goes out")
    assert asked
    with engine.connect() as conn:
        flag = conn.execute(sa.text("SELECT unreachable FROM chat_identity WHERE platform ="
                                    " 'telegram' AND external_id = :t"),
                            {"t": str(RESIDENT_TG)}).scalar_one()
    assert not flag
    # Marked sent right after Telegram's answer (the fake shows the message a moment before).
    wait_for(lambda: [r.status for r in rows(engine, "resolved")] == ["sent"],
             why="the released question marked sent")


def test_a_voice_note_reaches_the_leader_as_a_voice_message(
        world: tuple[FakeTelegram, Any]) -> None:
    tg, _engine = world
    msg(tg, RESIDENT_TG, text="楼道灯坏了三天了")
    wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if "楼道灯" in (m.text or "")],
             why="the card at the 邻长")
    msg(tg, RESIDENT_TG, voice={"file_id": "AwADvoice9", "file_unique_id": "v9",
                                "duration": 4, "mime_type": "audio/ogg", "file_size": 9000})
    [voice] = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if m.method == "sendvoice"],
                       why="the voice note forwarded")
    assert voice.media is not None and voice.media["file_id"] == "AwADvoice9"
    assert "工单#" in (voice.text or "")
