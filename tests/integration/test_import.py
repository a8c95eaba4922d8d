"""`import_files` on real databases: a generated city, edits in place, every kind of bad row,
all-or-nothing, and the spellings of FORMATS.md (Chinese headers, BOM, GB18030, XLSX)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import FakeClock
from core.db import session_scope
from core.errors import ImportRejected, InvalidInput, RowError
from core.hierarchy.importer import ImportReport, import_files
from core.hierarchy.services import link_identity
from tests.citydata import (
    AREA,
    CATEGORY_HEADER,
    DB_KINDS,
    DEPT_TOWN,
    DISTRICT,
    GROUP,
    GROUP_2,
    LIN,
    LIN_G2,
    MEMBER_HEADER,
    NODE_HEADER,
    PHONE,
    SMALL_CATEGORIES,
    SMALL_MEMBERS,
    SMALL_NODES,
    TG_SUN,
    TOWN,
    TOWN2,
    VILLAGE,
    count,
    dump,
    fresh_engine,
    generate_city,
    path_problems,
    person_ids,
    read_csv,
    write_csv,
    write_small_city,
    write_xlsx,
)

# ---------------------------------------------------------------------------------------------
# A generated city


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_city(tmp_path_factory.mktemp("city"))


def _files(folder: Path) -> list[Path]:
    return [folder / "nodes.csv", folder / "members.csv", folder / "categories.csv"]


def test_generated_city_imports_whole_and_reimports_unchanged(
    engine: Engine, city: Path, clock: FakeClock
) -> None:
    _, nodes = read_csv(city / "nodes.csv")
    _, members = read_csv(city / "members.csv")
    _, categories = read_csv(city / "categories.csv")
    phones = {m[1] for m in members}
    identities = {(col, m[col]) for m in members for col in (5, 6, 7) if m[col]}
    assert len(nodes) > 250 and len(members) > 2000  # the city is what the test thinks it is

    report = import_files(engine, _files(city), clock=clock)

    assert (report.nodes_added, report.nodes_updated) == (len(nodes), 0)
    assert (report.people_added, report.people_updated) == (len(phones), 0)
    assert (report.posts_added, report.posts_updated) == (len(members), 0)
    assert report.identities_added == len(identities)
    assert report.categories_added == len(categories)
    assert report.rows_read == {"nodes.csv": len(nodes), "members.csv": len(members)}
    assert report.changed
    assert count(engine, "node") == len(nodes)
    assert count(engine, "person") == len(phones)
    assert count(engine, "post") == len(members)
    assert count(engine, "chat_identity") == len(identities)
    assert count(engine, "category") == len(categories)
    assert path_problems(engine) == []
    with engine.connect() as conn:
        stored = {tuple(r) for r in conn.execute(sa.text(
            "SELECT n.code, COALESCE(p.code, ''), n.level, n.name FROM node n"
            " LEFT JOIN node p ON p.id = n.parent_id"))}
        posts = {tuple(r) for r in conn.execute(sa.text(
            "SELECT p.name, p.phone, x.role, n.code, COALESCE(x.address, '') FROM post x"
            " JOIN person p ON p.id = x.person_id JOIN node n ON n.id = x.node_id"))}
        created = {r[0] for r in conn.execute(sa.text("SELECT created_at FROM person"))}
    assert stored == {tuple(n) for n in nodes}
    assert posts == {tuple(m[:5]) for m in members}
    assert len(created) == 1 and None not in created  # stamped with the given clock

    before = dump(engine)
    again = import_files(engine, _files(city), clock=clock)
    assert again.changed is False, again.summary()
    assert dump(engine) == before


def _edit_city(city: Path, out: Path) -> dict[str, object]:
    """Copy the generated city with edits; returns what was edited."""
    header, nodes = read_csv(city / "nodes.csv")
    mheader, members = read_csv(city / "members.csv")
    by_level: dict[str, list[list[str]]] = {}
    for n in nodes:
        by_level.setdefault(n[2], []).append(n)
    village = by_level["village"][0]
    village[3] = village[3] + "（更名）"
    group = by_level["group"][0]
    new_area = next(a for a in by_level["area"] if a[0] != group[1])
    group[1] = new_area[0]  # the group moves with its neighborhoods
    lin = next(n for n in by_level["neighborhood"]
               if not n[0].startswith(group[0]))
    new_group = next(g for g in by_level["group"] if g[0] not in (lin[1], group[0]))
    lin[1] = new_group[0]
    resident = next(m for m in members if m[2] == "resident")
    resident[0], resident[4] = "改名者", "新地址8号"
    new_row = ["新来的", "13812345678", "resident", lin[0], "新楼1室", "", "", ""]
    for m in members:
        m[5] = ""  # the town office's file lost the telegram column's contents
    write_csv(out / "nodes.csv", header, nodes)
    write_csv(out / "members.csv", mheader, [*members, new_row])
    shutil.copy(city / "categories.csv", out / "categories.csv")
    moved_lins = [n[0] for n in by_level["neighborhood"] if n[1] == group[0]]
    return {"village": village[0], "group": group[0], "area": new_area[0], "lin": lin[0],
            "lin_group": new_group[0], "resident_phone": resident[1], "moved_lins": moved_lins}


def test_edited_files_update_in_place_and_keep_chat_identities(
    engine: Engine, city: Path, tmp_path: Path, clock: FakeClock
) -> None:
    import_files(engine, _files(city), clock=clock)
    ids_before = person_ids(engine)
    first_phone = next(iter(sorted(ids_before)))
    with session_scope(engine) as s:
        link_identity(s, person_id=ids_before[first_phone], platform="telegram",
                      external_id="999000111", now=clock.now(), proof="contact")
    identities_before = dump(engine)["chat_identity"]
    edits = _edit_city(city, tmp_path / "edited")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rollup_state SET rebuild = false"))

    report = import_files(engine, _files(tmp_path / "edited"), clock=clock)
    with engine.connect() as conn:
        # Nodes moved: the figure rollups, filed by village path, are due for a rebuild.
        assert conn.execute(sa.text("SELECT rebuild FROM rollup_state")).scalar_one()

    moved = edits["moved_lins"]
    assert isinstance(moved, list) and moved
    # village renamed, group + its neighborhoods re-pathed, one neighborhood moved.
    assert (report.nodes_added, report.nodes_updated) == (0, 3 + len(moved))
    assert (report.people_added, report.people_updated) == (1, 1)
    assert (report.posts_added, report.posts_updated) == (1, 1)
    assert report.identities_added == 0
    ids_after = person_ids(engine)
    assert {ph: ids_after[ph] for ph in ids_before} == ids_before  # same people, same ids
    assert len(ids_after) == len(ids_before) + 1
    assert dump(engine)["chat_identity"] == identities_before  # nothing lost, nothing added
    assert path_problems(engine) == []
    with engine.connect() as conn:
        def node(code: object) -> sa.Row:  # type: ignore[type-arg]
            return conn.execute(sa.text(
                "SELECT n.id, n.path, n.name, p.code AS parent FROM node n"
                " JOIN node p ON p.id = n.parent_id WHERE n.code = :c"), {"c": code}).one()

        group, area = node(edits["group"]), node(edits["area"])
        assert group.parent == edits["area"] and group.path == f"{area.path}{group.id}/"
        for code in moved:
            assert node(code).path == f"{group.path}{node(code).id}/"
        lin, lin_group = node(edits["lin"]), node(edits["lin_group"])
        assert lin.parent == edits["lin_group"] and lin.path == f"{lin_group.path}{lin.id}/"
        assert node(edits["village"]).name.endswith("（更名）")
        person = conn.execute(sa.text(
            "SELECT p.name, x.address FROM person p JOIN post x ON x.person_id = p.id"
            " WHERE p.phone = :ph"), {"ph": edits["resident_phone"]}).one()
        assert tuple(person) == ("改名者", "新地址8号")
    # The same edited files again: nothing left to do.
    assert import_files(engine, _files(tmp_path / "edited"), clock=clock).changed is False


def test_a_failed_import_leaves_every_table_as_it_was(
    engine: Engine, city: Path, tmp_path: Path, clock: FakeClock
) -> None:
    import_files(engine, _files(city), clock=clock)
    with session_scope(engine) as s:
        link_identity(s, person_id=min(person_ids(engine).values()), platform="wechat",
                      external_id="oExtraAccount", now=clock.now(), proof="contact")
    before = dump(engine)
    edited = tmp_path / "edited"
    _edit_city(city, edited)
    header, nodes = read_csv(edited / "nodes.csv")
    mheader, members = read_csv(edited / "members.csv")
    village = first_of(nodes, "village")
    new_nodes = [[f"{village}9{i:02d}", village, "area", f"新片{i}"] for i in range(20)]
    new_members = [[f"新人{i}", f"1370000{i:04d}", "area_leader", n[0], "", str(8_000_000 + i),
                    "", ""] for i, n in enumerate(new_nodes)]

    # 1. A bad node row after many good edits: rejected in the nodes phase.
    write_csv(edited / "nodes.csv", header,
              [*nodes, *new_nodes, ["X1", first_of(nodes, "district"), "hamlet", "坏"]])
    write_csv(edited / "members.csv", mheader, [*members, *new_members])
    with pytest.raises(ImportRejected) as exc:
        import_files(engine, _files(edited), clock=clock)
    assert [(e.file, e.row) for e in exc.value.errors] == [("nodes.csv", len(nodes) + 22)]
    assert dump(engine) == before

    # 2. Every row fine on its own, but the last repeats a post: rejected by the SQL checks
    #    that run after the members were staged.
    write_csv(edited / "nodes.csv", header, [*nodes, *new_nodes])
    write_csv(edited / "members.csv", mheader, [*members, *new_members, new_members[3]])
    with pytest.raises(ImportRejected) as exc:
        import_files(engine, _files(edited), clock=clock)
    row = len(members) + len(new_members) + 2
    assert [(e.file, e.row) for e in exc.value.errors] == [("members.csv", row)]
    assert "duplicate" in exc.value.errors[0].reason
    assert dump(engine) == before

    # 3. One phone with two names: also caught by the SQL checks.
    clash = [*new_members[:1],
             _m("别名", new_members[0][1], "resident", first_of(nodes, "neighborhood"))]
    write_csv(edited / "members.csv", mheader, [*members, *new_members[1:], *clash])
    with pytest.raises(ImportRejected):
        import_files(engine, _files(edited), clock=clock)
    assert dump(engine) == before

    # The staging table of the failed attempts is gone: the good files now import.
    write_csv(edited / "members.csv", mheader, [*members, *new_members])
    report = import_files(engine, _files(edited), clock=clock)
    assert report.nodes_added == 20 and report.posts_added == 21
    assert report.identities_added == 20
    assert path_problems(engine) == []


def first_of(nodes: list[list[str]], level: str) -> str:
    return next(n[0] for n in nodes if n[2] == level)


# ---------------------------------------------------------------------------------------------
# Every kind of bad row, against one small city per engine. A rejected import must leave the
# database exactly as it was, so the cases can share it (and each one checks that it did).


@pytest.fixture(scope="module", params=DB_KINDS)
def small_db(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    folder = tmp_path_factory.mktemp("small")
    with fresh_engine(request.param, request, folder) as eng:
        import_files(eng, write_small_city(folder), clock=FakeClock())
        yield eng


def rejected(engine: Engine, paths: list[Path], **kw: object) -> ImportRejected:
    before = dump(engine)
    with pytest.raises(ImportRejected) as exc:
        import_files(engine, paths, **kw)  # type: ignore[arg-type]
    assert dump(engine) == before, "a rejected import changed the database"
    return exc.value


def assert_errors(errors: list[RowError], want: list[tuple[str, int, str]]) -> None:
    got = [(e.file, e.row) for e in errors]
    assert got == [(f, r) for f, r, _ in want], [str(e) for e in errors]
    for e, (_, _, pattern) in zip(errors, want, strict=True):
        assert re.search(pattern, e.reason), f"{e} does not match {pattern!r}"


NEW = "13911110000"
NEW2 = "13911110001"
NEW_AREA = "34160200100103"


def _m(name: str, phone: str, role: str, node: str, tg: str = "", openid: str = "",
       wecom: str = "") -> list[str]:
    return [name, phone, role, node, "", tg, openid, wecom]


BAD_NODES: list[tuple[str, list[list[str]], list[tuple[int, str]]]] = [
    ("unknown level",
     [[NEW_AREA, VILLAGE, "area", "第3片"], ["34160200100104", VILLAGE, "hamlet", "坏"]],
     [(3, r"unknown level 'hamlet'")]),
    ("group under a town",
     [["3416020019901", TOWN, "group", "坏组"]],
     [(2, r"wrong nesting: a group cannot sit under a town \(wants area\)")]),
    ("department under a village",
     [[VILLAGE + "D01", VILLAGE, "department", "坏部门"]],
     [(2, r"wrong nesting: a department cannot sit under a village \(wants district or town\)")]),
    ("parent that does not exist",
     [["341699001", "341699", "town", "无主镇"]],
     [(2, r"parent 341699 does not exist")]),
    ("duplicate code",
     [[NEW_AREA, VILLAGE, "area", "第3片"], [NEW_AREA, VILLAGE, "area", "又一个第3片"]],
     [(3, r"duplicate code 34160200100103 \(first on nodes\.csv:2\)")]),
    ("cycle between two stored nodes, both rows in the file",
     # Each names the other as its parent. Levels nest strictly, so with both rows in the file
     # the nesting rule catches it: a group cannot sit under a neighborhood.
     [[AREA, GROUP, "neighborhood", "第1片"], [GROUP, AREA, "group", "1组"]],
     [(3, r"wrong nesting: a group cannot sit under a neighborhood")]),
    ("cycle through a stored child",
     # The area becomes a neighborhood under its own stored group, which still names the area
     # as its parent: every row nests, but the tree would loop.
     [[AREA, GROUP, "neighborhood", "第1片"]],
     [(2, rf"node {AREA} would be its own ancestor \({AREA} → {GROUP} → {AREA}\)")]),
    ("level change that breaks stored children",
     [[TOWN2, DISTRICT, "department", "古井镇"]],  # a department may sit under a district
     [(2, r"changing 341602002 to department would break its child 341602002001")]),
    ("level change that breaks stored posts",
     [[DEPT_TOWN, TOWN, "village", "派出所"]],  # a village may sit under a town; its liaison not
     [(2, r"changing 341602001D02 to village conflicts with its posts: role department is "
          r"held on a department, not on a village")]),
    ("empty name", [[NEW_AREA, VILLAGE, "area", ""]], [(2, r"name is empty")]),
    ("malformed code", [["34 16", VILLAGE, "area", "坏"]], [(2, r"code '34 16' is malformed")]),
]

BAD_MEMBERS: list[tuple[str, list[list[str]], list[tuple[int, str]]]] = [
    ("malformed phone", [_m("新人", "1390000", "resident", LIN)],
     [(2, r"malformed phone '1390000'")]),
    ("duplicate member row",
     [_m("新人", NEW, "resident", LIN), _m("新人", NEW, "resident", LIN)],
     [(3, rf"duplicate: {NEW} already holds resident on this node \(members\.csv:2\)")]),
    ("duplicate member row, phone spelled differently",
     [_m("新人", NEW, "resident", LIN), _m("新人", "+86 139-1111-0000", "居民", LIN)],
     [(3, rf"duplicate: {NEW} already holds resident")]),
    ("unknown role", [_m("新人", NEW, "mayor", LIN)], [(2, r"unknown role 'mayor'")]),
    ("role on the wrong level", [_m("新人", NEW, "neighbor_leader", GROUP)],
     [(2, r"role neighbor_leader is held on a neighborhood, not on a group")]),
    ("secretary on a town", [_m("新人", NEW, "书记", TOWN)],
     [(2, r"role secretary is held on a village, not on a town")]),
    ("one phone, two names",
     [_m("甲", NEW, "resident", LIN), _m("乙", NEW, "resident", LIN_G2)],
     [(3, r"the phone of 乙 is already given to 甲 \(members\.csv:2\); one phone is one person")]),
    ("telegram id given to two phones",
     [_m("甲", NEW, "resident", LIN, tg="777000"), _m("乙", NEW2, "resident", LIN, tg="777000")],
     [(3, r"telegram_user_id 777000 is already given to another person \(members\.csv:2\)")]),
    ("wechat openid given to two phones",
     [_m("甲", NEW, "resident", LIN, openid="oAbc"), _m("乙", NEW2, "resident", LIN,
                                                       openid="oAbc")],
     [(3, r"wechat_openid oAbc is already given to another person")]),
    ("telegram id bound in the database to another person",
     [_m("甲", NEW, "resident", LIN, tg=TG_SUN)],
     [(2, rf"telegram_user_id {TG_SUN} already belongs to 居民孙")]),
    ("wecom id bound in the database to another person",
     [_m("甲", NEW, "resident", LIN, wecom="zhou.wecom")],
     [(2, r"wecom_userid zhou\.wecom already belongs to 居民周")]),
    ("empty name", [_m("", NEW, "resident", LIN)], [(2, r"name is empty")]),
    ("node code that does not exist", [_m("新人", NEW, "resident", "3416029999")],
     [(2, r"node 3416029999 does not exist")]),
    ("empty node code", [_m("新人", NEW, "resident", "")], [(2, r"node_code is empty")]),
    ("malformed telegram id", [_m("新人", NEW, "resident", LIN, tg="12ab")],
     [(2, r"malformed telegram_user_id '12ab'")]),
    ("telegram id with a leading zero", [_m("新人", NEW, "resident", LIN, tg="0123")],
     [(2, r"malformed telegram_user_id '0123'")]),
    ("malformed wechat openid", [_m("新人", NEW, "resident", LIN, openid="o bad!")],
     [(2, r"malformed wechat_openid 'o bad!'")]),
]


@pytest.mark.parametrize(("rows", "want"), [c[1:] for c in BAD_NODES],
                         ids=[c[0] for c in BAD_NODES])
def test_bad_node_row(small_db: Engine, tmp_path: Path, rows: list[list[str]],
                      want: list[tuple[int, str]]) -> None:
    exc = rejected(small_db, [write_csv(tmp_path / "nodes.csv", NODE_HEADER, rows)])
    assert_errors(exc.errors, [("nodes.csv", r, p) for r, p in want])


@pytest.mark.parametrize(("rows", "want"), [c[1:] for c in BAD_MEMBERS],
                         ids=[c[0] for c in BAD_MEMBERS])
def test_bad_member_row(small_db: Engine, tmp_path: Path, rows: list[list[str]],
                        want: list[tuple[int, str]]) -> None:
    exc = rejected(small_db, [write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows)])
    assert_errors(exc.errors, [("members.csv", r, p) for r, p in want])


def test_the_same_kinds_of_rows_are_fine_when_nothing_clashes(engine: Engine,
                                                               tmp_path: Path) -> None:
    """The control for the cases above: a new node and people on it in one import."""
    import_files(engine, write_small_city(tmp_path / "city"))
    folder = tmp_path / "ok"
    nodes = write_csv(folder / "nodes.csv", NODE_HEADER, [[NEW_AREA, VILLAGE, "area", "第3片"]])
    members = write_csv(folder / "members.csv", MEMBER_HEADER, [
        _m("新片长", NEW, "area_leader", NEW_AREA, tg="777001"),
        _m("新片长", NEW, "resident", LIN, tg="777001"),  # same person, same account: fine
        _m("居民孙", PHONE["resident_sun"], "resident", LIN_G2, tg=TG_SUN),  # their own account
    ])
    report = import_files(engine, [nodes, members])
    assert (report.nodes_added, report.people_added, report.posts_added) == (1, 1, 3)
    assert report.identities_added == 1 and report.people_updated == 0


def test_every_bad_row_is_reported_with_its_row_number(small_db: Engine, tmp_path: Path) -> None:
    rows = [
        _m("好人", NEW, "resident", LIN),  # row 2
        _m("坏电话", "12345", "resident", LIN),  # row 3
        _m("好人二", NEW2, "resident", LIN_G2),  # row 4
        _m("坏角色", "13911110002", "chief", LIN),  # row 5
        _m("", "13911110003", "resident", LIN),  # row 6
    ]
    exc = rejected(small_db, [write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows)])
    assert_errors(exc.errors, [("members.csv", 3, "malformed phone '12345'"),
                               ("members.csv", 5, "unknown role 'chief'"),
                               ("members.csv", 6, "name is empty")])
    assert exc.report().splitlines() == [
        "members.csv:3: malformed phone '12345' (an 11-digit mainland mobile number)",
        "members.csv:5: unknown role 'chief'",
        "members.csv:6: name is empty",
    ]


def test_bad_single_rows_and_cross_row_clashes_are_reported_together(
    small_db: Engine, tmp_path: Path
) -> None:
    rows = [
        _m("甲", NEW, "resident", LIN),  # row 2
        _m("坏电话", "12345", "resident", LIN),  # row 3: bad on its own
        _m("甲", NEW, "resident", LIN),  # row 4: repeats row 2
        _m("乙", NEW, "admin", TOWN),  # row 5: another name for row 2's phone
    ]
    exc = rejected(small_db, [write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows)])
    assert_errors(exc.errors, [("members.csv", 3, "malformed phone"),
                               ("members.csv", 4, "duplicate"),
                               ("members.csv", 5, "one phone is one person")])


def test_bad_rows_in_several_files_are_all_reported(small_db: Engine, tmp_path: Path) -> None:
    nodes = write_csv(tmp_path / "nodes.csv", NODE_HEADER, [
        [NEW_AREA, VILLAGE, "area", "第3片"], ["3416020010010199", AREA, "组别", "坏"]])
    members = write_csv(tmp_path / "members.csv", MEMBER_HEADER, [
        _m("新人", NEW, "area_leader", NEW_AREA), _m("坏电话", "110", "resident", LIN)])
    cats = write_csv(tmp_path / "categories.csv", CATEGORY_HEADER, [["其他", "D-1"]])
    exc = rejected(small_db, [nodes, members, cats])
    assert_errors(exc.errors, [("categories.csv", 2, r"department suffix 'D-1' is malformed"),
                               ("members.csv", 3, r"malformed phone '110'"),
                               ("nodes.csv", 3, r"unknown level '组别'")])


def test_max_errors_keeps_the_first_and_counts_the_rest(small_db: Engine,
                                                        tmp_path: Path) -> None:
    rows = [_m(f"人{i}", f"1234{i}", "resident", LIN) for i in range(12)]
    exc = rejected(small_db, [write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows)],
                   max_errors=5)
    assert [e.row for e in exc.errors] == [2, 3, 4, 5, 6]
    assert exc.truncated == 7
    assert "12 bad row(s)" in str(exc)
    assert exc.report().splitlines()[-1] == "... and 7 more bad rows"


def test_max_errors_also_bounds_the_sql_checks(small_db: Engine, tmp_path: Path) -> None:
    """Six rows give the phone of row 2 another name; only three are listed."""
    nodes = [LIN, LIN_G2, GROUP, AREA, VILLAGE, TOWN]
    rows = [_m("甲", NEW, "resident", LIN)] + [_m(f"乙{i}", NEW, "admin", n)
                                              for i, n in enumerate(nodes)]
    exc = rejected(small_db, [write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows)],
                   max_errors=3)
    assert [e.row for e in exc.errors] == [3, 4, 5]
    assert all("one phone is one person" in e.reason for e in exc.errors)
    assert exc.truncated == 3
    assert "6 bad row(s)" in str(exc)

    rows = [_m("甲", NEW, "resident", LIN)] * 7  # six repeats of row 2
    exc = rejected(small_db, [write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows)],
                   max_errors=2)
    assert [(e.row, e.reason) for e in exc.errors] == [
        (r, f"duplicate: {NEW} already holds resident on this node (members.csv:2)")
        for r in (3, 4)]
    assert exc.truncated == 4


# ---------------------------------------------------------------------------------------------
# Spellings: Chinese headers and values, BOM, GB18030, XLSX, extra columns.

ZH_LEVEL = {"district": "区县", "town": "乡镇(街道)", "village": "村", "area": "片",
            "group": "组", "neighborhood": "邻", "department": "职能部门"}
ZH_ROLE = {"admin": "管理员", "secretary": "书记", "area_leader": "片长",
           "group_leader": "组长", "neighbor_leader": "邻长", "resident": "居民",
           "department": "部门联络员"}
ZH_NODE_HEADER = ["编码", "上级编码", "层级", "名称"]
ZH_MEMBER_HEADER = ["姓名", "手机号", "角色", "所属编码", "住址", "Telegram ID", "微信OpenID",
                    "企业微信UserID"]
ZH_CATEGORY_HEADER = ["类别", "责任部门"]


def _write_chinese(folder: Path, encoding: str = "utf-8") -> list[Path]:
    # File names that say nothing: the headers alone must tell the tables apart.
    return [
        write_csv(folder / "网格.csv", ZH_NODE_HEADER,
                  [[c, p, ZH_LEVEL[lv], n] for c, p, lv, n in SMALL_NODES], encoding),
        write_csv(folder / "人员.csv", ZH_MEMBER_HEADER,
                  [[m[0], m[1], ZH_ROLE[m[2]], *m[3:]] for m in SMALL_MEMBERS], encoding),
        write_csv(folder / "分类.csv", ZH_CATEGORY_HEADER, SMALL_CATEGORIES, encoding),
    ]


def _same_as_english(engine: Engine, tmp_path: Path, first: ImportReport) -> None:
    """The English files of the small city change nothing after `first` was imported."""
    assert (first.nodes_added, first.people_added, first.posts_added) == (
        len(SMALL_NODES), len({m[1] for m in SMALL_MEMBERS}), len(SMALL_MEMBERS))
    assert first.identities_added == 3 and first.categories_added == 3
    before = dump(engine)
    again = import_files(engine, write_small_city(tmp_path / "english"))
    assert again.changed is False, again.summary()
    assert dump(engine) == before


def test_chinese_headers_and_values(engine: Engine, tmp_path: Path) -> None:
    report = import_files(engine, _write_chinese(tmp_path / "zh"))
    assert set(report.rows_read) == {"网格.csv", "人员.csv"}
    _same_as_english(engine, tmp_path, report)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_bom_and_gb18030_files(sqlite_engine: Engine, tmp_path: Path, encoding: str) -> None:
    paths = _write_chinese(tmp_path / "zh", encoding)
    raw = paths[1].read_bytes()
    if encoding == "utf-8-sig":
        assert raw.startswith(b"\xef\xbb\xbf")
    else:
        assert "姓名".encode("gb18030") in raw and "姓名".encode() not in raw
    _same_as_english(sqlite_engine, tmp_path, import_files(sqlite_engine, paths))


def test_bom_on_english_headers(sqlite_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "bom"
    paths = [write_csv(folder / "a.csv", NODE_HEADER, SMALL_NODES, "utf-8-sig"),
             write_csv(folder / "b.csv", MEMBER_HEADER, SMALL_MEMBERS, "utf-8-sig"),
             write_csv(folder / "c.csv", CATEGORY_HEADER, SMALL_CATEGORIES, "utf-8-sig")]
    _same_as_english(sqlite_engine, tmp_path, import_files(sqlite_engine, paths))


def _numeric(m: list[str]) -> list[object]:
    """A members row as Excel keeps it: phone and telegram id typed in as numbers."""
    return [m[0], int(m[1]), m[2], m[3], m[4], int(m[5]) if m[5] else None, m[6] or None,
            m[7] or None]


def test_xlsx_workbook_with_three_sheets(engine: Engine, tmp_path: Path) -> None:
    book = write_xlsx(tmp_path / "城市.xlsx", {
        "nodes": (NODE_HEADER, SMALL_NODES),
        "members": (MEMBER_HEADER, [_numeric(m) for m in SMALL_MEMBERS]),
        "categories": (CATEGORY_HEADER, SMALL_CATEGORIES),
    })
    report = import_files(engine, [book])
    assert report.rows_read == {"城市.xlsx[nodes]": len(SMALL_NODES),
                                "城市.xlsx[members]": len(SMALL_MEMBERS)}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT external_id FROM chat_identity"
                                    " WHERE platform = 'telegram'")).scalar_one() == TG_SUN
    _same_as_english(engine, tmp_path, report)


def test_xlsx_one_sheet_per_file_with_chinese_headers(sqlite_engine: Engine,
                                                      tmp_path: Path) -> None:
    paths = [
        write_xlsx(tmp_path / "1.xlsx", {"Sheet1": (ZH_NODE_HEADER, [
            [c, p, ZH_LEVEL[lv], n] for c, p, lv, n in SMALL_NODES])}),
        write_xlsx(tmp_path / "2.xlsx", {"Sheet1": (ZH_MEMBER_HEADER, [
            _numeric([m[0], m[1], ZH_ROLE[m[2]], *m[3:]]) for m in SMALL_MEMBERS])}),
        write_xlsx(tmp_path / "3.xlsx", {"Sheet1": (ZH_CATEGORY_HEADER, SMALL_CATEGORIES)}),
    ]
    report = import_files(sqlite_engine, paths)
    assert set(report.rows_read) == {"1.xlsx", "2.xlsx"}
    _same_as_english(sqlite_engine, tmp_path, report)


def test_unknown_extra_columns_are_ignored(sqlite_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "extra"
    paths = [
        write_csv(folder / "nodes.csv", ["备注", *NODE_HEADER, "population"],
                  [["x", *n, "12"] for n in SMALL_NODES]),
        write_csv(folder / "members.csv", [*MEMBER_HEADER[:4], "年龄", *MEMBER_HEADER[4:]],
                  [[*m[:4], "40", *m[4:]] for m in SMALL_MEMBERS]),
        write_csv(folder / "categories.csv", ["序号", *CATEGORY_HEADER],
                  [[str(i), *c] for i, c in enumerate(SMALL_CATEGORIES)]),
    ]
    _same_as_english(sqlite_engine, tmp_path, import_files(sqlite_engine, paths))


def test_a_members_file_without_the_optional_columns(sqlite_engine: Engine,
                                                     tmp_path: Path) -> None:
    import_files(sqlite_engine, write_small_city(tmp_path / "city"))
    before = dump(sqlite_engine)
    short = write_csv(tmp_path / "short" / "members.csv", MEMBER_HEADER[:4],
                      [m[:4] for m in SMALL_MEMBERS])
    report = import_files(sqlite_engine, [short])
    assert (report.people_added, report.people_updated, report.posts_added) == (0, 0, 0)
    assert dump(sqlite_engine)["chat_identity"] == before["chat_identity"]
    assert dump(sqlite_engine)["person"] == before["person"]


def test_an_unrecognisable_header_is_a_clean_error(sqlite_engine: Engine,
                                                   tmp_path: Path) -> None:
    weird = write_csv(tmp_path / "weird.csv", ["foo", "bar", "名称"], [["1", "2", "3"]])
    exc = rejected(sqlite_engine, [weird])
    assert_errors(exc.errors, [("weird.csv", 1, r"cannot tell what this table is from its "
                                                r"headers \(foo, bar, 名称\)")])
    # A members file missing a required column is not a members file.
    no_phone = write_csv(tmp_path / "members.csv", ["name", "role", "node_code"],
                         [["甲", "resident", LIN]])
    assert_errors(rejected(sqlite_engine, [no_phone]).errors,
                  [("members.csv", 1, r"cannot tell what this table is")])


def test_a_file_that_is_not_a_workbook_is_invalid_input(sqlite_engine: Engine,
                                                        tmp_path: Path) -> None:
    fake = tmp_path / "nodes.xlsx"
    fake.write_text("code,parent_code,level,name\n341602,,district,谯城区\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as exc:
        import_files(sqlite_engine, [fake])
    assert isinstance(exc.value, ImportRejected)
    assert [e.file for e in exc.value.errors] == ["nodes.xlsx"]
    assert "not a readable XLSX workbook" in exc.value.errors[0].reason
    assert all(rows == [] for rows in dump(sqlite_engine).values())  # nothing was written


@pytest.mark.parametrize(("name", "content", "why"), [
    ("missing.csv", None, "no such file"),
    ("nodes.csv", b"", "the file is empty"),
    ("city.json", b"{}", "unsupported file type '.json'"),
    ("nodes.csv", b"\xff\xfe\x00\x00\xff", "not a UTF-8 or GB18030 text file"),
])
def test_files_that_cannot_be_read_are_clean_errors(sqlite_engine: Engine, tmp_path: Path,
                                                    name: str, content: bytes | None,
                                                    why: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    exc = rejected(sqlite_engine, [path])
    assert [e.file for e in exc.errors] == [name]
    assert why in exc.errors[0].reason, exc.report()


def test_chat_identity_of_a_person_who_joined_before_the_import_is_claimed(
    engine: Engine, tmp_path: Path, clock: FakeClock
) -> None:
    """A resident who joined by chat (no phone yet) becomes the person of their imported row."""
    from core.hierarchy.services import create_person

    import_files(engine, write_small_city(tmp_path / "city"), clock=clock)
    with session_scope(engine) as s:
        p = create_person(s, name="网友", phone=None, now=clock.now())
        assert p.id is not None
        link_identity(s, person_id=p.id, platform="telegram", external_id="424242",
                      now=clock.now(), proof="contact")
        joined = p.id
    row = _m("王新", NEW, "resident", LIN, tg="424242")
    report = import_files(engine, [write_csv(tmp_path / "members.csv", MEMBER_HEADER, [row])],
                          clock=clock)
    assert report.people_added == 0 and report.identities_added == 0
    with Session(engine) as s:
        person = s.execute(sa.text("SELECT id, name, phone FROM person WHERE phone = :p"),
                           {"p": NEW}).one()
    assert tuple(person) == (joined, "王新", NEW)


def test_group_under_a_new_area_of_the_same_import_and_unknown_area_parent(
    engine: Engine, tmp_path: Path
) -> None:
    """Order in the file does not matter: a child may come before its parent."""
    import_files(engine, write_small_city(tmp_path / "city"))
    nodes = write_csv(tmp_path / "n" / "nodes.csv", NODE_HEADER, [
        [NEW_AREA + "01001", NEW_AREA + "01", "neighborhood", "新邻"],
        [NEW_AREA + "01", NEW_AREA, "group", "新组"],
        [NEW_AREA, VILLAGE, "area", "第3片"],
    ])
    report = import_files(engine, [nodes])
    assert report.nodes_added == 3
    assert path_problems(engine) == []
    # A stored group can move under the new area with its neighborhoods.
    move = write_csv(tmp_path / "m" / "nodes.csv", NODE_HEADER, [[GROUP_2, NEW_AREA, "group",
                                                                  "2组"]])
    assert import_files(engine, [move]).nodes_updated == 2  # 2组 and its neighborhood
    assert path_problems(engine) == []
