"""Operations: how far the deadline sweep is behind, and the alert when it has stalled.

The sweep job cannot report its own death, so a separate scheduled job (core/scheduler.py)
calls `watch_sweep` every minute or so. When a case has waited more than two sweep intervals
past its due time, the admins of the root node(s) get ONE message for the episode; when the
backlog clears they get one recovery note. The episode lives in `ops_state` (shared by every
worker), so a restart or a second worker neither repeats nor forgets it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

from core.cases.sweep import earliest_due
from core.clock import Clock, as_utc
from core.db import write_session
from core.hierarchy.model import Role
from core.hierarchy.queries import holders, roots
from core.outbox import Draft, enqueue_many

log = logging.getLogger(__name__)

STALL_KEY = "sweep_stall"
# A busy machine may run a sweep a few seconds late without anything being wrong.
GRACE = timedelta(seconds=5)
ALERT_KIND = "ops_alert"


class OpsState(SQLModel, table=True):
    """A small shared memory for operational jobs: one row per key (e.g. a stall episode)."""

    __tablename__ = "ops_state"
    key: str = Field(sa_column=sa.Column(sa.String(60), primary_key=True))
    since: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    value: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


OPS: sa.Table = OpsState.__table__  # type: ignore[attr-defined]


class Watch(StrEnum):
    ok = "ok"
    alerted = "alerted"  # a stall began: the admins were told
    stalled = "stalled"  # still stalled, already told
    recovered = "recovered"  # the stall ended: the admins were told


@dataclass(frozen=True)
class WatchResult:
    state: Watch
    lag: timedelta
    since: datetime | None = None


def sweep_lag(session: Session, *, now: datetime) -> timedelta:
    """How long the earliest due case has waited past its due time (zero when none has)."""
    due = earliest_due(session)
    return now - due if due is not None and due < now else timedelta(0)


def stall_limit(interval: timedelta) -> timedelta:
    """The lag that counts as stalled: two sweep intervals, and a little grace."""
    return 2 * interval + GRACE


def stalled_since(session: Session) -> datetime | None:
    """When the current stall episode began, or None."""
    since = session.execute(
        sa.select(OPS.c.since).where(OPS.c.key == STALL_KEY)).scalar_one_or_none()
    return None if since is None else as_utc(since)


def root_admins(session: Session) -> list[int]:
    """Person ids of the admins of every root node (whoever runs the whole deployment)."""
    seen: dict[int, None] = {}
    for node in roots(session):
        for p in holders(session, node, Role.admin):
            seen.setdefault(p.id)
    return list(seen)


def _minutes(d: timedelta) -> int:
    return max(1, math.ceil(d.total_seconds() / 60))


def alert_text(lag: timedelta) -> str:
    n = _minutes(lag)
    return (f"⚠️ 期限检查已停滞：最早到期的事项已超时 {n} 分钟未处理，请检查服务。\n"
            f"The deadline sweep has stalled: the earliest due case is {n} min overdue. "
            "Please check the service.")


def recovery_text(stalled_for: timedelta) -> str:
    n = _minutes(stalled_for)
    return (f"✅ 期限检查已恢复（停滞约 {n} 分钟）。\n"
            f"The deadline sweep has recovered (stalled for about {n} min).")


def _lock_state(session: Session, now: datetime) -> datetime | None:
    """The episode row, created if missing and locked for this transaction; its `since`."""
    pg = session.get_bind().dialect.name == "postgresql"
    ins = postgresql.insert(OPS) if pg else sqlite.insert(OPS)
    session.execute(ins.values(key=STALL_KEY, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["key"]))
    since = session.execute(sa.select(OPS.c.since).where(OPS.c.key == STALL_KEY)
                            .with_for_update()).scalar_one_or_none()
    return None if since is None else as_utc(since)


def _tell_admins(session: Session, *, text: str, key: str, now: datetime) -> int:
    admins = root_admins(session)
    if not admins:
        log.error("no admin on any root node to tell: %s", text.splitlines()[0])
        return 0
    return enqueue_many(session, drafts=[
        Draft(text=text, kind=ALERT_KIND, dedupe_key=f"{key}:{pid}", person_id=pid)
        for pid in admins], now=now)


def watch_sweep(engine: Engine, *, clock: Clock, interval: timedelta) -> WatchResult:
    """Check the sweep's lag once; open or close a stall episode and tell the root admins."""
    now = clock.now()
    with write_session(engine) as session:
        lag = sweep_lag(session, now=now)
        stalled = lag > stall_limit(interval)
        since = _lock_state(session, now)
        if stalled and since is None:
            # The episode is named by its start, so each stall alerts once.
            start = now - lag
            session.execute(sa.update(OPS).where(OPS.c.key == STALL_KEY)
                            .values(since=start, updated_at=now))
            _tell_admins(session, text=alert_text(lag), now=now,
                         key=f"ops:stall:{start.isoformat()}")
            log.error("the deadline sweep is %.0f s behind; root admins alerted",
                      lag.total_seconds())
            return WatchResult(Watch.alerted, lag, start)
        if stalled:
            return WatchResult(Watch.stalled, lag, since)
        if since is not None:
            session.execute(sa.update(OPS).where(OPS.c.key == STALL_KEY)
                            .values(since=None, updated_at=now))
            _tell_admins(session, text=recovery_text(now - since), now=now,
                         key=f"ops:recovered:{since.isoformat()}")
            log.warning("the deadline sweep has caught up after %.0f s",
                        (now - since).total_seconds())
            return WatchResult(Watch.recovered, lag, since)
        return WatchResult(Watch.ok, lag)
