"""Routing up the chain, who may act, digests and warning colours: pure rules."""

from __future__ import annotations

from bot.notify.digest import Notice, coalesce
from core.cases.permissions import may_act, may_whistle
from core.cases.routing import first_target, next_target
from core.cases.stats import Thresholds, WarningLevel, warning_level
from core.hierarchy.model import Level, Role
from core.hierarchy.queries import Actor, Chain, ChainStep, NodeRef, PersonRef

TOWN = NodeRef(2, "341602001", Level.town, "镇", "/1/2/", 1)
DEPT = NodeRef(3, "341602001D03", Level.department, "环保", "/1/2/3/", 2)
VIL = NodeRef(4, "341602001001", Level.village, "村", "/1/2/4/", 2)
AREA = NodeRef(5, "34160200100101", Level.area, "片", "/1/2/4/5/", 4)
GRP = NodeRef(6, "3416020010010101", Level.group, "组", "/1/2/4/5/6/", 5)
NB = NodeRef(7, "3416020010010101001", Level.neighborhood, "邻", "/1/2/4/5/6/7/", 6)
NB2 = NodeRef(8, "3416020010010101002", Level.neighborhood, "邻2", "/1/2/4/5/6/8/", 6)
OTHER_VIL = NodeRef(9, "341602001002", Level.village, "村2", "/1/2/9/", 2)

ZHAO, ZHANG, LI, WANG, ADMIN = (PersonRef(i, n) for i, n in
                                 [(10, "赵"), (11, "张"), (12, "李"), (13, "王"), (14, "管")])


def chain(*, group: tuple[PersonRef, ...] = (ZHANG,), nb: tuple[PersonRef, ...] = (ZHAO,),
          area: tuple[PersonRef, ...] = (LI,), admin: tuple[PersonRef, ...] = (ADMIN,)) -> Chain:
    return Chain((
        ChainStep(Role.neighbor_leader, NB, nb), ChainStep(Role.group_leader, GRP, group),
        ChainStep(Role.area_leader, AREA, area), ChainStep(Role.secretary, VIL, (WANG,)),
        ChainStep(Role.admin, TOWN, admin),
    ))


def test_routing_skips_vacant_tiers_at_once() -> None:
    assert first_target(chain()).person == ZHAO  # type: ignore[union-attr]
    t = first_target(chain(nb=(), group=()))
    assert t is not None and t.person == LI and t.role is Role.area_leader
    assert first_target(Chain(())) is None


def test_next_tier_is_the_next_filled_one() -> None:
    t = next_target(chain(), role="neighbor_leader", node=NB, holder_id=ZHAO.id)
    assert t is not None and t.person == ZHANG
    t = next_target(chain(group=()), role="neighbor_leader", node=NB, holder_id=ZHAO.id)
    assert t is not None and t.person == LI
    # One person holding the next post too: skip them rather than hand it to themselves.
    t = next_target(chain(group=(ZHAO,)), role="neighbor_leader", node=NB, holder_id=ZHAO.id)
    assert t is not None and t.person == LI
    assert next_target(chain(), role="admin", node=TOWN, holder_id=ADMIN.id) is None


def test_above_a_department_is_its_town_office() -> None:
    t = next_target(chain(), role="department", node=DEPT, holder_id=99)
    assert t is not None and t.role is Role.admin and t.node == TOWN


def holder_case() -> dict[str, object]:
    return {"holder_id": ZHAO.id, "holder_role": "neighbor_leader", "holder_node": NB, "home": NB}


def test_who_may_act() -> None:
    holder = Actor(ZHAO, ((Role.neighbor_leader, NB),))
    co_holder = Actor(PersonRef(20, "co"), ((Role.neighbor_leader, NB),))
    group_leader = Actor(ZHANG, ((Role.group_leader, GRP),))
    town_admin = Actor(ADMIN, ((Role.admin, TOWN),))
    other_leader = Actor(PersonRef(21, "x"), ((Role.neighbor_leader, NB2),))
    other_sec = Actor(PersonRef(22, "y"), ((Role.secretary, OTHER_VIL),))
    resident = Actor(PersonRef(23, "r"), ((Role.resident, NB),))
    for who in (holder, co_holder, group_leader, town_admin):
        assert may_act(who, **holder_case())  # type: ignore[arg-type]
    for who in (other_leader, other_sec, resident):
        assert not may_act(who, **holder_case())  # type: ignore[arg-type]
    # Once the 组长 holds it, the 邻长 below may no longer act on it.
    assert not may_act(holder, holder_id=ZHANG.id, holder_role="group_leader",
                       holder_node=GRP, home=NB)


def test_who_may_whistle() -> None:
    assert may_whistle(Actor(WANG, ((Role.secretary, VIL),)), home=NB)
    assert may_whistle(Actor(ADMIN, ((Role.admin, TOWN),)), home=NB)
    assert not may_whistle(Actor(ZHANG, ((Role.group_leader, GRP),)), home=NB)
    assert not may_whistle(Actor(WANG, ((Role.secretary, OTHER_VIL),)), home=NB)


def notice(person: int, case: int) -> Notice:
    return Notice(person_id=person, case_id=case, event_id=case * 10, kind="nagged",
                  text=f"t{case}", line=f"l{case}")


def test_several_notices_for_one_person_become_one_digest() -> None:
    drafts = coalesce([notice(1, 10), notice(2, 11), notice(1, 12), notice(1, 13)])
    assert len(drafts) == 2
    by_person = {d.person_id: d for d in drafts}
    assert by_person[2].text == "t11" and by_person[2].case_id == 11
    digest = by_person[1]
    assert digest.kind == "digest" and "3件" in digest.text and digest.case_id is None
    assert all(f"l{c}" in digest.text for c in (10, 12, 13))
    # The same notices give the same key, so a repeated write is a no-op.
    again = coalesce([notice(1, 13), notice(1, 12), notice(1, 10)])
    assert again[0].dedupe_key == digest.dedupe_key


T = Thresholds(unresolved=(5, 15, 30), overdue=(1, 3, 5), hysteresis=0.2)


def test_warning_levels_rise_at_thresholds() -> None:
    assert warning_level(unresolved=0, overdue=0, thresholds=T) is WarningLevel.green
    assert warning_level(unresolved=5, overdue=0, thresholds=T) is WarningLevel.yellow
    assert warning_level(unresolved=0, overdue=3, thresholds=T) is WarningLevel.orange
    assert warning_level(unresolved=30, overdue=0, thresholds=T) is WarningLevel.red


def test_warning_levels_fall_only_past_the_hysteresis() -> None:
    red = WarningLevel.red
    # 30 → 29 open: still red (29 ≥ 30·0.8 = 24); 23: drops, to orange (23 ≥ 15·0.8).
    assert warning_level(unresolved=29, overdue=0, thresholds=T, previous=red) is red
    assert warning_level(unresolved=23, overdue=0, thresholds=T,
                         previous=red) is WarningLevel.orange
    assert warning_level(unresolved=0, overdue=0, thresholds=T,
                         previous=red) is WarningLevel.green
    # Going up ignores hysteresis.
    assert warning_level(unresolved=15, overdue=0, thresholds=T,
                         previous=WarningLevel.yellow) is WarningLevel.orange
