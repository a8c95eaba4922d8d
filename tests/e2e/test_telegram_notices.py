"""A 书记 sends a notice to the 邻长 of their village with /notice on Telegram: the real app in
polling mode against the fake Bot API, the sweep on the fake clock. Some confirm (button and
typed), one has blocked the bot, the rest are re-pinged once, and at the deadline each 组长
gets one list of their 邻长 who have not confirmed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_telegram_story import buttons, msg, press, wait_for
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.support.demo_city import VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

SECRETARY_TG = 9400


def _bind(engine: Any, person_id: int, tg: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": person_id, "t": str(tg)})


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    secretary = holder_of(engine, "secretary", VILLAGE1)
    _bind(engine, secretary.person_id, SECRETARY_TG)
    with engine.connect() as conn:
        leaders = conn.execute(sa.text(
            "SELECT DISTINCT x.person_id, p.name, g.id FROM post x JOIN node n ON n.id = x.node_id"
            " JOIN node g ON g.id = n.parent_id JOIN person p ON p.id = x.person_id"
            " WHERE x.role = 'neighbor_leader' AND n.path LIKE"
            " (SELECT path FROM node WHERE code = :v) || '%' ORDER BY x.person_id"),
            {"v": VILLAGE1}).all()
        bosses = conn.execute(sa.text(
            "SELECT DISTINCT x.person_id, p.name FROM post x JOIN node n ON n.id = x.node_id"
            " JOIN person p ON p.id = x.person_id WHERE x.role = 'group_leader' AND n.path LIKE"
            " (SELECT path FROM node WHERE code = :v) || '%' ORDER BY x.person_id"),
            {"v": VILLAGE1}).all()
    tg_of: dict[int, int] = {}
    for k, (pid, _name, _g) in enumerate(leaders):
        tg_of[pid] = 7001 + k
    for k, (pid, _name) in enumerate(bosses):
        tg_of.setdefault(pid, 8001 + k)
    for pid, tg in tg_of.items():
        _bind(engine, pid, tg)
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)) as base:
            yield {"tg": tg, "engine": engine, "clock": clock, "url": base,
                   "leaders": [(pid, name, tg_of[pid]) for pid, name, _ in leaders],
                   "bosses": [(pid, name, tg_of[pid]) for pid, name in bosses]}


def last_to(tg: FakeTelegram, chat: int, words: str, *, after: int = 0) -> SentMessage:
    return wait_for(lambda: [m for m in tg.sent_to(chat)[after:] if words in (m.text or "")],
                    why=f"{words!r} to {chat}")[-1]


def send_notice(tg: FakeTelegram, text: str, deadline: str) -> SentMessage:
    """The 书记's whole /notice dialogue up to the summary; returns the summary."""
    msg(tg, SECRETARY_TG, text="/notice", entities=[{"type": "bot_command", "offset": 0,
                                                      "length": 7}])
    ask = last_to(tg, SECRETARY_TG, "哪些人")
    press(tg, SECRETARY_TG, ask, buttons(ask)["邻长"])
    last_to(tg, SECRETARY_TG, "请发送通知内容")
    msg(tg, SECRETARY_TG, text=text)
    q = last_to(tg, SECRETARY_TG, "需要大家回复")
    press(tg, SECRETARY_TG, q, buttons(q)["需要"])
    last_to(tg, SECRETARY_TG, "截止时间")
    msg(tg, SECRETARY_TG, text=deadline)
    return last_to(tg, SECRETARY_TG, "确认发送吗")


def copy_of(tg: FakeTelegram, chat: int) -> SentMessage:
    return last_to(tg, chat, "【通知】")


