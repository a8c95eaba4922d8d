"""A case that missed a deadline stays overdue (超期) on lists and the map until resolved,
although every miss hands it on with a fresh deadline."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases import actions, verify
from core.cases.lists import count_open_below, open_cases_below
from core.cases.services import open_case, view
from core.cases.stats import Thresholds, node_status
from core.cases.sweep import run_sweep
from core.clock import FakeClock
from core.hierarchy.queries import node_by_code
from core.settings import Settings
from tests.support.demo_city import LIN1, VILLAGE1, holder_of, load_demo


def test_missed_deadlines_keep_a_case_overdue_until_resolved(engine: Engine,
                                                             clock: FakeClock) -> None:
    load_demo(engine)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    resident = holder_of(engine, "resident", LIN1)
    with Session(engine) as s, s.begin():
        case_id = open_case(s, clock=clock, settings=settings, resident_id=resident.person_id,
                            text="路灯坏了").id
    with Session(engine) as s:
        village = node_by_code(s, VILLAGE1)
        assert count_open_below(s, node=village, now=clock.now()) == (1, 0)

    clock.advance(timedelta(hours=4, minutes=1))
    run_sweep(engine, clock=clock, batch=100)  # the 邻长 missed it: the 组长 has it now
    with Session(engine) as s, s.begin():
        now = clock.now()
        v = view(s, case_id=case_id or 0, now=now)
        assert v.holder_role == "group_leader" and v.deadline_at and v.deadline_at > now
        assert v.overdue
        assert count_open_below(s, node=village, now=now) == (1, 1)
        assert [c.id for c in open_cases_below(s, node=village, now=now, overdue_only=True)] \
            == [case_id]
        status = node_status(s, node=village, now=now,
                             thresholds=Thresholds.from_settings(settings))
        assert status.overdue == 1

    group_leader = holder_of(engine, "group_leader", LIN1[:-3])
    with Session(engine) as s, s.begin():
        version = view(s, case_id=case_id or 0, now=clock.now()).version
        actions.accept(s, clock=clock, case_id=case_id or 0, person_id=group_leader.person_id,
                       version=version)
        version += 1
    with Session(engine) as s, s.begin():
        v = view(s, case_id=case_id or 0, now=clock.now())
        actions.resolve(s, clock=clock, case_id=case_id or 0,
                        person_id=group_leader.person_id, version=v.version)
    # An escalated case's 已解决 waits for the tier above's 核查 (core/cases/verify.py): it is
    # not done until the 片长 approves, and then it no longer counts as open or overdue.
    with Session(engine) as s:
        assert count_open_below(s, node=village, now=clock.now())[0] == 1
        v = view(s, case_id=case_id or 0, now=clock.now())
        assert v.holder_role == "area_leader" and v.stage == "verify"
    with Session(engine) as s, s.begin():
        verify.approve(s, clock=clock, case_id=case_id or 0, person_id=v.holder_id or 0,
                       version=v.version)
    with Session(engine) as s:
        assert count_open_below(s, node=village, now=clock.now()) == (0, 0)
