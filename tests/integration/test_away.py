"""Stand-ins (/away, /back) on both databases, through chat: a 邻长 away for three days has
their open case and every new case routed to their 组长 (the card says 代…), no missed deadline
falls on them, /back (or the end of the absence, by the sweep) hands the cases back, an admin
sets it for someone in their scope, and the refusals store nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.cases.sweep import run_sweep
from core.clock import FakeClock
from core.settings import Settings
from tests.integration.test_flows import link, outbox_for, resident_of, send
from tests.support.demo_city import LIN1, TOWN, holder_of, load_demo

# Monday 23 November 2026, 10:00 in Shanghai.
MORNING = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
OTHER_VILLAGE_LIN = "3416020010020202001"
PEER_LIN = "3416020010010102002"


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> tuple[Engine, FakeClock, Settings]:
    load_demo(engine)
    st = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    return engine, FakeClock(MORNING), st


def cases(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT id, holder_id, holder_role, covering_for_id, state FROM cases ORDER BY id")))


def away_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT person_id, stand_in_id, ended_at, end_reason FROM away ORDER BY id")))


def texts(rows: list[dict[str, Any]]) -> str:
    return "\n".join(r["text"] for r in rows)


def _setup(engine: Engine) -> tuple[Any, Any, Any]:
    resident = resident_of(engine, LIN1)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    group = holder_of(engine, "group_leader", LIN1[:-3])
    link(engine, resident.person_id, "5100")
    link(engine, leader.person_id, "9100")
    link(engine, group.person_id, "9200")
    return resident, leader, group


def test_away_three_days_routes_to_the_group_leader_and_back_restores(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st = world
    _resident, leader, group = _setup(engine)
    send(engine, clock, st, sender="5100", text="楼道灯坏了")
    assert cases(engine)[0].holder_id == leader.person_id

    out = send(engine, clock, st, sender="9100", command="away", args=("3d",))
    said = texts(out)
    assert "请假至11月26日 10:00" in said and "组长" in said and group.name in said, said
    assert "1件工单" in said
    # The open case went to the 组长 at once, marked as covered for the 邻长.
    first = cases(engine)[0]
    assert (first.holder_id, first.covering_for_id) == (group.person_id, leader.person_id)
    card = [r for r in outbox_for(engine, group.person_id) if "楼道灯" in r["text"]][-1]
    assert f"代{leader.name}" in card["text"] and "代办工单" in card["text"], card["text"]

    # A new report while away goes straight to the 组长, with 代… on the card.
    clock.advance(timedelta(minutes=15))  # past the append window: a report of its own
    send(engine, clock, st, sender="5100", text="垃圾桶满了没人清")
    second = cases(engine)[1]
    assert (second.holder_id, second.holder_role, second.covering_for_id) == (
        group.person_id, "group_leader", leader.person_id)
    card = [r for r in outbox_for(engine, group.person_id) if "垃圾桶" in r["text"]][-1]
    assert f"代{leader.name}" in card["text"]
    assert {a["action"] for a in card["actions"]} >= {"accept", "reply", "escalate"}

    # A day and a half passes: deadlines run out with the 组长 and climb on, never from the
    # 邻长 (no missed deadline — 超期 — is recorded against them).
    clock.advance(timedelta(hours=36))
    run_sweep(engine, clock=clock)
    with engine.connect() as conn:
        misses = [json.loads(d) if isinstance(d, str) else d for (d,) in conn.execute(sa.text(
            "SELECT detail FROM case_event WHERE kind IN ('escalated', 'overdue')"))]
        held_late = conn.execute(sa.text(
            "SELECT count(*) FROM cases WHERE holder_id = :p AND missed_deadlines > 0"),
            {"p": leader.person_id}).scalar_one()
    assert misses and all(m.get("from") != leader.person_id for m in misses), misses
    assert held_late == 0

    # /back: the cases the 组长 still holds for them come back (the escalated ones stay up).
    out = send(engine, clock, st, sender="9100", command="back")
    assert "已回来" in texts(out)
    assert all(c.covering_for_id is None for c in cases(engine))
    assert away_rows(engine)[0].end_reason == "back"
    clock.advance(timedelta(minutes=15))
    send(engine, clock, st, sender="5100", text="门口停车堵路")
    assert cases(engine)[-1].holder_id == leader.person_id


def test_back_hands_back_what_the_stand_in_still_holds(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st = world
    _resident, leader, group = _setup(engine)
    send(engine, clock, st, sender="9100", command="away", args=("2026-11-25",))
    send(engine, clock, st, sender="5100", text="楼下水管漏水")
    assert cases(engine)[0].holder_id == group.person_id
    send(engine, clock, st, sender="9100", command="back")
    c = cases(engine)[0]
    assert (c.holder_id, c.holder_role, c.covering_for_id) == (leader.person_id,
                                                               "neighbor_leader", None)
    assert any("已交还" in r["text"] for r in outbox_for(engine, group.person_id))


def test_the_sweep_ends_an_absence_at_its_end(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st = world
    _resident, leader, group = _setup(engine)
    # Away through Tuesday: back at midnight before Wednesday (Shanghai).
    out = send(engine, clock, st, sender="9100", command="away", args=("11-24",))
    assert "11月25日 00:00" in texts(out), texts(out)
    clock.advance(datetime(2026, 11, 24, 15, 59, tzinfo=UTC) - clock.now())
    send(engine, clock, st, sender="5100", text="路灯不亮")
    assert cases(engine)[0].holder_id == group.person_id
    run_sweep(engine, clock=clock)
    assert away_rows(engine)[0].ended_at is None
    clock.advance(timedelta(minutes=2))
    run_sweep(engine, clock=clock)
    row = away_rows(engine)[0]
    assert row.ended_at is not None and row.end_reason == "auto"
    assert cases(engine)[0].holder_id == leader.person_id
    clock.advance(timedelta(minutes=15))
    send(engine, clock, st, sender="5100", text="井盖松动")
    assert cases(engine)[-1].holder_id == leader.person_id


def test_a_named_stand_in_and_an_admin_setting_it_for_someone(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st = world
    _resident, leader, _group = _setup(engine)
    peer = holder_of(engine, "neighbor_leader", PEER_LIN)
    admin = holder_of(engine, "admin", TOWN)
    link(engine, admin.person_id, "9900")
    out = send(engine, clock, st, sender="9900", command="away",
               args=(leader.phone, "3d", peer.name))
    assert peer.name in texts(out) and leader.name in texts(out), texts(out)
    assert away_rows(engine)[0][:2] == (leader.person_id, peer.person_id)
    send(engine, clock, st, sender="5100", text="小区门口积水")
    assert cases(engine)[0].holder_id == peer.person_id
    out = send(engine, clock, st, sender="9900", command="back", args=(leader.phone,))
    assert "已回来" in texts(out)


@pytest.mark.parametrize(("args", "expected"), [
    (("2026-11-20",), "已经过去"),
    (("11-22",), "已经过去"),
    (("400d",), "最长90天"),
    (("明天吧",), "没看懂"),
    (("3d", "13900000075"), "不在本辖区"),  # 孙艳: a 邻长 of the other village
    (("3d", "13900000017"), "不能是自己"),
    (("3d", "13999999999"), "找不到代办人"),
])
def test_refusals_store_nothing(world, args: tuple[str, ...], expected: str) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st = world
    _setup(engine)
    out = send(engine, clock, st, sender="9100", command="away", args=args)
    assert expected in texts(out), texts(out)
    assert away_rows(engine) == []


def test_a_stand_in_who_is_away_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st = world
    _setup(engine)
    send(engine, clock, st, sender="9200", command="away", args=("5d",))
    out = send(engine, clock, st, sender="9100", command="away", args=("3d",))
    assert "自己也在请假" in texts(out), texts(out)
    assert len(away_rows(engine)) == 1


def test_an_admin_outside_the_scope_and_a_resident_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st = world
    _resident, leader, _group = _setup(engine)
    other = holder_of(engine, "neighbor_leader", OTHER_VILLAGE_LIN)
    link(engine, other.person_id, "9300")
    # A 邻长 cannot set an absence for somebody else.
    out = send(engine, clock, st, sender="9300", command="away", args=(leader.phone, "3d"))
    assert "不在您管理的范围内" in texts(out), texts(out)
    out = send(engine, clock, st, sender="5100", command="away", args=("3d",))
    assert away_rows(engine) == [] and texts(out)


def _resolved_by_the_leader(engine: Engine, clock: FakeClock, leader: Any) -> int:
    """The 邻长 fixes the only case and says so; its id (waiting for the resident)."""
    from core.cases import actions
    from core.db import session_scope

    c = cases(engine)[0]
    with session_scope(engine) as s:
        case = actions.resolve(s, clock=clock, case_id=c.id, person_id=leader.person_id,
                               version=_version(engine, c.id), note="修好了")
        assert case.state == "resolved"
    return int(c.id)


def _version(engine: Engine, case_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT version FROM cases WHERE id = :i"),
                                {"i": case_id}).scalar_one())


def test_a_case_reopened_while_its_solver_is_away_goes_to_the_stand_in(world) -> None:  # type: ignore[no-untyped-def]
    from core.cases import closing
    from core.db import session_scope

    engine, clock, st = world
    resident, leader, group = _setup(engine)
    send(engine, clock, st, sender="5100", text="楼道灯坏了")
    case_id = _resolved_by_the_leader(engine, clock, leader)
    # Resolved cases stay with their solver; the 邻长 then goes away for three days.
    send(engine, clock, st, sender="9100", command="away", args=("3d",))
    assert cases(engine)[0].holder_id == leader.person_id
    clock.advance(timedelta(hours=1))
    with session_scope(engine) as s:
        closing.not_fixed(s, clock=clock, case_id=case_id, person_id=resident.person_id,
                          version=_version(engine, case_id), reason="还是不亮")
    c = cases(engine)[0]
    assert (c.state, c.holder_id, c.covering_for_id) == ("accepted", group.person_id,
                                                         leader.person_id)
    with engine.connect() as conn:
        detail = conn.execute(sa.text(
            "SELECT detail FROM case_event WHERE case_id = :i AND kind = 'reopened'"),
            {"i": case_id}).scalar_one()
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert detail["covering_for"] == leader.person_id
    # The 组长 hears of the reopened case; /back hands it to the 邻长 again.
    assert any("还是不亮" in r["text"] or "楼道灯" in r["text"]
               for r in outbox_for(engine, group.person_id))
    send(engine, clock, st, sender="9100", command="back")
    c = cases(engine)[0]
    assert (c.holder_id, c.covering_for_id) == (leader.person_id, None)


def test_a_case_reopened_while_its_solver_is_here_stays_with_them(world) -> None:  # type: ignore[no-untyped-def]
    from core.cases import closing
    from core.db import session_scope

    engine, clock, st = world
    resident, leader, _group = _setup(engine)
    send(engine, clock, st, sender="5100", text="楼道灯坏了")
    case_id = _resolved_by_the_leader(engine, clock, leader)
    with session_scope(engine) as s:
        closing.not_fixed(s, clock=clock, case_id=case_id, person_id=resident.person_id,
                          version=_version(engine, case_id))
    c = cases(engine)[0]
    assert (c.holder_id, c.covering_for_id) == (leader.person_id, None)


def test_a_check_sent_back_while_the_solver_is_away_goes_to_the_stand_in(world) -> None:  # type: ignore[no-untyped-def]
    from core.cases import actions, verify
    from core.db import session_scope

    engine, clock, st = world
    _resident, _leader, group = _setup(engine)
    area = holder_of(engine, "area_leader", LIN1[:-5])
    link(engine, area.person_id, "9300")
    send(engine, clock, st, sender="5100", text="楼道灯坏了")
    clock.advance(timedelta(hours=5))  # the 邻长 let the answer deadline pass: up to the 组长
    run_sweep(engine, clock=clock)
    case_id = int(cases(engine)[0].id)
    assert cases(engine)[0].holder_id == group.person_id
    with session_scope(engine) as s:
        actions.resolve(s, clock=clock, case_id=case_id, person_id=group.person_id,
                        version=_version(engine, case_id), note="换了灯泡")
    # An escalated case's resolution waits for the 片长's 核查; the 组长 goes away meanwhile.
    row = cases(engine)[0]
    assert row.holder_id == area.person_id, row
    out = send(engine, clock, st, sender="9200", command="away", args=("3d",))
    assert "请假至" in texts(out), texts(out)
    with session_scope(engine) as s:
        verify.send_back(s, clock=clock, case_id=case_id, person_id=area.person_id,
                         version=_version(engine, case_id), reason="灯还是不亮")
    c = cases(engine)[0]
    assert c.state == "accepted" and c.covering_for_id == group.person_id, c
    assert c.holder_id != group.person_id
    send(engine, clock, st, sender="9200", command="back")
    c = cases(engine)[0]
    assert (c.holder_id, c.covering_for_id) == (group.person_id, None)
