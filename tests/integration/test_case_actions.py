"""Opening, acting on and closing cases: permissions, stale buttons, the audit trail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases import actions, closing, services
from core.cases.model import CaseEvent, CaseFollower, Stage, State
from core.cases.services import NewAttachment
from core.clock import FakeClock, as_utc
from core.db import session_scope
from core.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    StaleAction,
)
from core.hierarchy.model import Person
from tests.casehelpers import MINUTE, advance_and_sweep, do, get, kinds, open_case, outbox
from tests.cityfactory import add_post, build_city
from tests.support.wording import refusal


def test_open_case_routes_to_the_neighbor_leader_and_writes_the_outbox(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    photo = NewAttachment(kind="photo", file_ref="tg:AgAD123", platform="telegram")
    spot = NewAttachment(kind="location", latitude=33.85, longitude=115.78)
    cid = open_case(engine, clock, city, category="环境保护", attachments=(photo, spot),
                    via="telegram:4242")
    case = get(engine, cid)
    assert case.state == State.open.value and case.version == 1
    assert case.holder_id == city["leader1"] and case.stage == Stage.reply.value
    assert case.policy["reply_s"] == 4 * 3600
    to_leader = outbox(engine, person_id=city["leader1"])
    assert [m.kind for m in to_leader] == ["new_case"]
    assert {a["action"] for a in to_leader[0].actions} == {"accept", "reply", "resolve", "escalate"}
    assert [m.kind for m in outbox(engine, person_id=city["resident1"])] == ["case_opened"]
    assert [m.kind for m in outbox(engine, chat_binding_id=city.bindings["g1_chat"])] == [
        "mirror"]
    with Session(engine) as s:
        assert [a.kind for a in services.attachments_of(s, case_id=cid)] == ["photo",
                                                                              "location"]
        (ev,) = services.history(s, case_id=cid)
        assert ev.kind == "opened" and ev.via == "telegram:4242" and ev.actor_id == city[
            "resident1"]


def test_bad_reports_are_refused(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    with pytest.raises(InvalidInput):
        open_case(engine, clock, city, text="  ")
    with refusal(InvalidInput, "未知类别"):
        open_case(engine, clock, city, category="外星人")
    with refusal(InvalidInput, "经纬度"):
        open_case(engine, clock, city, attachments=(NewAttachment("location", latitude=99,
                                                                  longitude=0),))
    with pytest.raises(NotFound):  # a leader is no resident: nothing to route from
        open_case(engine, clock, city, resident="secretary")
    # A leader may report for a resident of their area; one from elsewhere may not.
    cid = open_case(engine, clock, city, opened_by=city["group_leader"])
    assert get(engine, cid).opened_by_id == city["group_leader"]
    with pytest.raises(PermissionDenied):
        open_case(engine, clock, city, opened_by=city["secretary2"])
    assert len(outbox(engine, person_id=city["leader1"])) == 1


def test_full_loop_accept_reply_resolve_confirm(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    clock.advance(30 * MINUTE)
    case = do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["leader1"],
              version=1)
    assert case.state == State.accepted.value and case.first_reply_on_time is True
    case = do(engine, actions.reply, clock=clock, case_id=cid, person_id=city["leader1"],
              version=case.version, text="明天上午清理")
    case = do(engine, actions.resolve, clock=clock, case_id=cid, person_id=city["leader1"],
              version=case.version, note="已清理",
              after_photos=(NewAttachment("photo", file_ref="after.jpg"),))
    assert case.state == State.resolved.value and case.stage == Stage.confirm.value
    rate = next(m for m in outbox(engine, person_id=city["resident1"]) if m.kind == "resolved")
    assert [a.get("rating") for a in rate.actions][:5] == [5, 4, 3, 2, 1]
    case = do(engine, closing.confirm, clock=clock, case_id=cid, person_id=city["resident1"],
              version=case.version, rating=5, comment="很快")
    assert case.state == State.closed.value and case.rating == 5 and case.next_due_at is None
    assert kinds(engine, cid) == ["opened", "accepted", "replied", "resolved", "confirmed"]
    assert [m.kind for m in outbox(engine, person_id=city["leader1"])][-1] == "rated"


def test_stale_button_is_refused_with_what_happened(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["leader1"], version=1)
    with refusal(StaleAction, "邻长小赵已受理"):
        do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["leader1"],
           version=1)
    with pytest.raises(StaleAction):  # the superior's old button too
        do(engine, actions.escalate, clock=clock, case_id=cid, person_id=city["group_leader"],
           version=1, reason="x")
    assert kinds(engine, cid) == ["opened", "accepted"]
    with pytest.raises(InvalidTransition):  # right version, wrong state
        do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["leader1"],
           version=2)


@pytest.mark.parametrize("stranger", ["secretary2", "leader2", "resident1", "liaison"])
def test_strangers_are_refused_and_the_attempt_is_recorded(engine: Engine, clock: FakeClock,
                                                           stranger: str) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    with session_scope(engine) as s:
        # Something else written earlier in the same update's transaction must not block the
        # separate write of the refusal (SQLite has one writer).
        s.add(Person(name="临时"))
        s.flush()
        with refusal(PermissionDenied, "不能受理"):
            actions.accept(s, clock=clock, case_id=cid, person_id=city[stranger], version=1)
        s.rollback()
    assert get(engine, cid).state == State.open.value
    with Session(engine) as s:
        refused = s.execute(sa.select(CaseEvent).where(CaseEvent.kind == "refused")).scalars()
        (ev,) = list(refused)
        assert ev.actor_id == city[stranger] and ev.detail["action"] == "accept"
        assert s.execute(sa.select(Person).where(Person.name == "临时")).first() is None


def test_superior_may_take_over_and_admin_may_act(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    case = do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["area_leader"],
              version=1)
    assert case.holder_id == city["area_leader"] and case.holder_role == "area_leader"
    assert [m.kind for m in outbox(engine, person_id=city["leader1"])][-1] == "taken_over"
    # The 邻长 below is no longer above the holder.
    with pytest.raises(PermissionDenied):
        do(engine, actions.reply, clock=clock, case_id=cid, person_id=city["leader1"],
           version=case.version, text="x")
    case = do(engine, actions.reply, clock=clock, case_id=cid, person_id=city["town_admin"],
              version=case.version, text="镇里已知悉")
    # Answering the resident on an accepted case does not take it from its holder.
    assert case.holder_role == "area_leader"
    assert "镇里已知悉" in outbox(engine, person_id=city["resident1"])[-1].text


def test_manual_escalation_needs_a_reason_and_skips_vacant_posts(engine: Engine,
                                                                 clock: FakeClock) -> None:
    city = build_city(engine, vacant={"group_leader"})
    cid = open_case(engine, clock, city)
    with pytest.raises(InvalidInput):
        do(engine, actions.escalate, clock=clock, case_id=cid, person_id=city["leader1"],
           version=1, reason=" ")
    case = do(engine, actions.escalate, clock=clock, case_id=cid, person_id=city["leader1"],
              version=1, reason="解决不了，需要片里协调")
    assert case.holder_id == city["area_leader"] and case.escalations == 1
    msg = outbox(engine, person_id=city["area_leader"])[0]
    assert "需要片里协调" in msg.text


def test_one_person_on_two_tiers_is_not_handed_the_case_twice(engine: Engine,
                                                              clock: FakeClock) -> None:
    city = build_city(engine)
    add_post(engine, city, person="leader1", role="group_leader", node="g1")
    cid = open_case(engine, clock, city)
    case = do(engine, actions.escalate, clock=clock, case_id=cid, person_id=city["leader1"],
              version=1, reason="转")
    assert case.holder_id in (city["group_leader"], city["area_leader"])
    assert case.holder_id != city["leader1"]


def test_top_of_chain_cannot_escalate(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine, vacant={"leader1", "group_leader", "area_leader", "secretary",
                                      "town_admin"})
    cid = open_case(engine, clock, city)
    assert get(engine, cid).holder_id == city["district_admin"]
    with refusal(Conflict, "最高一级"):
        do(engine, actions.escalate, clock=clock, case_id=cid,
           person_id=city["district_admin"], version=1, reason="x")


def test_whistle_to_the_department_which_reports_in(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    with refusal(PermissionDenied, "书记"):  # the 邻长 cannot whistle
        do(engine, actions.whistle, clock=clock, case_id=cid, person_id=city["leader1"],
           version=1, category="环境保护")
    with refusal(InvalidInput, "类别"):
        do(engine, actions.whistle, clock=clock, case_id=cid, person_id=city["secretary"],
           version=1)
    case = do(engine, actions.whistle, clock=clock, case_id=cid, person_id=city["secretary"],
              version=1, category="环境保护", reason="需要执法")
    assert case.holder_id == city["liaison"] and case.holder_role == "department"
    assert case.department_node_id == city.nodes["dept_env"]
    (to_dept,) = outbox(engine, person_id=city["liaison"])
    assert to_dept.actions[0]["label"] == "报到受理"
    clock.advance(3 * MINUTE * 20)
    case = do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["liaison"],
              version=case.version)
    assert as_utc(case.department_reported_at) == clock.now()  # type: ignore[arg-type]
    assert kinds(engine, cid)[-1] == "reported_in"
    # A department under the district, when the town has none for the category.
    cid2 = open_case(engine, clock, city, resident="resident3")
    case = do(engine, actions.whistle, clock=clock, case_id=cid2, person_id=city["town_admin"],
              version=1, category="公共设施")
    assert case.holder_id == city["road_liaison"]
    cid3 = open_case(engine, clock, city, resident="resident2")
    with refusal(InvalidInput, "没有对应的职能部门"):
        do(engine, actions.whistle, clock=clock, case_id=cid3, person_id=city["secretary"],
           version=1, category="其他")


def test_merge_duplicate_and_both_residents_follow(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    main = open_case(engine, clock, city)
    dup = open_case(engine, clock, city, resident="resident2", text="楼道杂物")
    case = do(engine, actions.merge, clock=clock, case_id=dup, person_id=city["leader1"],
              version=1, into_case_id=main)
    assert case.state == State.merged.value and case.next_due_at is None
    with Session(engine) as s:
        followers = s.execute(sa.select(CaseFollower.person_id).where(
            CaseFollower.case_id == main)).scalars().all()  # type: ignore[arg-type]
    assert set(followers) == {city["resident1"], city["resident2"]}
    case = do(engine, actions.accept, clock=clock, case_id=main, person_id=city["leader1"],
              version=1)
    do(engine, actions.resolve, clock=clock, case_id=main, person_id=city["leader1"],
       version=case.version)
    # The duplicate's reporter hears about the fix and may confirm it.
    assert "resolved" in [m.kind for m in outbox(engine, person_id=city["resident2"])]
    with pytest.raises(InvalidInput):
        do(engine, actions.merge, clock=clock, case_id=main, person_id=city["leader1"],
           version=3, into_case_id=main)


def test_reject_and_reassign(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    with refusal(PermissionDenied, "管理员"):
        do(engine, actions.reassign, clock=clock, case_id=cid, person_id=city["secretary"],
           version=1, to_person_id=city["leader2"], reason="x")
    case = do(engine, actions.reassign, clock=clock, case_id=cid, person_id=city["town_admin"],
              version=1, to_person_id=city["leader2"], reason="小赵出差")
    assert case.holder_id == city["leader2"] and case.holder_role == "neighbor_leader"
    assert [m.kind for m in outbox(engine, person_id=city["leader1"])][-1] == "reassigned_away"
    with refusal(InvalidInput, "没有职务"):
        do(engine, actions.reassign, clock=clock, case_id=cid, person_id=city["town_admin"],
           version=case.version, to_person_id=city["resident1"], reason="x")
    case = do(engine, actions.reject, clock=clock, case_id=cid, person_id=city["leader2"],
              version=case.version, reason="不属于社区事务")
    assert case.state == State.rejected.value and case.next_due_at is None
    assert "不属于社区事务" in outbox(engine, person_id=city["resident1"])[-1].text


def test_not_fixed_reopens_with_the_same_holder_and_a_fresh_deadline(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    case = do(engine, actions.resolve, clock=clock, case_id=cid, person_id=city["leader1"],
              version=1)
    clock.advance(60 * MINUTE)
    with pytest.raises(PermissionDenied):
        do(engine, closing.not_fixed, clock=clock, case_id=cid, person_id=city["resident3"],
           version=case.version)
    case = do(engine, closing.not_fixed, clock=clock, case_id=cid, person_id=city["resident1"],
              version=case.version, reason="还是堆着")
    assert case.state == State.accepted.value and case.holder_id == city["leader1"]
    assert as_utc(case.deadline_at) == clock.now() + 72 * 60 * MINUTE  # type: ignore[arg-type]
    assert "还是堆着" in outbox(engine, person_id=city["leader1"])[-1].text


def test_low_rating_reaches_the_superior(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    case = do(engine, actions.resolve, clock=clock, case_id=cid, person_id=city["leader1"],
              version=1)
    with pytest.raises(InvalidInput):
        do(engine, closing.confirm, clock=clock, case_id=cid, person_id=city["resident1"],
           version=case.version, rating=6)
    do(engine, closing.confirm, clock=clock, case_id=cid, person_id=city["resident1"],
       version=case.version, rating=1, comment="敷衍")
    (low,) = outbox(engine, person_id=city["group_leader"], kind="low_rating")
    assert "敷衍" in low.text


def test_additions_append_and_the_append_window(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    st = __import__("tests.casehelpers", fromlist=["settings"]).settings()
    with Session(engine) as s:
        assert services.case_to_append_to(s, clock=clock, settings=st,
                                          resident_id=city["resident1"]) == cid
    clock.advance(5 * MINUTE)
    do(engine, services.add_to_case, clock=clock, case_id=cid, person_id=city["resident1"],
       text="还有一辆电动车", attachments=(NewAttachment("voice", file_ref="v1.ogg"),))
    assert outbox(engine, person_id=city["leader1"])[-1].kind == "case_added"
    clock.advance(9 * MINUTE)
    with Session(engine) as s:  # the addition restarted the window
        assert services.case_to_append_to(s, clock=clock, settings=st,
                                          resident_id=city["resident1"]) == cid
    clock.advance(11 * MINUTE)
    with Session(engine) as s:
        assert services.case_to_append_to(s, clock=clock, settings=st,
                                          resident_id=city["resident1"]) is None
    with pytest.raises(PermissionDenied):
        do(engine, services.add_to_case, clock=clock, case_id=cid,
           person_id=city["resident3"], text="x")
    assert get(engine, cid).version == 1  # additions do not stale the holder's buttons


def test_event_log_is_append_only(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    open_case(engine, clock, city)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE case_event SET note = 'forged'"))
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM case_event"))


def test_views_for_chats_and_dashboard(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city, category="环境保护")
    advance_and_sweep(engine, clock, 5 * 60 * MINUTE)
    with Session(engine) as s:
        v = services.view(s, case_id=cid, now=clock.now())
        # It missed the 邻长's deadline: overdue (超期) even with the 组长's fresh deadline.
        assert v.holder_name == "组长老张" and v.category == "环境保护" and v.overdue
        assert [c.id for c in services.cases_held_by(s, person_id=city["group_leader"])] == [
            cid]
        assert [c.id for c in services.cases_of_resident(s, person_id=city["resident1"])] == [
            cid]
        assert services.can_act(s, case_id=cid, person_id=city["area_leader"])
        assert not services.can_act(s, case_id=cid, person_id=city["leader1"])
