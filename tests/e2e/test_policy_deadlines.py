"""A category's own time limit in working days, through Telegram: the real app against the
fake Bot API, the categories file imported at the console, the deadline on the fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.clock import FakeClock
from core.hierarchy.importer import import_files
from tests.e2e.test_telegram_story import msg, wait_for
from tests.fakes.telegram_api import FakeTelegram
from tests.support.demo_city import LIN1
from tests.support.telegram_world import demo_city, link_telegram, telegram_app

RESIDENT_TG, LEADER_TG, GROUP_LEADER_TG = 5101, 9101, 9102
# Friday 3 April 2026, 10:00 in Shanghai; Saturday to Monday are the 清明 holiday.
FRIDAY_BEFORE_QINGMING = datetime(2026, 4, 3, 2, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FakeTelegram, Any, FakeClock]]:
    clock = FakeClock(FRIDAY_BEFORE_QINGMING)
    url, engine = demo_city(tmp_path)
    # The town's categories file gives 公共设施 two working days to answer (中文 headers).
    cats = tmp_path / "类别.csv"
    cats.write_text("类别,责任部门,答复时限,办结时限\n公共设施,D01,2wd,5wd\n", encoding="utf-8")
    import_files(engine, [cats])
    link_telegram(engine, (("resident", LIN1, RESIDENT_TG), ("neighbor_leader", LIN1, LEADER_TG),
                           ("group_leader", LIN1[:-3], GROUP_LEADER_TG)))
    with telegram_app(engine, url, tmp_path, clock) as (tg, _base):
        yield tg, engine, clock


def texts(tg: FakeTelegram, uid: int) -> list[str]:
    return [m.text or "" for m in tg.sent_to(uid)]


def test_two_working_days_on_the_friday_before_a_holiday(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, clock = world
    msg(tg, RESIDENT_TG, text="小区门口的路灯坏了")
    # The resident is told the date and time it comes to, never "2wd": Wednesday 8 April
    # 17:30 (Tuesday 7th is the first working day after the holiday, Wednesday the second).
    receipt = wait_for(lambda: [t for t in texts(tg, RESIDENT_TG) if "编号" in t],
                       why="the receipt")[0]
    assert "04月08日 17:30前答复您" in receipt and "wd" not in receipt
    card = wait_for(lambda: [t for t in texts(tg, LEADER_TG) if "路灯" in t],
                    why="the card at the 邻长")[0]
    assert "04月08日 17:30" in card

    # Over the holiday and up to a minute before the close of Wednesday, the 邻长 keeps it.
    clock.advance(datetime(2026, 4, 8, 9, 29, tzinfo=UTC) - clock.now())
    wait_for(lambda: any("督办" in t or "催办" in t or "提醒" in t or "还剩" in t
                         for t in texts(tg, LEADER_TG)), why="a reminder before the deadline")
    assert not any("路灯" in t for t in texts(tg, GROUP_LEADER_TG))
    with engine.connect() as conn:
        holder_role = conn.execute(sa.text("SELECT holder_role FROM cases")).scalar_one()
    assert holder_role == "neighbor_leader"

    # Past 17:30 on Wednesday with no answer: up to the 组长.
    clock.advance(timedelta(minutes=2))
    wait_for(lambda: any("路灯" in t for t in texts(tg, GROUP_LEADER_TG)),
             why="escalation to the 组长 after the second working day")
    assert tg.too_many == []
