"""The read side of the hierarchy on an imported city: chains, vacancies, actors, subtrees,
ancestors and finding people. Read-only, so one database per engine serves the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import FakeClock
from core.errors import NotFound
from core.hierarchy import queries as q
from core.hierarchy.importer import import_files
from core.hierarchy.model import Level, Role
from tests.citydata import (
    AREA,
    AREA2,
    AREA_B,
    AREA_VACANT,
    DB_KINDS,
    DEPT_TOWN,
    DISTRICT,
    GROUP,
    GROUP2,
    GROUP_2,
    GROUP_B,
    LIN,
    LIN2,
    LIN_B,
    LIN_G2,
    LIN_OTHER_AREA,
    LIN_VACANT,
    NODE_HEADER,
    PHONE,
    SMALL_NODES,
    TG_SUN,
    TOWN,
    TOWN2,
    VILLAGE,
    VILLAGE2,
    count,
    dump,
    fresh_engine,
    person_ids,
    write_csv,
    write_small_city,
)

TOWN3 = "341602003"  # gets a node id whose digits start with TOWN's (3 → 30)


@pytest.fixture(scope="module", params=DB_KINDS)
def db(request: pytest.FixtureRequest,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    folder = tmp_path_factory.mktemp("queries")
    with fresh_engine(request.param, request, folder) as eng:
        import_files(eng, write_small_city(folder), clock=FakeClock())
        # Pad the ids so that a third town gets id 30 next to TOWN's 3: a subtree query that
        # compared paths without their closing "/" would mix the two towns up.
        pad = [[f"34160200200{i}", TOWN2, "village", f"空村{i}"] for i in range(2, 8)]
        assert len(SMALL_NODES) + len(pad) == 29
        write_csv(folder / "more" / "nodes.csv", NODE_HEADER, [
            *pad, [TOWN3, DISTRICT, "town", "第三镇"], [TOWN3 + "001", TOWN3, "village", "三村"]])
        import_files(eng, [folder / "more" / "nodes.csv"], clock=FakeClock())
        yield eng


@pytest.fixture
def s(db: Engine) -> Iterator[Session]:
    with Session(db) as session:
        yield session


def pid(engine: Engine, who: str) -> int:
    return person_ids(engine)[PHONE[who]]


def names(people: list[q.PersonRef]) -> list[str]:
    return [p.name for p in people]


def test_chain_for_a_resident_bottom_up(db: Engine, s: Session) -> None:
    chain = q.chain_for_resident(s, pid(db, "resident_sun"))
    assert [(st.role, st.node.code) for st in chain.steps] == [
        (Role.neighbor_leader, LIN), (Role.group_leader, GROUP), (Role.area_leader, AREA),
        (Role.secretary, VILLAGE), (Role.admin, TOWN), (Role.admin, DISTRICT)]
    assert [names(list(st.holders)) for st in chain.steps] == [
        ["组长老张"], ["组长老张"], ["片长老李"], ["书记老王"], ["镇管理员"], ["区管理员"]]
    # The 组长 who is also this 邻长 appears once, at the lower post.
    assert names(chain.people()) == ["组长老张", "片长老李", "书记老王", "镇管理员", "区管理员"]
    assert [st.role for st in chain.filled()] == [
        Role.neighbor_leader, Role.area_leader, Role.secretary, Role.admin, Role.admin]
    assert chain.vacancies() == []
    assert chain.people()[0].id == pid(db, "group_leader")


def test_a_vacant_post_is_skipped_and_listed(db: Engine, s: Session) -> None:
    chain = q.chain_for_resident(s, pid(db, "resident_wu"))  # under the vacant 邻长
    assert [(st.role, st.node.code) for st in chain.vacancies()] == [
        (Role.neighbor_leader, LIN_VACANT)]
    assert chain.filled()[0].role == Role.group_leader
    assert names(chain.people()) == ["组长老张", "片长老李", "书记老王", "镇管理员", "区管理员"]

    far = q.chain_for_resident(s, pid(db, "resident_far"))  # under the vacant 片长
    assert [(st.role, st.node.code) for st in far.vacancies()] == [
        (Role.area_leader, AREA_VACANT)]
    assert names(far.people()) == ["邻长小孙", "组长小钱", "书记老王", "镇管理员", "区管理员"]


def test_vacancies_in_a_subtree(s: Session) -> None:
    village = q.node_by_code(s, VILLAGE)
    assert {(v.node.code, v.role) for v in q.vacancies(s, village)} == {
        (LIN_VACANT, Role.neighbor_leader), (AREA_VACANT, Role.area_leader)}
    town = q.node_by_code(s, TOWN)
    found = q.vacancies(s, town)
    assert {(v.node.code, v.role) for v in found} == {
        (LIN_VACANT, Role.neighbor_leader), (AREA_VACANT, Role.area_leader),
        (AREA_B, Role.area_leader), (GROUP_B, Role.group_leader),
        (LIN_B, Role.neighbor_leader)}
    assert [v.node.path for v in found] == sorted(v.node.path for v in found)
    assert len(q.vacancies(s, town, limit=2)) == 2
    # TOWN3's empty village must not leak into TOWN's list (paths "/1/3/" and "/1/30/").
    assert all(v.node.path.startswith(town.path) for v in found)
    assert [v.node.code for v in q.vacancies(s, q.node_by_code(s, TOWN3))] == [TOWN3 + "001"]
    assert q.vacancies(s, q.node_by_code(s, LIN)) == []


def test_chain_for_a_node_and_for_someone_who_lives_nowhere(db: Engine, s: Session) -> None:
    chain = q.chain_for_node(s, q.node_by_code(s, LIN2))
    assert [(st.role, st.node.code, names(list(st.holders))) for st in chain.steps] == [
        (Role.neighbor_leader, LIN2, ["邻长小冯"]), (Role.group_leader, GROUP2, []),
        (Role.area_leader, AREA2, []),
        (Role.secretary, VILLAGE2, ["书记老冯"]), (Role.admin, TOWN2, ["镇二管理员"]),
        (Role.admin, DISTRICT, ["区管理员"])]
    with pytest.raises(NotFound):
        q.chain_for_resident(s, pid(db, "secretary"))  # holds posts, but is no resident


def test_actor_and_admin_reach(db: Engine, s: Session) -> None:
    town = q.node_by_code(s, TOWN)
    town2, town3 = q.node_by_code(s, TOWN2), q.node_by_code(s, TOWN3)
    assert town3.path.startswith(town.path[:-1]) and town3.path != town.path  # "/1/3" & "/1/30/"
    admin = q.actor(s, pid(db, "town_admin"))
    assert admin.is_admin and admin.roles() == {Role.admin}
    assert [n.code for n in admin.admin_scopes()] == [TOWN]
    for inside in (TOWN, DEPT_TOWN, VILLAGE, LIN, LIN_B):
        assert admin.is_admin_of(q.node_by_code(s, inside)), inside
    for outside in (DISTRICT, TOWN2, LIN2, TOWN3, TOWN3 + "001"):
        assert not admin.is_admin_of(q.node_by_code(s, outside)), outside
    assert admin.is_admin_of(q.node_by_code(s, LIN).path)
    assert not admin.is_admin_of(town3.path)
    district = q.actor(s, pid(db, "district_admin"))
    assert district.is_admin_of(town2) and district.is_admin_of(town3)
    assert q.actor(s, pid(db, "town2_admin")).is_admin_of(q.node_by_code(s, LIN2))
    assert not q.actor(s, pid(db, "town2_admin")).is_admin_of(town)

    leader = q.actor(s, pid(db, "group_leader"))
    assert not leader.is_admin and not leader.is_admin_of(q.node_by_code(s, LIN))
    assert leader.roles() == {Role.group_leader, Role.neighbor_leader}
    assert leader.holds(Role.neighbor_leader, q.node_by_code(s, LIN))
    assert not leader.holds(Role.neighbor_leader, q.node_by_code(s, LIN_VACANT))
    assert leader.leads(q.node_by_code(s, LIN_VACANT))  # under the group they lead
    assert not leader.leads(q.node_by_code(s, LIN_G2))  # another group
    assert not leader.leads(q.node_by_code(s, AREA))  # above them
    resident = q.actor(s, pid(db, "resident_sun"))
    assert [n.code for n in resident.residences()] == [LIN]
    assert not resident.leads(q.node_by_code(s, LIN))
    with pytest.raises(NotFound):
        q.actor(s, 10**9)


def test_subtree_and_ancestors(s: Session) -> None:
    village = q.node_by_code(s, VILLAGE)
    sub = q.subtree(s, village)
    want = sorted(c for c, *_ in SMALL_NODES if c.startswith(VILLAGE))
    assert sorted(n.code for n in sub) == want
    assert sub[0].code == VILLAGE and [n.path for n in sub] == sorted(n.path for n in sub)
    assert q.subtree_count(s, village) == len(want)
    assert [n.code for n in q.subtree(s, village, levels=[Level.neighborhood])] == [
        n.code for n in sub if n.level == Level.neighborhood]
    assert {n.code for n in q.subtree(s, village, levels=[Level.neighborhood])} == {
        LIN, LIN_VACANT, LIN_G2, LIN_OTHER_AREA}
    assert len(q.subtree(s, village, limit=3)) == 3
    town = q.node_by_code(s, TOWN)
    assert not any(n.code.startswith(TOWN3) for n in q.subtree(s, town))
    assert {n.code for n in q.subtree(s, q.node_by_code(s, TOWN3))} == {TOWN3, TOWN3 + "001"}
    assert [n.code for n in q.subtree(s, q.node_by_code(s, LIN))] == [LIN]

    lin = q.node_by_code(s, LIN)
    assert [n.code for n in q.ancestors(s, lin)] == [DISTRICT, TOWN, VILLAGE, AREA, GROUP]
    assert [n.code for n in q.ancestors(s, lin, include_self=True)][-1] == LIN
    assert q.ancestors(s, q.node_by_code(s, DISTRICT)) == []
    assert [n.code for n in q.children(s, q.node_by_code(s, GROUP))] == [LIN, LIN_VACANT]
    assert [n.code for n in q.roots(s)] == [DISTRICT]
    assert q.node_by_code(s, f"  {GROUP_2} ").code == GROUP_2
    with pytest.raises(NotFound):
        q.node_by_code(s, "000")


def test_find_people(db: Engine, s: Session) -> None:
    def found(text: str, within: str | None = None) -> list[str]:
        scope = q.node_by_code(s, within) if within else None
        return sorted(p.name for p, _, _ in q.find_people(s, text, within=scope))

    assert found("老") == sorted(["书记老王", "片长老李", "组长老张", "书记老郑", "书记老冯"])
    assert found("老", within=VILLAGE) == sorted(["书记老王", "片长老李", "组长老张"])
    assert found("老", within=TOWN2) == ["书记老冯"]
    assert found(PHONE["secretary"]) == ["书记老王"]
    assert found("+86 139-0000-0004") == ["书记老王"]
    assert found(LIN) == sorted(["组长老张", "居民孙", "居民周"])  # a node code: who is there
    assert found("") == [] and found("   ") == []
    person, phone, posts = q.find_people(s, "组长老张")[0]
    assert phone == PHONE["group_leader"]
    assert [(r, n.code) for r, n in posts] == [(Role.group_leader, GROUP),
                                               (Role.neighbor_leader, LIN)]
    assert person.id == pid(db, "group_leader")
    assert len(q.find_people(s, "居民", limit=2)) == 2


@pytest.mark.parametrize("text", ["%", "_", "%%", "\\", "'", "'; DROP TABLE person; --",
                                  "\" OR 1=1 --", "老%", "_老"])
def test_find_people_with_sql_metacharacters_finds_nothing_and_breaks_nothing(
    db: Engine, s: Session, text: str
) -> None:
    before = dump(db)
    assert q.find_people(s, text) == []
    s.rollback()
    assert dump(db) == before
    assert count(db, "person") == len(set(PHONE.values()))


def test_who_is_this_account_or_phone(db: Engine, s: Session) -> None:
    sun = pid(db, "resident_sun")
    assert _person(q.actor_by_identity(s, "telegram", TG_SUN)) == sun
    assert _person(q.actor_by_identity(s, "telegram", int(TG_SUN))) == sun  # type: ignore[arg-type]
    assert _person(q.actor_by_identity(s, "wechat", "oSunOpenId")) == sun
    assert _person(q.actor_by_identity(s, "wecom", "zhou.wecom")) == pid(db, "resident_zhou")
    # the right id, the wrong platform
    assert _person(q.actor_by_identity(s, "wechat", TG_SUN)) is None
    assert _person(q.actor_by_identity(s, "telegram", "404")) is None
    assert q.person_by_phone(s, PHONE["resident_sun"]) == sun
    assert q.person_by_phone(s, "+86 " + PHONE["resident_sun"]) == sun
    assert q.person_by_phone(s, "13999999999") is None
    assert q.person_by_phone(s, "not a phone") is None
    a = q.actor_by_identity(s, "telegram", TG_SUN)
    assert a is not None and a.person.name == "居民孙"
    assert q.actor_by_identity(s, "telegram", "404") is None
    assert q.identities_of(s, sun) == [("telegram", TG_SUN, False),
                                       ("wechat", "oSunOpenId", False)]
    assert names(q.holders(s, q.node_by_code(s, LIN), Role.resident)) == ["居民孙", "居民周"]
    assert q.residence_of(s, sun).code == LIN


def _person(who: q.Actor | None) -> int | None:
    """The person an account belongs to (None: a stranger)."""
    return who.person.id if who is not None else None
