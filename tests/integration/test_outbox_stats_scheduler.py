"""The outbox contract, the figures and the scheduler job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import outbox as ob
from core.cases import actions, closing
from core.cases.stats import Thresholds, WarningLevel, figures, map_status, node_status
from core.clock import FakeClock
from core.db import session_scope
from core.errors import InvalidInput
from core.hierarchy.queries import node_by_id
from core.scheduler import SWEEP_JOB_ID, build_scheduler, sweep_job
from tests.casehelpers import HOUR, MINUTE, advance_and_sweep, do, open_case, outbox, settings
from tests.cityfactory import build_city


def draft(key: str, person: int) -> ob.Draft:
    return ob.Draft(text="hi", kind="test", dedupe_key=key, person_id=person,
                    actions=(ob.Action("accept", "受理", 1, 2),))


def test_outbox_dedupes_claims_and_retries(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    now = clock.now()
    with session_scope(engine) as s:
        assert ob.enqueue(s, draft=draft("k1", city["leader1"]), now=now)
        assert not ob.enqueue(s, draft=draft("k1", city["leader1"]), now=now)
        assert ob.enqueue_many(s, drafts=[draft("k1", city["leader1"]),
                                          draft("k2", city["leader2"])], now=now) == 1
        with pytest.raises(InvalidInput):
            ob.enqueue(s, draft=ob.Draft(text="x", kind="t", dedupe_key="k3"), now=now)
    with session_scope(engine) as s:
        claimed = ob.claim(s, now=now, limit=10, lease=timedelta(seconds=30))
        assert [m.dedupe_key for m in claimed] == ["k1", "k2"]
        assert claimed[0].actions == [{"action": "accept", "label": "受理", "case_id": 1,
                                       "version": 2}]
    with session_scope(engine) as s:  # leased: nobody else gets them
        assert ob.claim(s, now=now + timedelta(seconds=10)) == []
    ids = [m.id for m in claimed]
    with session_scope(engine) as s:
        ob.mark_sent(s, message_id=ids[0], now=now)  # type: ignore[arg-type]
        st = ob.mark_failed(s, message_id=ids[1], now=now, error="429")  # type: ignore[arg-type]
        assert st is ob.OutboxStatus.failed
    with session_scope(engine) as s:
        assert ob.claim(s, now=now + timedelta(seconds=2)) == []  # backing off
        assert ob.pending_count(s) == 1
        (again,) = ob.claim(s, now=now + timedelta(seconds=6))
        assert again.id == ids[1]
        assert ob.mark_failed(s, message_id=ids[1], now=now, error="blocked",  # type: ignore[arg-type]
                              permanent=True) is ob.OutboxStatus.dead
    with session_scope(engine) as s:
        assert ob.pending_count(s) == 0
        assert ob.oldest_pending_age(s, now=now) is None


def test_an_expired_lease_makes_a_message_claimable_again(engine: Engine,
                                                          clock: FakeClock) -> None:
    city = build_city(engine)
    now = clock.now()
    with session_scope(engine) as s:
        ob.enqueue(s, draft=draft("k", city["leader1"]), now=now)
        ob.claim(s, now=now, lease=timedelta(seconds=30))
    with session_scope(engine) as s:  # that sender died
        assert len(ob.claim(s, now=now + timedelta(seconds=31))) == 1


def test_figures_for_a_subtree(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    start = clock.now()
    a = open_case(engine, clock, city)
    b = open_case(engine, clock, city, resident="resident3")
    c = open_case(engine, clock, city, resident="resident4")  # other village
    clock.advance(HOUR)
    case = do(engine, actions.accept, clock=clock, case_id=a, person_id=city["leader1"],
              version=1)
    case = do(engine, actions.resolve, clock=clock, case_id=a, person_id=city["leader1"],
              version=case.version)
    clock.advance(HOUR)
    do(engine, closing.confirm, clock=clock, case_id=a, person_id=city["resident1"],
       version=case.version, rating=4)
    advance_and_sweep(engine, clock, 3 * HOUR)  # b escalates: 邻长 missed the reply deadline
    do(engine, actions.accept, clock=clock, case_id=b, person_id=city["group_leader"], version=2)
    with Session(engine) as s:
        v1 = node_by_id(s, city.nodes["v1"])
        f = figures(s, node=v1, start=start, end=clock.now() + MINUTE)
        assert f.received == 2 and f.closed == 1 and f.resolution_rate == 0.5
        assert f.on_time_first_reply["neighbor_leader"].on_time == 1
        assert f.on_time_first_reply["neighbor_leader"].total == 2  # one answered, one missed
        assert f.on_time_first_reply["group_leader"].rate == 1.0
        assert f.median_first_reply_s is not None and f.median_close_s == 2 * 3600
        assert f.escalations == {"neighbor_leader": 1}
        assert f.mean_rating == 4.0
        assert [(r.name, r.mean) for r in f.rating_by_neighbor_leader] == [("邻长小赵", 4.0)]
        town = node_by_id(s, city.nodes["town"])
        assert figures(s, node=town, start=start, end=clock.now()).received == 3
        assert c


def test_warning_colour_is_remembered_for_hysteresis(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    t = Thresholds(unresolved=(2, 3, 4), overdue=(1, 2, 3), hysteresis=0.5)
    ids = [open_case(engine, clock, city) for _ in range(3)]
    with session_scope(engine) as s:
        v1 = node_by_id(s, city.nodes["v1"])
        assert node_status(s, node=v1, now=clock.now(), thresholds=t).level is WarningLevel.orange
    do(engine, actions.reject, clock=clock, case_id=ids[0], person_id=city["leader1"], version=1,
       reason="重复")
    with session_scope(engine) as s:  # 2 unresolved ≥ 3·0.5: stays orange
        st = node_status(s, node=v1, now=clock.now(), thresholds=t)
        assert st.level is WarningLevel.orange and st.previous is WarningLevel.orange
    clock.advance(5 * HOUR)  # both overdue now
    with session_scope(engine) as s:
        assert node_status(s, node=v1, now=clock.now(), thresholds=t).level is WarningLevel.orange
        town = node_by_id(s, city.nodes["town"])
        colours = {st.node.code: st.level for st in map_status(s, node=town, now=clock.now(),
                                                               thresholds=t)}
        assert colours["341602001002"] is WarningLevel.green


def test_scheduler_is_built_not_started_and_its_job_sweeps(engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    city = build_city(engine)
    cid = open_case(engine, clock, city)
    sched = build_scheduler(engine=engine, clock=clock, settings=settings(sweep_interval="2s"))
    assert not sched.running
    job = sweep_job(sched)
    clock.advance(4 * HOUR + MINUTE)
    result = job()
    assert result.escalated == 1 and job.runs == 1 and job.totals.escalated == 1
    assert outbox(engine, case_id=cid)[-1].kind in ("mirror", "progress", "escalated",
                                                      "escalated_away")
    trigger = sched.get_job("linzhang.deadline_sweep").trigger  # type: ignore[union-attr]
    assert trigger.interval == timedelta(seconds=2)


def test_scheduler_really_runs_the_sweep(sqlite_engine: Engine) -> None:
    """Start the real BackgroundScheduler briefly; wait on its event, not on a sleep."""
    import threading

    from apscheduler.events import EVENT_JOB_EXECUTED

    clock = FakeClock()
    city = build_city(sqlite_engine)
    open_case(sqlite_engine, clock, city)
    clock.advance(4 * HOUR + MINUTE)
    sched = build_scheduler(engine=sqlite_engine, clock=clock,
                            settings=settings(sweep_interval="50ms"))
    job = sweep_job(sched)
    done = threading.Event()
    # Other jobs (the rollups run at once on start) must not end the wait: only the sweep.
    sched.add_listener(lambda e: done.set() if e.job_id == SWEEP_JOB_ID else None,
                       EVENT_JOB_EXECUTED)
    sched.start()
    try:
        assert done.wait(timeout=10)
    finally:
        sched.shutdown(wait=True)
    assert job.totals.escalated == 1 and job.failures == 0