def test_notice_with_receipts_repings_and_the_deadline_lists(world: dict[str, Any]) -> None:
    tg, clock, engine = world["tg"], world["clock"], world["engine"]
    leaders = world["leaders"]
    assert len(leaders) >= 5
    blocked = leaders[3]
    tg.block(blocked[2])

    summary = send_notice(tg, "明天上午8点在村委会开展核酸检测，请通知到户", "6小时")
    assert f"邻长{len(leaders)}" in (summary.text or "") and "确认发送吗" in (summary.text or "")
    press(tg, SECRETARY_TG, summary, buttons(summary)["发送"])
    last_to(tg, SECRETARY_TG, f"通知已发出，共{len(leaders)}人")

    for _pid, _name, chat in leaders:
        if chat != blocked[2]:
            c = copy_of(tg, chat)
            assert "核酸检测" in (c.text or "") and "收到" in buttons(c)
    # Two press 收到, one types it; a second press changes nothing.
    for _pid, _name, chat in leaders[:2]:
        c = copy_of(tg, chat)
        press(tg, chat, c, buttons(c)["收到"])
        last_to(tg, chat, "已确认收到")
    msg(tg, leaders[2][2], text="收到")
    last_to(tg, leaders[2][2], "已确认收到")
    c = copy_of(tg, leaders[0][2])
    press(tg, leaders[0][2], c, buttons(c)["收到"])
    last_to(tg, leaders[0][2], "已确认过")

    def delivered() -> Any:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER"
                " (WHERE status = 'dead') FROM outbox WHERE dedupe_key LIKE 'notice%'")).one()
    wait_for(lambda: tuple(delivered()) == (len(leaders) - 1, 1), why="delivery settled")

    # Four hours later the others are reminded once; not the confirmed, not the blocked.
    counts = {chat: len(tg.sent_to(chat)) for _p, _n, chat in leaders}
    clock.advance(timedelta(hours=4, minutes=1))
    for _pid, _name, chat in leaders[4:]:
        last_to(tg, chat, "【提醒】", after=counts[chat])
    for _pid, _name, chat in leaders[:3]:
        assert not any("【提醒】" in (m.text or "") for m in tg.sent_to(chat))
    clock.advance(timedelta(minutes=10))
    for _pid, _name, chat in leaders[4:]:
        wait_for(lambda chat=chat: sum("【提醒】" in (m.text or "")  # type: ignore[misc]
                                       for m in tg.sent_to(chat)) == 1, why="one re-ping")

    # At the deadline each 组长 hears once of their own 邻长 who have not confirmed.
    clock.advance(timedelta(hours=2))
    late = {pid for pid, _n, _c in leaders[3:]}
    with engine.connect() as conn:
        boss_of = dict(conn.execute(sa.text(
            "SELECT l.person_id, g.person_id FROM post l JOIN node n ON n.id = l.node_id"
            " JOIN post g ON g.node_id = n.parent_id AND g.role = 'group_leader'"
            " WHERE l.role = 'neighbor_leader'")).all())
    names = {pid: name for pid, name, _c in leaders}
    by_boss: dict[int, list[int]] = {}
    for pid in late:
        if boss_of.get(pid) not in (None, pid):
            by_boss.setdefault(boss_of[pid], []).append(pid)
    assert by_boss, "the demo village has 组长 above the late 邻长"
    tg_of = {pid: chat for pid, _n, chat in world["bosses"]}
    for boss, people in by_boss.items():
        got = last_to(tg, tg_of[boss], "尚未确认通知")
        text = got.text or ""
        assert text.startswith("组长") and f"组内{len(people)}位邻长尚未确认" in text, text
        assert all(names[p] in text for p in people)
        assert sum("尚未确认通知" in (m.text or "") for m in tg.sent_to(tg_of[boss])) == 1
    # A press after the deadline is refused in words, and counts nothing.
    c = copy_of(tg, leaders[4][2])
    press(tg, leaders[4][2], c, buttons(c)["收到"])
    last_to(tg, leaders[4][2], "确认已截止")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(confirmed_at) FROM notice_recipient")
                            ).scalar_one() == 3


def test_a_press_on_someone_elses_notice_is_refused(world: dict[str, Any]) -> None:
    tg = world["tg"]
    leaders, bosses = world["leaders"], world["bosses"]
    summary = send_notice(tg, "本周六大扫除", "明天9:00")
    press(tg, SECRETARY_TG, summary, buttons(summary)["发送"])
    c = copy_of(tg, leaders[0][2])
    outsider = next(chat for pid, _n, chat in bosses if pid not in {p for p, _, _ in leaders})
    press(tg, outsider, c, buttons(c)["收到"])
    last_to(tg, outsider, "不是发给您的")


def test_bad_input_in_the_dialogue_sends_nothing(world: dict[str, Any]) -> None:
    tg, engine = world["tg"], world["engine"]
    msg(tg, SECRETARY_TG, text="/notice", entities=[{"type": "bot_command", "offset": 0,
                                                      "length": 7}])
    ask = last_to(tg, SECRETARY_TG, "哪些人")
    press(tg, SECRETARY_TG, ask, buttons(ask)["邻长"])
    last_to(tg, SECRETARY_TG, "请发送通知内容")
    msg(tg, SECRETARY_TG, text="   ")
    last_to(tg, SECRETARY_TG, "通知内容不能为空")
    msg(tg, SECRETARY_TG, text="停水通知")
    q = last_to(tg, SECRETARY_TG, "需要大家回复")
    press(tg, SECRETARY_TG, q, buttons(q)["需要"])
    last_to(tg, SECRETARY_TG, "截止时间")
    msg(tg, SECRETARY_TG, text="09:00")  # 10:00 local now: today's 9:00 has passed
    last_to(tg, SECRETARY_TG, "截止时间已经过去")
    msg(tg, SECRETARY_TG, text="后天吧")
    last_to(tg, SECRETARY_TG, "没看懂这个时间")
    msg(tg, SECRETARY_TG, text="18:00")
    summary = last_to(tg, SECRETARY_TG, "确认发送吗")
    press(tg, SECRETARY_TG, summary, buttons(summary)["取消"])
    last_to(tg, SECRETARY_TG, "已取消")
    press(tg, SECRETARY_TG, summary, buttons(summary)["发送"])
    last_to(tg, SECRETARY_TG, "草稿已失效")
    # /cancel between the buttons ends the draft as well.
    n = len(tg.sent_to(SECRETARY_TG))
    msg(tg, SECRETARY_TG, text="/notice", entities=[{"type": "bot_command", "offset": 0,
                                                      "length": 7}])
    ask = last_to(tg, SECRETARY_TG, "哪些人", after=n)
    n = len(tg.sent_to(SECRETARY_TG))
    msg(tg, SECRETARY_TG, text="/cancel", entities=[{"type": "bot_command", "offset": 0,
                                                      "length": 7}])
    last_to(tg, SECRETARY_TG, "已取消", after=n)
    n = len(tg.sent_to(SECRETARY_TG))
    press(tg, SECRETARY_TG, ask, buttons(ask)["邻长"])
    last_to(tg, SECRETARY_TG, "草稿已失效", after=n)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM notice")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM outbox WHERE kind LIKE 'notice%'")
                            ).scalar_one() == 0
