"""Two sweepers at once on PostgreSQL: every due case is handled once, every message written
once (rows are claimed with FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.cases import services
from core.cases.model import CaseEvent
from core.cases.sweep import SweepResult, run_sweep
from core.clock import FakeClock
from core.db import make_engine, migrate, session_scope
from tests.casehelpers import HOUR, MINUTE, outbox, settings
from tests.cityfactory import build_city

CASES = 120


@pytest.mark.postgres
def test_two_sweepers_never_handle_a_case_twice(pg_url: str) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    clock = FakeClock()
    city = build_city(engine)
    st = settings()
    with session_scope(engine) as s:
        ids = [services.open_case(s, clock=clock, settings=st,
                                  resident_id=city["resident1" if i % 2 else "resident3"],
                                  text=f"问题{i}").id
               for i in range(CASES)]
    clock.advance(4 * HOUR + MINUTE)
    engines = [make_engine(pg_url, pool_size=2) for _ in range(2)]
    barrier = threading.Barrier(len(engines))
    results: list[SweepResult] = []
    errors: list[BaseException] = []

    def sweeper(i: int) -> None:
        try:
            barrier.wait()
            results.append(run_sweep(engines[i], clock=clock, batch=5))
        except BaseException as exc:  # the main thread reports it
            errors.append(exc)

    threads = [threading.Thread(target=sweeper, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(r.escalated for r in results) == CASES
    assert sum(r.claimed for r in results) == CASES  # nothing claimed twice
    with Session(engine) as s:
        escalations = Counter(s.execute(
            sa.select(CaseEvent.case_id).where(CaseEvent.kind == "escalated")  # type: ignore[arg-type]
        ).scalars())
    assert escalations == Counter(dict.fromkeys(ids, 1))
    # Per-case messages: exactly one each.
    per_case = Counter(m.case_id for m in outbox(engine, kind="progress"))
    assert per_case == Counter(dict.fromkeys(ids, 1))
    # The escalation shown in the 片长+组长 chat (the new case was shown in the 组长+邻长 one).
    mirrored = Counter(m.case_id for m in outbox(engine, chat_binding_id=city.bindings["a1_chat"]))
    assert mirrored == Counter(dict.fromkeys(ids, 1))
    # Messages to the new holders (alone or in digests): each case in exactly one of them.
    for person in ("group_leader",):
        seen: Counter[int] = Counter()
        for m in outbox(engine, person_id=city[person]):
            seen.update({a["case_id"] for a in m.actions})
        assert seen == Counter(dict.fromkeys(ids, 1))
    for e in [*engines, engine]:
        e.dispose()
