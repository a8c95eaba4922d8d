"""`export_files`: the files `import_files` reads, so that export then import changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from core.clock import FakeClock
from core.db import session_scope
from core.errors import ImportRejected, InvalidInput
from core.hierarchy.exporter import export_files
from core.hierarchy.importer import import_files
from core.hierarchy.services import link_identity
from tests.citydata import (
    DISTRICT,
    MEMBER_HEADER,
    NODE_HEADER,
    PHONE,
    SMALL_MEMBERS,
    SMALL_NODES,
    TG_SUN,
    TOWN,
    dump,
    fresh_engine,
    generate_city,
    path_problems,
    person_ids,
    read_csv,
    write_csv,
    write_small_city,
)
from tests.support.wording import refusal


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_city(tmp_path_factory.mktemp("city"))


def _files(folder: Path) -> list[Path]:
    return [folder / "nodes.csv", folder / "members.csv", folder / "categories.csv"]


def _sheets(book: Path) -> dict[str, list[tuple[object, ...]]]:
    wb = load_workbook(book, read_only=True)
    try:
        return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
    finally:
        wb.close()


def _with_extras(engine: Engine, city: Path, clock: FakeClock, tmp_path: Path) -> None:
    """The generated city plus what the generator never writes: coordinates, a second
    telegram account, an address with a comma and a quote, a category without department."""
    header, nodes = read_csv(city / "nodes.csv")
    mheader, members = read_csv(city / "members.csv")
    nodes[0] = [*nodes[0], "33.8712", "115.7856"]
    nodes[1:] = [[*n, "", ""] for n in nodes[1:]]
    members[5][4] = '幸福路1号, "东"门'
    extra = tmp_path / "extra"
    write_csv(extra / "nodes.csv", [*header, "latitude", "longitude"], nodes)
    write_csv(extra / "members.csv", mheader, members)
    (extra / "categories.csv").write_text(
        (city / "categories.csv").read_text(encoding="utf-8") + "新类别,\n", encoding="utf-8")
    import_files(engine, _files(extra), clock=clock)
    with session_scope(engine) as s:
        pid = min(person_ids(engine).values())
        link_identity(s, person_id=pid, platform="telegram", external_id="1", now=clock.now(),
                      proof="contact")


def test_export_then_import_changes_nothing(
    engine: Engine, city: Path, tmp_path: Path, clock: FakeClock
) -> None:
    _with_extras(engine, city, clock, tmp_path)
    before = dump(engine)

    report = export_files(engine, tmp_path / "csv")
    assert [p.name for p in report.files] == ["nodes.csv", "members.csv", "categories.csv"]
    assert (report.nodes, report.members, report.categories) == (
        len(before["node"]), len(before["post"]), len(before["category"]))
    header, rows = read_csv(tmp_path / "csv" / "members.csv")
    assert header == MEMBER_HEADER
    assert [r[4] for r in rows if "东" in r[4]] == ['幸福路1号, "东"门']
    again = import_files(engine, report.files, clock=clock)
    assert again.changed is False, again.summary()
    assert dump(engine) == before


def test_xlsx_export_then_import_changes_nothing(engine: Engine, tmp_path: Path,
                                                 clock: FakeClock) -> None:
    """On the small city (openpyxl is slow); the same extras: coordinates, two telegram
    accounts, a quoted address."""
    import_files(engine, write_small_city(tmp_path / "small"), clock=clock)
    with_coords = write_csv(tmp_path / "coords" / "nodes.csv", [*NODE_HEADER, "纬度", "经度"],
                            [[*n, "33.8712", "115.7856"] if n[0] == TOWN else [*n, "", ""]
                             for n in SMALL_NODES])
    members = write_csv(tmp_path / "addr" / "members.csv", MEMBER_HEADER,
                        [[*m[:4], '幸福路1号, "东"门', *m[5:]] if m[1] == PHONE["resident_sun"]
                         else m for m in SMALL_MEMBERS])
    import_files(engine, [with_coords, members], clock=clock)
    with session_scope(engine) as s:
        link_identity(s, person_id=person_ids(engine)[PHONE["resident_sun"]],
                      platform="telegram", external_id="1", now=clock.now(), proof="contact")
    before = dump(engine)

    book = export_files(engine, tmp_path / "city.xlsx", fmt="xlsx").files
    assert [p.name for p in book] == ["city.xlsx"]
    sheets = _sheets(book[0])
    assert list(sheets) == ["nodes", "members", "categories"]
    assert sheets["nodes"][0] == (*NODE_HEADER, "latitude", "longitude")
    assert (TOWN, DISTRICT, "town", "花戏楼街道", "33.8712", "115.7856") in sheets["nodes"]
    sun = next(r for r in sheets["members"] if r[1] == PHONE["resident_sun"])
    assert sun[4:6] == ('幸福路1号, "东"门', TG_SUN)  # the first account of the two
    again = import_files(engine, book, clock=clock)
    assert again.changed is False, again.summary()
    assert dump(engine) == before
    # A folder as the target gets linzhang.xlsx inside it.
    assert export_files(engine, tmp_path / "out", fmt="xlsx").files == [
        tmp_path / "out" / "linzhang.xlsx"]


def test_export_into_a_fresh_database_and_back_gives_identical_files(
    engine: Engine, city: Path, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    _with_extras(engine, city, clock, tmp_path)
    first = export_files(engine, tmp_path / "first").files
    with fresh_engine(engine.dialect.name, request, tmp_path / "fresh") as fresh:
        report = import_files(fresh, first, clock=clock)
        assert report.nodes_added == len(dump(engine)["node"])
        assert path_problems(fresh) == []
        second = export_files(fresh, tmp_path / "second").files
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs after the round trip"


@pytest.mark.postgres
def test_export_from_sqlite_imports_into_postgres_identically(
    sqlite_engine: Engine, city: Path, tmp_path: Path, clock: FakeClock, pg_url: str
) -> None:
    """The two engines agree on what a city is: SQLite → files → PostgreSQL → same files."""
    from core.db import make_engine, migrate

    _with_extras(sqlite_engine, city, clock, tmp_path)
    first = export_files(sqlite_engine, tmp_path / "first").files
    pg = make_engine(pg_url)
    try:
        migrate(pg)
        import_files(pg, first, clock=clock)
        second = export_files(pg, tmp_path / "second").files
    finally:
        pg.dispose()
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between the engines"


def test_subtree_export(engine: Engine, city: Path, tmp_path: Path, clock: FakeClock) -> None:
    import_files(engine, _files(city), clock=clock)
    _, nodes = read_csv(city / "nodes.csv")
    _, members = read_csv(city / "members.csv")
    village = next(n for n in nodes if n[2] == "village")[0]
    # Generated codes extend their parent's code, so the subtree is the codes that start so.
    want_nodes = [n for n in nodes if n[0].startswith(village)]
    want_members = [m for m in members if m[3].startswith(village)]
    assert len(want_nodes) > 10

    report = export_files(engine, tmp_path / "sub", root_code=village)
    assert (report.nodes, report.members) == (len(want_nodes), len(want_members))
    header, got_nodes = read_csv(tmp_path / "sub" / "nodes.csv")
    _, got_members = read_csv(tmp_path / "sub" / "members.csv")
    assert header == NODE_HEADER
    assert got_nodes[0] == next(n for n in nodes if n[0] == village)  # the root comes first
    assert sorted(got_nodes) == sorted(want_nodes)
    assert sorted(got_members) == sorted(want_members)
    before = dump(engine)
    assert import_files(engine, report.files, clock=clock).changed is False
    assert dump(engine) == before

    # A subtree export that names a node above the root needs that node to exist.
    leaf = next(n for n in nodes if n[2] == "neighborhood")[0]
    one = export_files(engine, tmp_path / "leaf", root_code=leaf)
    assert one.nodes == 1 and one.members == sum(1 for m in members if m[3] == leaf)

    with refusal(InvalidInput, "no node with code '999'", lang="en"):
        export_files(engine, tmp_path / "none", root_code="999")
    with refusal(InvalidInput, "unknown export format", lang="en"):
        export_files(engine, tmp_path / "x", fmt="ods")


def test_subtree_export_into_an_empty_database_is_rejected_for_its_missing_parent(
    sqlite_engine: Engine, city: Path, tmp_path: Path
) -> None:
    import_files(sqlite_engine, _files(city))
    _, nodes = read_csv(city / "nodes.csv")
    village = next(n for n in nodes if n[2] == "village")
    files = export_files(sqlite_engine, tmp_path / "sub", root_code=village[0]).files
    from core.db import make_engine, migrate

    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        migrate(empty)
        with pytest.raises(ImportRejected) as exc:
            import_files(empty, files)
        assert [str(e) for e in exc.value.errors] == [
            f"nodes.csv:2: parent {village[1]} does not exist"]
        assert all(rows == [] for rows in dump(empty).values())
    finally:
        empty.dispose()


# Text a spreadsheet would run as a formula (a name typed in chat, an address, a category).
FORMULA_NAME = '=HYPERLINK("http://x","点我")'
TRICKY = {"name_sun": FORMULA_NAME, "address_sun": "+86 138 0000 0000 转 1号楼",
          "name_zhou": "@admin", "address_zhou": "-1", "name_wu": "'=已带引号",
          "address_wu": "'普通引号", "node": "=1+1", "category": "=cmd|' /C calc'!A0"}


def _tricky_city(engine: Engine, tmp_path: Path, clock: FakeClock) -> None:
    """The small city with formula-like text where users type it."""
    import sqlalchemy as sa

    import_files(engine, write_small_city(tmp_path / "small"), clock=clock)
    with engine.begin() as conn:
        for who in ("sun", "zhou", "wu"):
            phone = PHONE[f"resident_{who}"]
            conn.execute(sa.text("UPDATE person SET name = :n WHERE phone = :p"),
                         {"n": TRICKY[f"name_{who}"], "p": phone})
            conn.execute(sa.text("UPDATE post SET address = :a WHERE person_id ="
                                 " (SELECT id FROM person WHERE phone = :p)"),
                         {"a": TRICKY[f"address_{who}"], "p": phone})
        conn.execute(sa.text("UPDATE node SET name = :n WHERE code = :c"),
                     {"n": TRICKY["node"], "c": TOWN})
        conn.execute(sa.text("INSERT INTO category (name) VALUES (:n)"),
                     {"n": TRICKY["category"]})


def test_formula_like_text_is_exported_as_text_and_reads_back_unchanged(
        engine: Engine, tmp_path: Path, clock: FakeClock) -> None:
    import csv as csv_module

    from tests.support.xlsx_xml import DANGEROUS, live_formulas, text_cells

    _tricky_city(engine, tmp_path, clock)
    before = dump(engine)

    # CSV: a leading ' on each, one more on the text that already had one; plain quotes stay.
    files = export_files(engine, tmp_path / "csv").files
    cells = [c for f in files
             for row in csv_module.reader(f.read_text(encoding="utf-8").splitlines())
             for c in row]
    assert not [c for c in cells if c.startswith(DANGEROUS)]
    members = (tmp_path / "csv" / "members.csv").read_text(encoding="utf-8")
    for text in ("'=HYPERLINK(\"\"http://x\"\",\"\"点我\"\")", ",'+86 138 0000 0000 转 1号楼,",
                 "\n'@admin,", ",'-1,", "\n''=已带引号,", ",'普通引号,"):
        assert text in members, text
    assert ",'=1+1" in (tmp_path / "csv" / "nodes.csv").read_text(encoding="utf-8")
    assert "'=cmd|' /C calc'!A0" in (tmp_path / "csv" / "categories.csv").read_text(
        encoding="utf-8")
    assert import_files(engine, files, clock=clock).changed is False
    assert dump(engine) == before

    # XLSX, full and masked: string cells with the quote prefix, the text itself unchanged.
    book = export_files(engine, tmp_path / "city.xlsx", fmt="xlsx").files[0]
    assert live_formulas(book) == []
    seen = text_cells(book)
    for key, text in TRICKY.items():
        assert seen[text] == ("inlineStr", False, not key.startswith("address_wu")), text
    assert import_files(engine, [book], clock=clock).changed is False
    assert dump(engine) == before
    masked = export_files(engine, tmp_path / "masked.xlsx", fmt="xlsx", masked=True).files[0]
    assert live_formulas(masked) == []
    assert text_cells(masked)[FORMULA_NAME] == ("inlineStr", False, True)
