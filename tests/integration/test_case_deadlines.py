"""The deadline engine on real databases, driven by a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases import actions, closing
from core.cases.model import Case, Stage, State
from core.cases.sweep import due_backlog, sweep
from core.clock import FakeClock, as_utc
from core.db import session_scope
from tests.casehelpers import (
    HOUR,
    MINUTE,
    advance_and_sweep,
    do,
    get,
    kinds,
    open_case,
    outbox,
    settings,
)
from tests.cityfactory import build_city


def test_nags_at_half_time_and_before_then_escalates_one_tier(engine: Engine,
                                                               clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    opened = clock.now()
    r = advance_and_sweep(engine, clock, 4 * HOUR - MINUTE, step=MINUTE)
    assert r.nagged == 2 and r.escalated == 0
    nags = [m for m in outbox(engine, person_id=city["leader1"]) if m.kind.startswith("nag")]
    assert [m.kind for m in nags] == ["nag1", "nag2"]
    assert [as_utc(m.created_at) - opened for m in nags] == [2 * HOUR, 3.5 * HOUR]
    # Nag buttons carry the live version: pressing one works.
    assert nags[0].actions[0] == {"action": "accept", "label": "受理", "case_id": cid,
                                  "version": get(engine, cid).version}
    r = advance_and_sweep(engine, clock, 2 * MINUTE, step=MINUTE)
    assert r.escalated == 1
    case = get(engine, cid)
    assert case.holder_id == city["group_leader"] and case.holder_role == "group_leader"
    assert case.state == State.open.value and case.escalations == 1
    assert as_utc(case.deadline_at) == opened + 8 * HOUR  # type: ignore[arg-type]
    msgs = outbox(engine, person_id=city["group_leader"])
    # The new holder's card, live at once: every button made for the current version.
    assert [m.kind for m in msgs] == ["new_case"] and "超时" in msgs[0].text
    assert {a["action"] for a in msgs[0].actions} >= {"accept", "reply", "resolve", "escalate"}
    assert {a["version"] for a in msgs[0].actions} == {case.version}
    assert "延迟" not in msgs[0].text  # on time: no late note
    assert [m.kind for m in outbox(engine, chat_binding_id=city.bindings["a1_chat"])] == [
        "mirror"]


def test_after_downtime_each_case_moves_exactly_one_tier(engine: Engine,
                                                         clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    # The server was down for 30 hours: enough for every tier's deadline to pass many times.
    r = advance_and_sweep(engine, clock, 30 * HOUR)
    assert r.escalated == 1 and r.nagged == 0 and r.late == 1
    case = get(engine, cid)
    assert case.holder_role == "group_leader"
    assert as_utc(case.deadline_at) == clock.now() + 4 * HOUR  # type: ignore[arg-type]
    msg = outbox(engine, person_id=city["group_leader"])[0]
    assert "延迟" in msg.text and "已超时" in msg.text
    # Sweeping again right away does nothing: no cascade, no repeated nags.
    assert advance_and_sweep(engine, clock, MINUTE).claimed == 0
    assert kinds(engine, cid) == ["opened", "escalated"]


def test_vacant_tier_is_skipped_at_once(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine, vacant={"group_leader", "leader1"})
    cid = open_case(engine, clock, city)
    case = get(engine, cid)
    assert case.holder_id == city["area_leader"]
    with Session(engine) as s:
        from core.cases.services import history

        assert len(history(s, case_id=cid)[0].detail["skipped_vacant"]) == 2


def test_escalation_walks_the_whole_chain_then_stays_with_a_capped_overdue(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city, st=settings(nags_per_tier=1))
    holders = []
    for _ in range(7):
        advance_and_sweep(engine, clock, 4 * HOUR + MINUTE)
        holders.append(get(engine, cid).holder_id)
    # Town office, then the district's as the last resort; then nobody is above.
    assert holders == [city[k] for k in ("group_leader", "area_leader", "secretary",
                                          "town_admin", "district_admin", "district_admin",
                                          "district_admin")]
    case = get(engine, cid)
    assert case.stage_renewals == 2
    overdue = [m for m in outbox(engine, person_id=city["district_admin"])
               if m.kind.startswith("overdue")]
    assert len(overdue) == 1  # capped at nags_per_tier
    assert case.next_due_at is not None  # the clock keeps running


def test_quiet_hours_hold_nags_until_morning_but_deadlines_run(engine: Engine) -> None:
    # 19:00 local: half time 21:00 (sent), 30 min before 22:30 (quiet: the deadline at 23:00
    # comes first, so it is dropped); the escalation at 23:00 still happens.
    clock = FakeClock(datetime(2026, 11, 23, 11, 0, tzinfo=UTC))
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    r = advance_and_sweep(engine, clock, 4 * HOUR + MINUTE, step=5 * MINUTE)
    assert r.nagged == 1 and r.escalated == 1
    # The 组长's tier started at 23:00: half time 01:00 and 02:30 are quiet, moved to 07:00,
    # which is past the 03:00 deadline, so the 组长 is not woken; the case goes on at 03:00.
    r = advance_and_sweep(engine, clock, 4 * HOUR, step=5 * MINUTE)
    assert r.nagged == 0 and r.escalated == 1
    assert get(engine, cid).holder_role == "area_leader"


def test_quiet_hours_nag_waits_for_quiet_end(engine: Engine) -> None:
    # Accepted at 20:00 local with a 12 h handling deadline: half time 02:00 is quiet and
    # waits until 07:00, still before the 08:00 deadline.
    clock = FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    city = build_city(engine)
    st = settings(handle_deadline="12h", nags_per_tier=1)
    cid = open_case(engine, clock, city, st=st)
    do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["leader1"], version=1)
    advance_and_sweep(engine, clock, 10 * HOUR + 59 * MINUTE, step=10 * MINUTE)  # to 06:59
    assert not [m for m in outbox(engine, person_id=city["leader1"]) if m.kind.startswith("nag")]
    advance_and_sweep(engine, clock, 2 * MINUTE, step=MINUTE)  # 07:01
    nags = [m for m in outbox(engine, person_id=city["leader1"]) if m.kind.startswith("nag")]
    assert len(nags) == 1
    assert as_utc(nags[0].created_at) == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 07:00


def test_deadlines_pause_in_quiet_hours_when_configured(engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))  # 20:00 local
    city = build_city(engine)
    cid = open_case(engine, clock, city, st=settings(pause_deadlines_in_quiet_hours=True))
    # 2 h until 22:00, the night does not count, 2 h from 07:00: 09:00 local = 01:00 UTC.
    assert as_utc(get(engine, cid).deadline_at) == datetime(  # type: ignore[arg-type]
        2026, 11, 24, 1, 0, tzinfo=UTC)


def test_settings_changed_later_do_not_touch_running_cases(engine: Engine,
                                                          clock: FakeClock) -> None:
    city = build_city(engine)
    slow = open_case(engine, clock, city)
    fast = open_case(engine, clock, city, resident="resident3", st=settings(reply_deadline="1h"))
    assert get(engine, slow).policy["reply_s"] == 4 * 3600
    advance_and_sweep(engine, clock, HOUR + MINUTE)
    assert get(engine, fast).holder_role == "group_leader"
    assert get(engine, slow).holder_role == "neighbor_leader"


def test_nags_for_one_person_in_one_sweep_become_a_digest(engine: Engine,
                                                         clock: FakeClock) -> None:
    city = build_city(engine)
    ids = [open_case(engine, clock, city, text=f"问题{i}") for i in range(3)]
    advance_and_sweep(engine, clock, 2 * HOUR)
    mine = [m for m in outbox(engine, person_id=city["leader1"]) if m.kind == "digest"]
    assert len(mine) == 1
    assert all(f"工单#{i}" in mine[0].text for i in ids)
    assert {a["case_id"] for a in mine[0].actions} == set(ids)


def test_no_nag_after_the_case_is_accepted_or_closed(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    case = do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["leader1"],
              version=1)
    case = do(engine, actions.resolve, clock=clock, case_id=cid, person_id=city["leader1"],
              version=case.version)
    do(engine, closing.confirm, clock=clock, case_id=cid, person_id=city["resident1"],
       version=case.version, rating=5)
    before = len(outbox(engine))
    r = advance_and_sweep(engine, clock, 200 * HOUR)
    assert r.claimed == 0 and len(outbox(engine)) == before
    assert get(engine, cid).next_due_at is None


def test_accepted_case_has_a_handling_deadline(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    do(engine, actions.accept, clock=clock, case_id=cid, person_id=city["leader1"], version=1)
    case = get(engine, cid)
    assert case.stage == Stage.handle.value
    assert as_utc(case.deadline_at) == clock.now() + 72 * HOUR  # type: ignore[arg-type]
    advance_and_sweep(engine, clock, 72 * HOUR + MINUTE)
    case = get(engine, cid)
    assert case.holder_role == "group_leader" and case.state == State.open.value


def test_unconfirmed_resolution_closes_without_rating(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    do(engine, actions.resolve, clock=clock, case_id=cid, person_id=city["leader1"], version=1)
    r = advance_and_sweep(engine, clock, 72 * HOUR + MINUTE, step=HOUR)
    assert r.nagged == 1 and r.auto_closed == 1  # one reminder to the resident, then closed
    case = get(engine, cid)
    assert case.state == State.closed.value and case.close_reason == "no_answer"
    assert case.rating is None and case.next_due_at is None
    assert [m.kind for m in outbox(engine, person_id=city["resident1"])][-2:] == [
        "confirm_reminder", "auto_closed"]


def test_department_must_report_in_or_the_town_office_takes_over(engine: Engine,
                                                                 clock: FakeClock) -> None:
    city = build_city(engine)
    cid = open_case(engine, clock, city, category="环境保护")
    case = do(engine, actions.whistle, clock=clock, case_id=cid, person_id=city["secretary"],
              version=1, reason="村里处理不了")
    assert case.holder_id == city["liaison"] and case.stage == Stage.department.value
    assert as_utc(case.deadline_at) == clock.now() + 24 * HOUR  # type: ignore[arg-type]
    advance_and_sweep(engine, clock, 24 * HOUR + MINUTE)
    case = get(engine, cid)
    assert case.holder_id == city["town_admin"] and case.department_reported_at is None


def test_sweep_reads_only_due_rows(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    for _ in range(5):
        open_case(engine, clock, city)
    with session_scope(engine) as s:
        assert due_backlog(s, now=clock.now()) == 0
        assert sweep(s, clock=clock).claimed == 0
    clock.advance(2 * HOUR)
    with session_scope(engine) as s:
        assert due_backlog(s, now=clock.now()) == 5
        assert sweep(s, clock=clock, batch=2).claimed == 2  # batches respected
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).where(
            Case.next_due_at <= clock.now())).scalar_one() == 3  # type: ignore[operator]


@pytest.mark.parametrize("pause", [False, True])
def test_every_open_case_has_a_future_due_time_after_a_sweep(engine: Engine, clock: FakeClock,
                                                             pause: bool) -> None:
    city = build_city(engine)
    st = settings(pause_deadlines_in_quiet_hours=pause)
    ids = [open_case(engine, clock, city, st=st) for _ in range(3)]
    for _ in range(12):
        advance_and_sweep(engine, clock, 3 * HOUR + 7 * MINUTE)
        for cid in ids:
            due = get(engine, cid).next_due_at
            assert due is not None and as_utc(due) > clock.now()
