"""Every change reaches the right people once, in their language, and every copy of a case's
card follows it: the real app in polling mode against the fake Bot API, the sweep on the fake
clock, dashboard calls over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core import accounts
from core.cases import verify
from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate, write_session
from core.settings import Settings
from tests.e2e.test_telegram_story import buttons, msg, press, private, wait_for
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.support.demo_city import LIN1, TOWN, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

RESIDENT_TG, LEADER_TG, GROUP_LEADER_TG, DEPT_TG, SECRETARY_TG = 5001, 9001, 9002, 9300, 9400
DEPT = TOWN + "D01"


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    who = {}
    for key, role, code, tg in (("resident", "resident", LIN1, RESIDENT_TG),
                                ("leader", "neighbor_leader", LIN1, LEADER_TG),
                                ("group_leader", "group_leader", LIN1[:-3], GROUP_LEADER_TG),
                                ("dept", "department", DEPT, DEPT_TG),
                                ("secretary", "secretary", LIN1[:12], SECRETARY_TG)):
        who[key] = holder_of(engine, role, code)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'telegram', :t, false)"),
                         {"p": who[key].person_id, "t": str(tg)})
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)) as base:
            yield {"tg": tg, "engine": engine, "clock": clock, "who": who, "url": base}


def card_of(tg: FakeTelegram, chat: int, words: str) -> SentMessage:
    return wait_for(lambda: [m for m in tg.sent_to(chat) if words in (m.original_text or m.text
                                                                       or "")],
                    why=f"the card of {words!r} in {chat}")[0]


def reply_to(tg: FakeTelegram, uid: int, card: SentMessage, text: str) -> None:
    msg(tg, uid, text=text, reply_to_message={"message_id": card.message_id, "date": 1700000000,
                                              "chat": private(uid), "text": card.text})


def now_of(tg: FakeTelegram, card: SentMessage) -> SentMessage:
    m = tg.message(card.chat_id, card.message_id)
    assert m is not None
    return m


def received(tg: FakeTelegram, chat: int, words: str) -> bool:
    return any(words in (m.text or "") for m in tg.sent_to(chat))


def test_second_reply_and_second_addition_both_arrive(world: dict[str, Any]) -> None:
    tg = world["tg"]
    msg(tg, RESIDENT_TG, text="楼道灯坏了三天了")
    card = card_of(tg, LEADER_TG, "楼道灯坏了")
    reply_to(tg, LEADER_TG, card, "第一次答复：明天来看")
    wait_for(lambda: received(tg, RESIDENT_TG, "第一次答复"), why="the first answer")
    reply_to(tg, LEADER_TG, card, "第二次答复：灯泡已订")
    wait_for(lambda: received(tg, RESIDENT_TG, "第二次答复"), why="the second answer")

    msg(tg, RESIDENT_TG, text="补充一：三楼也不亮")
    wait_for(lambda: received(tg, LEADER_TG, "补充一"), why="the first addition")
    msg(tg, RESIDENT_TG, text="补充二：四楼也不亮")
    wait_for(lambda: received(tg, LEADER_TG, "补充二"), why="the second addition")


def test_deadline_escalation_moves_the_live_card(world: dict[str, Any]) -> None:
    tg, clock = world["tg"], world["clock"]
    msg(tg, RESIDENT_TG, text="单元门口的垃圾三天没人收")
    first = card_of(tg, LEADER_TG, "垃圾")
    clock.advance(timedelta(hours=4, minutes=1))
    new = card_of(tg, GROUP_LEADER_TG, "垃圾")
    assert {"受理", "答复居民", "已解决"} <= set(buttons(new))
    wait_for(lambda: "已转交组长" in (now_of(tg, first).text or ""),
             why="the 邻长's card says where the case went")
    assert not buttons(now_of(tg, first)), "no live buttons on a former holder's card"


def test_escalation_by_hand_moves_the_live_card(world: dict[str, Any]) -> None:
    tg = world["tg"]
    msg(tg, RESIDENT_TG, text="下水道堵了")
    first = card_of(tg, LEADER_TG, "下水道")
    press(tg, LEADER_TG, first, buttons(first)["解决不了，转上级"])
    wait_for(lambda: received(tg, LEADER_TG, "请说明转上级的原因"), why="the prompt")
    msg(tg, LEADER_TG, text="需要物业协调")
    new = card_of(tg, GROUP_LEADER_TG, "下水道")
    assert {"受理", "已解决"} <= set(buttons(new))
    wait_for(lambda: "已转交组长" in (now_of(tg, first).text or ""), why="the old card moved")
    assert not buttons(now_of(tg, first))
    # The 组长 resolves from the card he was just given: the press is current, not stale.
    press(tg, GROUP_LEADER_TG, new, buttons(new)["已解决"])
    # An escalated case is checked first (核查, README "Category policies"): the 片长 holds it
    # until he approves, and only then is the resident asked.
    engine = world["engine"]

    def row() -> Any:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT id, stage, holder_id, version FROM cases"
                                        " WHERE text LIKE '%下水道%'")).one()

    wait_for(lambda: row().stage == "verify", why="the case waits for 核查")
    assert not received(tg, RESIDENT_TG, "反馈已解决")
    case = row()
    with write_session(engine) as s:
        verify.approve(s, clock=world["clock"], case_id=case.id, person_id=case.holder_id,
                       version=case.version)
    wait_for(lambda: received(tg, RESIDENT_TG, "反馈已解决"), why="the fixed? question")


def signed_in(w: dict[str, Any], person_id: int) -> httpx.Client:
    with write_session(w["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=person_id, now=w["clock"].now(),
                                           ttl=timedelta(minutes=15))
    client = httpx.Client(base_url=w["url"], follow_redirects=False, timeout=30)
    assert client.get(f"/login/{token}").status_code == 303
    return client


def api_act(w: dict[str, Any], who: str, case_id: int, action: str, **body: Any) -> None:
    c = signed_in(w, w["who"][who].person_id)
    try:
        token = c.get("/api/me").json()["csrf_token"]
        r = c.post(f"/api/cases/{case_id}/{action}", json=body,
                   headers={"X-CSRF-Token": token})
        assert r.status_code == 200, r.text
    finally:
        c.close()


def case_id_of(w: dict[str, Any], words: str) -> int:
    with w["engine"].connect() as conn:
        return int(conn.execute(sa.text("SELECT id FROM cases WHERE text LIKE :t"),
                                {"t": f"%{words}%"}).scalar_one())


def test_a_dashboard_action_refreshes_the_telegram_card(world: dict[str, Any]) -> None:
    tg = world["tg"]
    msg(tg, RESIDENT_TG, text="路灯不亮")
    card = card_of(tg, LEADER_TG, "路灯不亮")
    # The village 书记 accepts it on the dashboard, taking it over: the 邻长's card says so.
    api_act(world, "secretary", case_id_of(world, "路灯不亮"), "accept", version=1)
    wait_for(lambda: "已转交书记" in (now_of(tg, card).text or ""), why="the card edited")
    assert not buttons(now_of(tg, card))
    wait_for(lambda: received(tg, LEADER_TG, "接手处理"), why="the 邻长 told")


def test_a_whistle_moves_the_card_and_the_department_answers_from_its_own(
        world: dict[str, Any]) -> None:
    tg, engine = world["tg"], world["engine"]
    msg(tg, RESIDENT_TG, text="河边有人倒垃圾")
    first = card_of(tg, LEADER_TG, "河边")
    case_id = case_id_of(world, "河边")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cases SET category_id = (SELECT id FROM category WHERE"
                             " name = '环境保护') WHERE id = :c"), {"c": case_id})
    api_act(world, "secretary", case_id, "whistle", version=1)
    dept = card_of(tg, DEPT_TG, "河边")
    assert {"报到受理", "答复居民", "已解决"} <= set(buttons(dept))
    wait_for(lambda: "已转交部门联络员" in (now_of(tg, first).text or ""), why="the old card")
    assert not buttons(now_of(tg, first))
    press(tg, DEPT_TG, dept, buttons(dept)["答复居民"])
    wait_for(lambda: received(tg, DEPT_TG, "请输入给居民的答复"), why="the prompt, not stale")
    msg(tg, DEPT_TG, text="执法队下午到场")
    wait_for(lambda: received(tg, RESIDENT_TG, "执法队下午到场"), why="the answer")


def test_english_speakers_get_english_receipt_card_and_nag(world: dict[str, Any]) -> None:
    tg, clock = world["tg"], world["clock"]
    msg(tg, RESIDENT_TG, text="/lang en")
    msg(tg, LEADER_TG, text="/lang en")
    wait_for(lambda: received(tg, RESIDENT_TG, "Switched to English")
             and received(tg, LEADER_TG, "Switched to English"), why="/lang en")
    msg(tg, RESIDENT_TG, text="The lift is broken")
    wait_for(lambda: received(tg, RESIDENT_TG, "We received your report"), why="receipt")
    card = card_of(tg, LEADER_TG, "lift")
    assert (card.original_text or "").startswith("[New case]")
    assert {"Accept", "Answer", "Resolved"} <= set(buttons(card))
    clock.advance(timedelta(hours=2, minutes=1))
    wait_for(lambda: received(tg, LEADER_TG, "[Reminder]"), why="the nag in English")


def test_the_holders_own_card_is_whole(world: dict[str, Any]) -> None:
    tg = world["tg"]
    msg(tg, RESIDENT_TG, text="3号楼门口的井盖没了")
    card = card_of(tg, LEADER_TG, "井盖")
    press(tg, LEADER_TG, card, buttons(card)["受理"])
    wait_for(lambda: "已受理" in (now_of(tg, card).text or ""), why="the card edited")
    text = now_of(tg, card).text or ""
    assert "3号楼门口" in text and "幸福社区3号楼101室" in text
