"""A category's policy columns (FORMATS.md) on both databases: read with English or Chinese
headers, refused by `file:row: reason` with nothing stored, exported back, and applied to a
case's running deadline when a resident picks the category with a button."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.flows.types import Press
from core.clock import FakeClock
from core.errors import ImportRejected
from core.hierarchy.exporter import export_files
from core.hierarchy.importer import import_files
from core.settings import Settings
from tests.integration.test_flows import link, resident_of, send
from tests.support.demo_city import LIN1, load_demo

EN = "category,department_suffix,parent_category,answer_limit,handle_limit,verify,route_to\n"
ZH = "类别,责任部门,上级类别,答复时限,办结时限,需核查,直派\n"


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


def categories(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT name, department_suffix, parent_name, answer_limit, handle_limit, verify,"
            " route_to FROM category ORDER BY name"))]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_policy_columns_are_read_in_chinese_and_exported_back(city: Engine,
                                                              tmp_path: Path) -> None:
    f = write(tmp_path, "类别.csv", ZH +
              "市容环境,D01,,4wh,20wd,否,\n"
              "暴露垃圾,D01,市容环境,4WH,1wd,是,\n"
              "安全隐患,D06,,2h,3d,yes,D06\n"
              "纠纷调处,,,1wd,15wd,no,书记\n")
    report = import_files(city, [f])
    assert (report.categories_added, report.categories_updated) == (2, 2)
    got = {r[0]: r[1:] for r in categories(city)}
    assert got["暴露垃圾"] == ("D01", "市容环境", "4wh", "1wd", True, None)
    assert got["安全隐患"] == ("D06", None, "2h", "3d", True, "D06")
    assert got["纠纷调处"] == (None, None, "1wd", "15wd", False, "secretary")
    out = tmp_path / "out"
    export_files(city, out)
    exported = (out / "categories.csv").read_text(encoding="utf-8-sig")
    assert exported.splitlines()[0] == EN.strip() + ",canned"  # 常用答复 (README)
    assert "暴露垃圾,D01,市容环境,4wh,1wd,yes," in exported
    # The export imports again as it is, changing nothing.
    assert import_files(city, [out / "categories.csv"]).categories_updated == 0


@pytest.mark.parametrize(("rows", "want"), [
    ("安全隐患,D06,,4x,,,\n", r"answer_limit: time limit '4x' is malformed"),
    ("安全隐患,D06,,,2.5wd,,\n", r"handle_limit: working days '2.5wd' must be a whole number"),
    ("安全隐患,D06,,0h,,,\n", r"must be more than zero"),
    ("安全隐患,D99,,4h,,,\n", r"department_suffix D99: no department has this code suffix"),
    ("安全隐患,D06,,,,,D42\n", r"route_to D42: no department has this code suffix"),
    ("安全隐患,D06,,,,,村长\n", r"route_to '村长' is neither a department suffix"),
    ("安全隐患,D06,,,,maybe,\n", r"verify 'maybe' is neither yes nor no"),
    ("漏电,D06,没有这类,,,,\n", r"parent_category 没有这类 is not a category"),
    ("漏电,D06,漏电,,,,\n", r"cannot be its own parent_category"),
], ids=["limit-4x", "half-working-day", "zero", "unknown-department", "unknown-route-dept",
        "unknown-route-role", "verify", "unknown-parent", "own-parent"])
def test_a_bad_category_row_is_file_row_reason_and_nothing_is_stored(
        city: Engine, tmp_path: Path, rows: str, want: str) -> None:
    before = categories(city)
    f = write(tmp_path, "categories.csv", EN + "其他,,,,,,\n" + rows)
    with pytest.raises(ImportRejected) as exc:
        import_files(city, [f])
    errors = exc.value.errors
    assert [(e.file, e.row) for e in errors] == [("categories.csv", 3)], [str(e) for e in errors]
    assert re.search(want, str(errors[0].reason)), str(errors[0])
    assert re.match(r"categories\.csv:3: ", str(errors[0])), str(errors[0])
    assert categories(city) == before


def test_a_parent_two_levels_up_is_refused(city: Engine, tmp_path: Path) -> None:
    f = write(tmp_path, "categories.csv", EN + "市容环境,,,,,,\n垃圾,,市容环境,,,,\n"
              "暴露垃圾,,垃圾,,,,\n")
    with pytest.raises(ImportRejected) as exc:
        import_files(city, [f])
    assert [(e.file, e.row) for e in exc.value.errors] == [("categories.csv", 4)]


# Friday 3 April 2026, 10:00 in Shanghai, before the 清明 holiday (Saturday to Monday).
FRIDAY = datetime(2026, 4, 3, 2, 0, tzinfo=UTC)


def test_a_category_picked_after_filing_moves_the_running_deadline(
        city: Engine, tmp_path: Path) -> None:
    import_files(city, [write(tmp_path, "c.csv", EN + "其他,,,1wd,,,\n")])
    clock = FakeClock(FRIDAY)
    settings = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    resident = resident_of(city, LIN1)
    link(city, resident.person_id, "5300")
    out = send(city, clock, settings, sender="5300", text="想问一下这个事情怎么弄")
    ask = next(r for r in out if "类别" in r["text"])
    with city.connect() as conn:
        case_id, first = conn.execute(sa.text("SELECT id, deadline_at FROM cases")).one()
    assert str(first).startswith("2026-04-03 06:00"), "the default 4 h before a category"
    pick = next(a for a in ask["actions"] if a["label"] == "其他")
    out = send(city, clock, settings, sender="5300",
               press=Press("category", case_id, pick["version"], arg=pick["arg"]))
    # One working day after Friday, past the holiday: Tuesday 7 April, at the close.
    said = " ".join(r["text"] for r in out)
    assert "04月07日 17:30前答复" in said and "wd" not in said
    with city.connect() as conn:
        due, next_due = conn.execute(sa.text("SELECT deadline_at, next_due_at FROM cases")).one()
    assert str(due).startswith("2026-04-07 09:30") and str(due) != str(first)
    assert str(next_due) < str(due)
    with city.connect() as conn:
        detail = conn.execute(sa.text(
            "SELECT detail FROM case_event WHERE kind = 'categorized'")).scalar_one()
    assert "2026-04-07T09:30" in str(detail)
