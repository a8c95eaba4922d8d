"""Stand-ins and 常用答复 through Telegram: the real app against the fake Bot API, the sweep on
the fake clock. A 邻长 away for three days: new reports reach the 组长 with 代… on the card,
no missed deadline falls on the 邻长, /back brings the cases back. A categorised case's card
carries the category's ready answers; pressing one and 按此发送 sends it to the resident."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.clock import FakeClock
from core.hierarchy.importer import import_files
from tests.e2e.test_telegram_story import buttons, msg, press, wait_for
from tests.fakes.telegram_api import FakeTelegram
from tests.support.demo_city import LIN1, holder_of
from tests.support.telegram_world import demo_city, link_telegram, telegram_app

RESIDENT_TG, LEADER_TG, GROUP_LEADER_TG = 5301, 9301, 9302
# Monday 23 November 2026, 10:00 in Shanghai.
MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
READY = "已安排维修人员，今天之内到场处理"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FakeTelegram, Any, FakeClock]]:
    clock = FakeClock(MONDAY)
    url, engine = demo_city(tmp_path)
    cats = tmp_path / "类别.csv"
    cats.write_text(f"类别,责任部门,常用答复\n公共设施,D01,{READY}|已报市政所，三个工作日内修好\n",
                    encoding="utf-8")
    import_files(engine, [cats])
    link_telegram(engine, (("resident", LIN1, RESIDENT_TG), ("neighbor_leader", LIN1, LEADER_TG),
                           ("group_leader", LIN1[:-3], GROUP_LEADER_TG)))
    with telegram_app(engine, url, tmp_path, clock) as (tg, _base):
        yield tg, engine, clock


def texts(tg: FakeTelegram, uid: int) -> list[str]:
    return [m.text or "" for m in tg.sent_to(uid)]


def escalations(engine: Any) -> int:
    with engine.connect() as conn:  # a fresh read each time: SQLite keeps a reader's snapshot
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM case_event WHERE kind = 'escalated'")).scalar_one())


def command(tg: FakeTelegram, uid: int, text: str) -> None:
    name = text.split()[0]
    msg(tg, uid, text=text, entities=[{"type": "bot_command", "offset": 0, "length": len(name)}])


def test_a_leader_away_for_three_days(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, clock = world
    leader = holder_of(engine, "neighbor_leader", LIN1)
    command(tg, LEADER_TG, "/away 3d")
    wait_for(lambda: [t for t in texts(tg, LEADER_TG) if "已登记" in t and "11月26日" in t],
             why="the absence recorded")

    msg(tg, RESIDENT_TG, text="楼道里的灯不亮了")
    card = wait_for(lambda: [t for t in texts(tg, GROUP_LEADER_TG) if "灯不亮" in t],
                    why="the card at the 组长")[0]
    assert f"代{leader.name}" in card, card
    assert not any("灯不亮" in t for t in texts(tg, LEADER_TG))

    # The deadline passes with the 组长; nothing is missed by the 邻长.
    clock.advance(timedelta(hours=5))
    wait_for(lambda: escalations(engine) > 0, why="the 组长's deadline ran out")
    with engine.connect() as conn:
        froms = conn.execute(sa.text(
            "SELECT holder_id, role FROM case_event WHERE kind = 'escalated'")).all()
    assert all(role != "neighbor_leader" for _, role in froms), froms

    clock.advance(timedelta(minutes=15))
    msg(tg, RESIDENT_TG, text="单元门坏了关不上")
    wait_for(lambda: [t for t in texts(tg, GROUP_LEADER_TG) if "单元门" in t], why="2nd card")
    command(tg, LEADER_TG, "/back")
    wait_for(lambda: [t for t in texts(tg, LEADER_TG) if "已回来" in t], why="/back")
    # The case the 组长 still held comes back to the 邻长, and so does every new one.
    wait_for(lambda: [t for t in texts(tg, LEADER_TG) if "单元门" in t], why="handed back")
    clock.advance(timedelta(minutes=15))
    msg(tg, RESIDENT_TG, text="路边井盖松了")
    wait_for(lambda: [t for t in texts(tg, LEADER_TG) if "井盖" in t], why="after /back")
    assert tg.too_many == []


def test_canned_reply_buttons_send_the_chosen_text(world) -> None:  # type: ignore[no-untyped-def]
    tg, _, _ = world
    msg(tg, RESIDENT_TG, text="小区门口的路灯坏了")
    card = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if "路灯" in (m.text or "")
                             and m.reply_markup], why="the card at the 邻长")[0]
    ready = [label for label in buttons(card) if label.startswith("💬")]
    assert len(ready) == 2 and ready[0].startswith("💬已安排维修人员"), buttons(card)
    press(tg, LEADER_TG, card, buttons(card)[ready[0]])
    prompt = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if READY in (m.text or "")
                               and m.reply_markup], why="the prompt with the whole answer")[0]
    press(tg, LEADER_TG, prompt, buttons(prompt)["按此发送"])
    wait_for(lambda: [t for t in texts(tg, RESIDENT_TG) if READY in t],
             why="the ready answer at the resident")
