"""A prompt (await_*) takes one answer: a refused answer closes it, and a resident's words are
never swallowed by it. Driven through the dispatcher, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.flows.texts import t
from bot.flows.types import Press
from core.clock import FakeClock
from core.settings import Settings
from tests.integration.test_flows import link, outbox_for, resident_of, send
from tests.support.demo_city import GROUP1, LIN1, holder_of, load_demo


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]


def _version(engine: Engine, case_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT version FROM cases WHERE id = :c"),
                                {"c": case_id}).scalar_one())


def _cases_of(engine: Engine, person_id: int) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(sa.text(
            "SELECT id, text FROM cases WHERE resident_id = :p ORDER BY id"), {"p": person_id})]


def _prompts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(
            "SELECT state FROM conversation WHERE state LIKE 'await_%'"))]


def test_the_leader_race_closes_the_prompts_and_nothing_the_resident_says_is_lost(
        city: Engine, clock: FakeClock, settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    leader = holder_of(city, "neighbor_leader", LIN1)
    group_leader = holder_of(city, "group_leader", GROUP1)
    link(city, resident.person_id, "6001")
    link(city, leader.person_id, "9601")
    link(city, group_leader.person_id, "9602")

    send(city, clock, settings, sender="6001", text="楼道灯坏了三天了")
    card = outbox_for(city, leader.person_id)[-1]
    case_id = card["case_id"]
    reply = next(a for a in card["actions"] if a["action"] == "reply")

    # The resident taps 补充情况 and the 邻长 taps 答复: both are now asked for words.
    out = send(city, clock, settings, sender="6001",
               press=Press("add", case_id, _version(city, case_id), query_id="r1"))
    assert any("补充" in r["text"] for r in out)
    out = send(city, clock, settings, sender="9601",
               press=Press("reply", case_id, reply["version"], query_id="l1"))
    assert any("答复" in r["text"] for r in out)
    assert sorted(_prompts(city)) == ["await_add", "await_reply"]

    # Meanwhile the 组长 takes the case over, and closes it as one the 居委会 handles already.
    send(city, clock, settings, sender="9602",
         press=Press("accept", case_id, _version(city, case_id), query_id="g1"))
    send(city, clock, settings, sender="9602",
         press=Press("reject", case_id, _version(city, case_id), query_id="g2"))
    send(city, clock, settings, sender="9602", text="物业已在统一更换楼道灯")
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT state FROM cases WHERE id = :c"),
                            {"c": case_id}).scalar_one() == "rejected"

    # The 邻长's typed answer is refused politely, the prompt is gone, his words come back.
    out = send(city, clock, settings, sender="9601", text="明天上午来换灯泡")
    texts = "\n".join(r["text"] for r in out)
    assert "抱歉" in texts or "已" in texts
    assert "已退出" in texts and "明天上午来换灯泡" in texts
    assert _prompts(city) == ["await_add"]
    assert not any("明天上午来换灯泡" in r["text"] for r in outbox_for(city, resident.person_id))

    # His next message is handled afresh, not refused again.
    out = send(city, clock, settings, sender="9601", text="好的")
    assert [r["text"] for r in out] == [t("zh", "leader_free_text")]

    # The resident's words for the closed case become a case of their own.
    out = send(city, clock, settings, sender="6001", text="单元门也关不上了")
    assert _prompts(city) == []
    cases = _cases_of(city, resident.person_id)
    assert [text for _, text in cases] == ["楼道灯坏了三天了", "单元门也关不上了"]
    assert any("已结束" in r["text"] for r in out)
    assert any(r["kind"] == "new_case" for r in outbox_for(city, leader.person_id)
               if r["case_id"] == cases[1][0])

    # And their next report, later on, is a case too.
    clock.advance(timedelta(minutes=30))
    send(city, clock, settings, sender="6001", text="垃圾桶满了没人清")
    assert [text for _, text in _cases_of(city, resident.person_id)][-1] == "垃圾桶满了没人清"


def test_a_refused_answer_closes_the_prompt_and_changes_nothing(city: Engine, clock: FakeClock,
                                                   settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    leader = holder_of(city, "neighbor_leader", LIN1)
    link(city, resident.person_id, "6101")
    link(city, leader.person_id, "9701")
    send(city, clock, settings, sender="6101", text="小区门口路面坑洼")
    card = outbox_for(city, leader.person_id)[-1]
    esc = next(a for a in card["actions"] if a["action"] == "escalate")
    send(city, clock, settings, sender="9701",
         press=Press("escalate", card["case_id"], esc["version"], query_id="e1"))
    assert _prompts(city) == ["await_escalate"]
    # An escalation needs a reason: blank words are refused, and the prompt closes with them.
    out = send(city, clock, settings, sender="9701", text="   ")
    assert out and _prompts(city) == []
    assert any("已退出" in r["text"] for r in out)
    # The case is untouched and still his to act on.
    assert _version(city, card["case_id"]) == esc["version"]


def test_a_resident_prompt_answer_that_is_valid_still_adds(city: Engine, clock: FakeClock,
                                                           settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    link(city, resident.person_id, "6201")
    send(city, clock, settings, sender="6201", text="楼下噪音很大")
    (case_id, _), = _cases_of(city, resident.person_id)
    send(city, clock, settings, sender="6201",
         press=Press("add", case_id, _version(city, case_id), query_id="a1"))
    clock.advance(timedelta(hours=2))
    out = send(city, clock, settings, sender="6201", text="晚上十点以后更吵")
    assert any(f"#{case_id}" in r["text"] for r in out)
    assert len(_cases_of(city, resident.person_id)) == 1 and _prompts(city) == []
