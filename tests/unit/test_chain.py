"""Chain and Actor logic on plain values."""

from core.hierarchy.model import Level, Role
from core.hierarchy.queries import Actor, Chain, ChainStep, NodeRef, PersonRef

TOWN = NodeRef(2, "341602001", Level.town, "镇", "/1/2/")
VILLAGE = NodeRef(3, "341602001001", Level.village, "村", "/1/2/3/")
AREA = NodeRef(4, "34160200100101", Level.area, "片", "/1/2/3/4/")
GROUP = NodeRef(5, "3416020010010101", Level.group, "组", "/1/2/3/4/5/")
LIN = NodeRef(6, "3416020010010101001", Level.neighborhood, "邻", "/1/2/3/4/5/6/")
OTHER_TOWN = NodeRef(20, "341602002", Level.town, "另一镇", "/1/20/")
zhang, li, wang = PersonRef(1, "张三"), PersonRef(2, "李四"), PersonRef(3, "王五")


def test_vacant_posts_are_skipped_and_reported() -> None:
    chain = Chain((
        ChainStep(Role.neighbor_leader, LIN, ()),
        ChainStep(Role.group_leader, GROUP, (zhang,)),
        ChainStep(Role.area_leader, AREA, ()),
        ChainStep(Role.secretary, VILLAGE, (li,)),
    ))
    assert [s.role for s in chain.filled()] == [Role.group_leader, Role.secretary]
    assert [s.role for s in chain.vacancies()] == [Role.neighbor_leader, Role.area_leader]
    assert chain.people() == [zhang, li]


def test_a_person_holding_two_posts_appears_once_at_the_lower() -> None:
    chain = Chain((
        ChainStep(Role.neighbor_leader, LIN, (zhang,)),
        ChainStep(Role.group_leader, GROUP, (zhang, wang)),
        ChainStep(Role.area_leader, AREA, (li,)),
    ))
    assert chain.people() == [zhang, wang, li]
    assert [s.holders for s in chain.filled()] == [(zhang,), (wang,), (li,)]


def test_town_admin_manages_that_town_only() -> None:
    admin = Actor(li, ((Role.admin, TOWN),))
    assert admin.is_admin_of(LIN) and admin.is_admin_of(TOWN)
    assert not admin.is_admin_of(OTHER_TOWN)
    assert not admin.leads(LIN)
    leader = Actor(zhang, ((Role.group_leader, GROUP),))
    assert leader.leads(LIN) and leader.leads(GROUP)
    assert not leader.leads(AREA)
    assert not leader.is_admin
