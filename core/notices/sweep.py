"""The notices' part of the deadline sweep: the one re-ping of those who have not said 收到,
and at the deadline each superior's list of their people who have not (core/scheduler.py runs
it after the case sweep, on the injected clock).

Each due notice is handled in its own transaction, taken with `FOR UPDATE SKIP LOCKED`, so
two workers never re-ping or list the same notice twice. Quiet hours hold a re-ping back until
they end; the deadline closes the notice on time, and its lists wait for the morning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases.policy import CasePolicy, in_quiet_hours, out_of_quiet
from core.clock import Clock, as_utc
from core.db import write_session
from core.notices import events
from core.notices.model import NOTICE, Notice, NoticeEventKind, NoticeState


@dataclass
class NoticeSweep:
    repinged: int = 0
    closed: int = 0


def due_notices(session: Session, *, now: datetime, limit: int) -> list[int]:
    q = (sa.select(NOTICE.c.id).where(NOTICE.c.state == NoticeState.open.value,
                                      NOTICE.c.next_due_at <= now)
         .order_by(NOTICE.c.next_due_at).limit(limit))
    return [int(x) for x in session.execute(q).scalars()]


def run_notice_sweep(engine: Engine, *, clock: Clock, batch: int = 100) -> NoticeSweep:
    """Handle every notice whose re-ping or deadline has come."""
    result = NoticeSweep()
    now = clock.now()
    with Session(engine) as s:
        ids = due_notices(s, now=now, limit=batch)
    for notice_id in ids:
        with write_session(engine) as s:
            step(s, notice_id=notice_id, now=now, result=result)
    return result


def step(session: Session, *, notice_id: int, now: datetime, result: NoticeSweep) -> None:
    """One due notice: re-ping, close, or both, then its next due moment."""
    notice = session.execute(sa.select(Notice).where(NOTICE.c.id == notice_id)
                             .with_for_update(skip_locked=True)).scalar_one_or_none()
    if notice is None or notice.state != NoticeState.open.value or notice.next_due_at is None \
            or as_utc(notice.next_due_at) > now:
        return  # another worker took it, or it is no longer due
    policy = CasePolicy.from_json(notice.policy or {})
    deadline = as_utc(notice.deadline) if notice.deadline else None
    if deadline is not None and deadline <= now:
        notice.state = NoticeState.closed.value
        notice.next_due_at = None
        events.record(session, notice_id=notice_id, kind=NoticeEventKind.deadline, at=now,
                      detail={"send_at": out_of_quiet(policy, now).isoformat()})
        result.closed += 1
        return
    reping = as_utc(notice.reping_at) if notice.reping_at else None
    if reping is not None and not notice.repinged and reping <= now:
        if in_quiet_hours(policy, now):
            later = out_of_quiet(policy, now)
            notice.next_due_at = min(later, deadline) if deadline else later
            return
        notice.repinged = True
        events.record(session, notice_id=notice_id, kind=NoticeEventKind.repinged, at=now)
        result.repinged += 1
    notice.next_due_at = deadline
