"""Routing rules (直派) on both databases, through chat: the routing file imported at the console,
a resident's report routed by its category straight to a department or a tier, the 书记
informed, the timeline naming the rule, rules limited to a subtree or to hours, rules re-run
when the category changes, and a bad routing file refused by `file:row: reason`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.flows.types import Press
from core.clock import FakeClock
from core.errors import ImportRejected
from core.hierarchy.importer import import_files
from core.settings import Settings
from tests.integration.test_flows import link, outbox_for, resident_of, send
from tests.support.demo_city import LIN1, VILLAGE1, holder_of, load_demo

HEADER = "rule,category,route_to,within,hours,inform\n"
RULES = (HEADER +
         # 安全隐患 in the town goes to its 应急管理办公室 (D06), the village 书记 informed.
         "R1,安全隐患,D06,341602001,,secretary\n"
         # 社会治安 at night, only in the second village, to the police station (D02).
         "R2,社会治安,D02,341602001002,20:00-08:00,\n"
         # 纠纷调处 to the village (its mediation committee is chaired by the 书记).
         "R3,纠纷调处,书记,,,\n")
# Monday 23 November 2026, 10:00 in Shanghai.
MORNING = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> tuple[Engine, FakeClock, Settings, Path]:
    load_demo(engine)
    f = tmp_path / "routing.csv"
    f.write_text(RULES, encoding="utf-8")
    assert import_files(engine, [f]).rules == 3
    st = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    return engine, FakeClock(MORNING), st, tmp_path


def case_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT id, holder_id, holder_role, stage, department_node_id FROM cases"
            " ORDER BY id DESC LIMIT 1")).one()


def events(engine: Engine, case_id: int) -> list[tuple[str, dict[str, Any]]]:
    import json

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, detail FROM case_event WHERE case_id = :c"
                                    " ORDER BY id"), {"c": case_id}).all()
    return [(k, d if isinstance(d, dict) else json.loads(d or "{}")) for k, d in rows]


def test_a_safety_hazard_goes_to_the_emergency_office_and_the_secretary_hears(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st, _ = world
    resident = resident_of(engine, LIN1)
    link(engine, resident.person_id, "6100")
    office = holder_of(engine, "department", "341602001D06")
    secretary = holder_of(engine, "secretary", VILLAGE1)
    send(engine, clock, st, sender="6100", text="楼道里电线老化漏电，有安全隐患")
    case = case_row(engine)
    assert (case.holder_id, case.holder_role, case.stage) == (office.person_id, "department",
                                                              "department")
    kinds = events(engine, case.id)
    assert [k for k, _ in kinds][:2] == ["opened", "routed"]
    routed = kinds[1][1]
    assert routed["rule"] == "R1" and routed["inform"] == [secretary.person_id]
    # The liaison gets the card; the 书记 is informed, with the rule named.
    assert any("电线" in r["text"] for r in outbox_for(engine, office.person_id))
    told = [r["text"] for r in outbox_for(engine, secretary.person_id)]
    assert any("知会" in t and "R1" in t and "应急管理办公室" in t for t in told), told
    # The case's history (/case, for the 书记) says which rule routed it.
    link(engine, secretary.person_id, "6101")
    out = send(engine, clock, st, sender="6101", command="case", args=(str(case.id),),
               text=f"/case {case.id}")
    history = "\n".join(r["text"] for r in out)
    assert "按直派规则分派" in history and "规则R1" in history, history


def test_a_rule_applies_only_within_its_subtree_and_hours(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st, _ = world
    resident = resident_of(engine, LIN1)  # in the first village: R2 is for the second
    link(engine, resident.person_id, "6200")
    clock.advance(datetime(2026, 11, 23, 14, 0, tzinfo=UTC) - clock.now())  # 22:00
    send(engine, clock, st, sender="6200", text="楼下有人打架斗殴")
    case = case_row(engine)
    assert case.holder_role == "neighbor_leader"
    assert "routed" not in [k for k, _ in events(engine, case.id)]


def test_hours_decide_whether_the_rule_applies(engine: Engine, tmp_path: Path) -> None:
    load_demo(engine)
    f = tmp_path / "routing.csv"
    f.write_text(HEADER + "N1,社会治安,D02,,20:00-08:00,\n", encoding="utf-8")
    import_files(engine, [f])
    st = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    resident = resident_of(engine, LIN1)
    link(engine, resident.person_id, "6300")
    clock = FakeClock(MORNING)  # 10:00: outside the rule's hours
    send(engine, clock, st, sender="6300", text="小区里有可疑人员")
    assert case_row(engine).holder_role == "neighbor_leader"
    clock.advance(datetime(2026, 11, 23, 13, 30, tzinfo=UTC) - clock.now())  # 21:30
    send(engine, clock, st, sender="6300", text="又有人在偷电动车")
    night = case_row(engine)
    assert night.holder_role == "department"
    assert [d["rule"] for k, d in events(engine, night.id) if k == "routed"] == ["N1"]


def test_recategorising_re_runs_the_rules(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st, _ = world
    resident = resident_of(engine, LIN1)
    link(engine, resident.person_id, "6400")
    leader = holder_of(engine, "neighbor_leader", LIN1)
    secretary = holder_of(engine, "secretary", VILLAGE1)
    out = send(engine, clock, st, sender="6400", text="想问一下这个事情怎么弄")
    case = case_row(engine)
    assert case.holder_id == leader.person_id
    ask = next(r for r in out if "类别" in r["text"])
    pick = next(a for a in ask["actions"] if a["label"] == "纠纷调处")
    send(engine, clock, st, sender="6400",
         press=Press("category", case.id, pick["version"], arg=pick["arg"]))
    after = case_row(engine)
    assert (after.holder_id, after.holder_role) == (secretary.person_id, "secretary")
    rerouted = [d for k, d in events(engine, case.id) if k == "rerouted"]
    assert rerouted and rerouted[0]["rule"] == "R3" and rerouted[0]["from"] == leader.person_id
    # The 邻长 hears it went elsewhere; the 书记 gets the card.
    assert any("转交" in r["text"] for r in outbox_for(engine, leader.person_id))
    assert any("怎么弄" in r["text"] for r in outbox_for(engine, secretary.person_id))


@pytest.mark.parametrize(("row", "want"), [
    ("X1,没有这类,D06,,,\n", r"category 没有这类 is not a category"),
    ("X1,安全隐患,D77,,,\n", r"route_to D77: no department has this code suffix"),
    ("X1,安全隐患,村长,,,\n", r"route_to '村长' is neither a department suffix"),
    ("X1,安全隐患,D06,999999,,\n", r"within 999999 is not a node code"),
    ("X1,安全隐患,D06,,25:00-08:00,\n", r"hours '25:00-08:00' are malformed"),
    ("X1,安全隐患,D06,,08:00-08:00,\n", r"start and end at the same time"),
    ("X1,安全隐患,D06,,,市长\n", r"inform '市长' is not one of"),
    ("R1,安全隐患,D06,,,\n", r"duplicate rule R1 \(first on routing.csv:2\)"),
    ("规则 一,安全隐患,D06,,,\n", r"rule '规则 一' must be"),
], ids=["category", "department", "role", "within", "hours", "empty-hours", "inform",
        "duplicate", "rule-id"])
def test_a_bad_routing_row_is_file_row_reason_and_nothing_changes(
        world, row: str, want: str) -> None:  # type: ignore[no-untyped-def]
    engine, _, _, tmp = world
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT * FROM routing_rule ORDER BY id")).all()
    f = tmp / "routing.csv"
    f.write_text(HEADER + "R1,安全隐患,D06,,,\n" + row, encoding="utf-8")
    with pytest.raises(ImportRejected) as exc:
        import_files(engine, [f])
    errors = exc.value.errors
    assert [(e.file, e.row) for e in errors] == [("routing.csv", 3)], [str(e) for e in errors]
    assert re.search(want, str(errors[0].reason)), str(errors[0])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT * FROM routing_rule ORDER BY id")).all() == before


def test_the_category_column_route_to_is_a_rule_of_its_own(engine: Engine,
                                                            tmp_path: Path) -> None:
    load_demo(engine)
    f = tmp_path / "categories.csv"
    f.write_text("category,department_suffix,route_to\n纠纷调处,,area_leader\n", encoding="utf-8")
    import_files(engine, [f])
    st = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    resident = resident_of(engine, LIN1)
    link(engine, resident.person_id, "6500")
    send(engine, FakeClock(MORNING), st, sender="6500", text="邻居家漏水到楼下，起了纠纷")
    case = case_row(engine)
    assert case.holder_role == "area_leader"
    assert [d["rule"] for k, d in events(engine, case.id) if k == "routed"] == [
        "category:纠纷调处"]
