"""The scope rule itself (core.hierarchy.scope), on hand-made actors: who may appoint what,
change which node, and edit whom. The interfaces are tried in the permission matrix."""

from __future__ import annotations

import pytest

from core.hierarchy.model import Level, Role
from core.hierarchy.queries import Actor, NodeRef, PersonRef
from core.hierarchy.scope import (
    appoint_refusal,
    may_appoint,
    may_edit_person,
    node_refusal,
)

DISTRICT = NodeRef(1, "d", Level.district, "区", "/1/")
TOWN = NodeRef(2, "t", Level.town, "镇", "/1/2/", 1)
TOWN2 = NodeRef(3, "t2", Level.town, "二镇", "/1/3/", 1)
VILLAGE = NodeRef(4, "v", Level.village, "村", "/1/2/4/", 2)
AREA = NodeRef(5, "a", Level.area, "片", "/1/2/4/5/", 4)
DEPT = NodeRef(6, "dp", Level.department, "所", "/1/2/6/", 2)
VILLAGE2 = NodeRef(7, "v2", Level.village, "二村", "/1/3/7/", 3)


def admin(*nodes: NodeRef) -> Actor:
    return Actor(PersonRef(99, "管理员"), tuple((Role.admin, n) for n in nodes))


TOWN_ADMIN, DISTRICT_ADMIN, VILLAGE_ADMIN = admin(TOWN), admin(DISTRICT), admin(VILLAGE)
SECRETARY = Actor(PersonRef(98, "书记"), ((Role.secretary, VILLAGE),))


@pytest.mark.parametrize(("who", "role", "node", "allowed"), [
    (TOWN_ADMIN, Role.secretary, VILLAGE, True),
    (TOWN_ADMIN, Role.admin, VILLAGE, True),
    (TOWN_ADMIN, Role.department, DEPT, True),
    (TOWN_ADMIN, Role.area_leader, AREA, True),
    (TOWN_ADMIN, Role.admin, TOWN, False),        # own node, same rank
    (TOWN_ADMIN, Role.admin, DISTRICT, False),    # above
    (TOWN_ADMIN, Role.secretary, VILLAGE2, False),  # another town
    (DISTRICT_ADMIN, Role.admin, TOWN, True),
    (DISTRICT_ADMIN, Role.admin, DISTRICT, False),
    (VILLAGE_ADMIN, Role.area_leader, AREA, True),
    (VILLAGE_ADMIN, Role.secretary, VILLAGE, False),  # a village admin ranks as its 书记
    (SECRETARY, Role.resident, AREA, False),      # leaders appoint nobody
    (None, Role.admin, DISTRICT, True),           # the operator at the console
])
def test_who_may_appoint(who: Actor | None, role: Role, node: NodeRef, allowed: bool) -> None:
    assert may_appoint(who, role, node) is allowed
    assert (appoint_refusal(who, role, node, node.level) is None) is allowed


def test_nodes_change_only_strictly_below_and_stay_there() -> None:
    assert node_refusal(TOWN_ADMIN, before=None, after="/1/2/4/9/") is None
    assert node_refusal(TOWN_ADMIN, before="/1/2/4/", after="/1/2/4/") is None  # renamed
    assert node_refusal(TOWN_ADMIN, before="/1/2/", after="/1/2/") is not None  # own node
    assert node_refusal(TOWN_ADMIN, before="/1/2/4/", after="/1/3/4/") is not None  # moved out
    assert node_refusal(TOWN_ADMIN, before="/1/3/7/", after="/1/2/7/") is not None  # moved in
    assert node_refusal(DISTRICT_ADMIN, before="/1/2/", after="/1/2/") is None


def test_a_person_with_posts_in_two_towns_is_edited_from_above_both() -> None:
    both = [(Role.resident, AREA.path, Level.area), (Role.secretary, VILLAGE2.path,
                                                     Level.village)]
    assert not may_edit_person(TOWN_ADMIN, both)
    assert may_edit_person(DISTRICT_ADMIN, both)
    assert may_edit_person(TOWN_ADMIN, both[:1])
    assert not may_edit_person(TOWN_ADMIN, [(Role.admin, TOWN.path, Level.town)])
    assert may_edit_person(TOWN_ADMIN, [])  # nobody's yet: a new person
