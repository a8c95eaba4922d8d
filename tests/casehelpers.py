"""Short hands for case tests: each call is one transaction, like one chat update."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases import services
from core.cases.model import Case, CaseEvent
from core.cases.sweep import SweepResult, run_sweep
from core.clock import FakeClock
from core.db import session_scope
from core.outbox import OutboxMessage
from core.settings import Settings
from tests.cityfactory import City

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def open_case(engine: Engine, clock: FakeClock, city: City, resident: str = "resident1",
              text: str = "楼道里堆满杂物，有消防隐患", st: Settings | None = None,
              **kw: Any) -> int:
    with session_scope(engine) as s:
        case = services.open_case(s, clock=clock, settings=st or settings(),
                                  resident_id=city[resident], text=text, **kw)
        assert case.id is not None
        return case.id


def do(engine: Engine, fn: Callable[..., Any], **kw: Any) -> Any:
    """Run one service call in its own transaction."""
    with session_scope(engine) as s:
        return fn(s, **kw)


def get(engine: Engine, case_id: int) -> Case:
    with Session(engine) as s:
        case = s.get(Case, case_id)
        assert case is not None
        s.expunge(case)
        return case


def kinds(engine: Engine, case_id: int) -> list[str]:
    with Session(engine) as s:
        return list(s.execute(
            sa.select(CaseEvent.kind).where(CaseEvent.case_id == case_id)  # type: ignore[arg-type]
            .order_by(CaseEvent.id)  # type: ignore[arg-type]
        ).scalars())


def outbox(engine: Engine, *, with_card_edits: bool = False, **where: Any
           ) -> list[OutboxMessage]:
    """Outbox rows matching `where`, oldest first; edits of cards only when asked for."""
    with Session(engine) as s:
        q = sa.select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
        if not with_card_edits and "kind" not in where:
            q = q.where(OutboxMessage.kind != "card_update")  # type: ignore[arg-type]
        for k, v in where.items():
            q = q.where(getattr(OutboxMessage, k) == v)
        rows = list(s.execute(q).scalars())
        for r in rows:
            s.expunge(r)
        return rows


def sweep(engine: Engine, clock: FakeClock) -> SweepResult:
    return run_sweep(engine, clock=clock, batch=50)


def advance_and_sweep(engine: Engine, clock: FakeClock, delta: timedelta,
                      step: timedelta | None = None) -> SweepResult:
    """Move the clock forward, sweeping every `step` on the way (a running server) or only
    at the end (a server that was down)."""
    total = SweepResult()
    if step is None:
        clock.advance(delta)
        total.add(sweep(engine, clock))
        return total
    end = clock.now() + delta
    while clock.now() < end:
        clock.advance(min(step, end - clock.now()))
        total.add(sweep(engine, clock))
    return total
