"""Bad input, tried systematically, for the hierarchy importer: hypothesis mutates the rows of a
valid small city (any cell, any text, extra and missing cells, odd headers) in CSV and XLSX, and
throws arbitrary bytes at it. The importer either imports or refuses with our own InvalidInput /
ImportRejected (every bad row by number) — never another exception — and a refusal leaves the
hierarchy tables exactly as they were."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.utils.exceptions import IllegalCharacterError
from sqlalchemy.engine import Engine

from core.errors import ImportRejected, InvalidInput
from core.hierarchy.importer import import_files
from tests.citydata import (
    CATEGORY_HEADER,
    MEMBER_HEADER,
    NODE_HEADER,
    SMALL_CATEGORIES,
    SMALL_MEMBERS,
    SMALL_NODES,
    dump,
    write_csv,
    write_xlsx,
)

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
_n = itertools.count()
TABLES = {"nodes": (NODE_HEADER, SMALL_NODES), "members": (MEMBER_HEADER, SMALL_MEMBERS),
          "categories": (CATEGORY_HEADER, SMALL_CATEGORIES)}

cell_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "0", "-1", "1e400", "nan", "13900000000", "+86 139 0000 0000",
                     "admin", "resident", "village", "neighborhood", "341602", "341602001",
                     "'; DROP TABLE node; --", "=cmd|' /C calc'!A0", "\u0000", "\ufeffcode",
                     "x" * 1200, "纬度", "经度", "编码", "/1/2/", "²", "-٣"]),
)


@st.composite
def mutated_table(draw: st.DrawFn, kind: str) -> tuple[list[str], list[list[str]]]:
    header, rows = TABLES[kind]
    header, rows = list(header), [list(r) for r in rows]
    for _ in range(draw(st.integers(1, 6))):
        how = draw(st.sampled_from(["cell", "cell", "cell", "drop", "dup", "short", "long",
                                    "header"]))
        r = draw(st.integers(0, len(rows) - 1))
        if how == "cell":
            rows[r][draw(st.integers(0, len(rows[r]) - 1 if rows[r] else 0))
                    if rows[r] else 0:] = [draw(cell_text)]
        elif how == "drop":
            rows.pop(r) if len(rows) > 1 else None
        elif how == "dup":
            rows.append(list(rows[r]))
        elif how == "short":
            rows[r] = rows[r][: draw(st.integers(0, len(rows[r])))]
        elif how == "long":
            rows[r] = rows[r] + draw(st.lists(cell_text, min_size=1, max_size=3))
        else:
            header = list(header)
            header[draw(st.integers(0, len(header) - 1))] = draw(cell_text)
    return header, rows


def _import_or_refuse(engine: Engine, paths: list[Path]) -> None:
    before = dump(engine)
    try:
        import_files(engine, paths)
    except ImportRejected as exc:
        assert exc.errors or exc.truncated
        assert dump(engine) == before, "a refused import changed the hierarchy"
    except InvalidInput:
        assert dump(engine) == before, "a refused import changed the hierarchy"


@pytest.fixture
def sheets(tmp_path: Path) -> Path:
    return tmp_path


@FUZZ
@given(data=st.data())
def test_mutated_csv_rows_import_or_are_refused_by_row(sqlite_engine: Engine, sheets: Path,
                                                       data: st.DataObject) -> None:
    n = next(_n)
    paths = []
    for kind in data.draw(st.lists(st.sampled_from(list(TABLES)), min_size=1, max_size=3,
                                   unique=True)):
        header, rows = data.draw(mutated_table(kind))
        enc = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
        try:
            paths.append(write_csv(sheets / f"{n}" / f"{kind}.csv", header, rows, encoding=enc))
        except UnicodeEncodeError:
            paths.append(write_csv(sheets / f"{n}" / f"{kind}.csv", header, rows))
    _import_or_refuse(sqlite_engine, paths)


def _xlsx_value(text: str) -> Any:
    """What a spreadsheet cell may hold: text, a number, a date, nothing."""
    digits = text.removeprefix("-")
    # isdigit() alone takes '²' and '٣' for digits, which int() refuses.
    if digits.isascii() and digits.isdecimal() and len(text) < 16:
        return int(text)
    return text.replace("\u0000", "")  # openpyxl refuses control characters itself


@pytest.mark.parametrize("text", ["²", "-²", "٣", "１２", "-", "--1", "-1", "12", ""])
def test_xlsx_value_is_a_number_only_for_ascii_digits(text: str) -> None:
    value = _xlsx_value(text)
    assert value == (int(text) if text in ("-1", "12") else text)


@FUZZ
@given(data=st.data())
def test_mutated_xlsx_sheets_import_or_are_refused_by_row(sqlite_engine: Engine, sheets: Path,
                                                          data: st.DataObject) -> None:
    n = next(_n)
    book: dict[str, tuple[list[object], list[list[object]]]] = {}
    for kind in data.draw(st.lists(st.sampled_from(list(TABLES)), min_size=1, max_size=3,
                                   unique=True)):
        header, rows = data.draw(mutated_table(kind))
        extra = data.draw(st.sampled_from([None, 1.5, 3.0, float("inf"), True]))
        xrows: list[list[object]] = [[_xlsx_value(c) for c in r] for r in rows]
        if extra is not None and xrows:
            xrows[0].append(extra)
        book[kind] = ([_xlsx_value(h) for h in header], xrows)
    try:
        path = write_xlsx(sheets / f"{n}" / "city.xlsx", book)
    except (ValueError, IllegalCharacterError):
        return  # openpyxl would not write such a cell (control characters)
    _import_or_refuse(sqlite_engine, [path])


def test_a_sheet_with_unicode_digits_imports_or_is_refused(sqlite_engine: Engine,
                                                          sheets: Path) -> None:
    """The case hypothesis found: a cell of '²' (isdigit() but not int()) in every column."""
    book: dict[str, tuple[list[object], list[list[object]]]] = {}
    for kind, (header, rows) in TABLES.items():
        mutated = [list(r) for r in rows] + [["²", "-٣", "１２"] * len(header)]
        book[kind] = ([_xlsx_value(h) for h in header],
                      [[_xlsx_value(c) for c in r] for r in mutated])
    _import_or_refuse(sqlite_engine, [write_xlsx(sheets / "digits" / "city.xlsx", book)])


@FUZZ
@given(body=st.binary(max_size=2000),
       suffix=st.sampled_from([".csv", ".xlsx", ".xlsm", ".txt", "", ".exe"]),
       zipped=st.booleans())
def test_arbitrary_bytes_are_refused_cleanly(sqlite_engine: Engine, sheets: Path, body: bytes,
                                             suffix: str, zipped: bool) -> None:
    path = sheets / f"f{next(_n)}{suffix}"
    if zipped:
        import zipfile

        with zipfile.ZipFile(path, "w") as z:  # a zip that is not a workbook
            z.writestr("[Content_Types].xml", body)
            z.writestr("xl/workbook.xml", body[::-1])
    else:
        path.write_bytes(body)
    _import_or_refuse(sqlite_engine, [path])
