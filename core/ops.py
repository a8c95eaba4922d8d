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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

from core.cases.sweep import earliest_due
from core.clock import Clock, as_utc
from core.db import write_session
from core.hierarchy.model import Person, Role
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


class StallTexts(Protocol):
    """The words of the two alerts, in a reader's language (bot/notify supplies them)."""

    def stalled(self, *, lang: str, minutes: int) -> str: ...

    def recovered(self, *, lang: str, minutes: int) -> str: ...


class _Plain:
    """What a root that installed no texts says: plain words, so an alert is never lost."""

    def stalled(self, *, lang: str, minutes: int) -> str:
        return f"The deadline sweep has stalled: the earliest due case is {minutes} min overdue."

    def recovered(self, *, lang: str, minutes: int) -> str:
        return f"The deadline sweep has recovered (stalled for about {minutes} min)."


_texts: StallTexts = _Plain()


def use_texts(texts: StallTexts) -> None:
    """Say the stall alerts with these words; the composition root installs bot/notify's."""
    global _texts
    _texts = texts


def _lock_state(session: Session, now: datetime) -> datetime | None:
    """The episode row, created if missing and locked for this transaction; its `since`."""
    pg = session.get_bind().dialect.name == "postgresql"
    ins = postgresql.insert(OPS) if pg else sqlite.insert(OPS)
    session.execute(ins.values(key=STALL_KEY, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["key"]))
    since = session.execute(sa.select(OPS.c.since).where(OPS.c.key == STALL_KEY)
                            .with_for_update()).scalar_one_or_none()
    return None if since is None else as_utc(since)


def _tell_admins(session: Session, *, say: Callable[[str], str], key: str,
                 now: datetime) -> int:
    admins = root_admins(session)
    if not admins:
        log.error("no admin on any root node to tell: %s", say("en"))
        return 0
    people: sa.Table = Person.__table__  # type: ignore[attr-defined]
    lang = {pid: language for pid, language in session.execute(
        sa.select(people.c.id, people.c.language).where(people.c.id.in_(admins)))}
    return enqueue_many(session, drafts=[
        Draft(text=say(lang.get(pid) or "zh"), kind=ALERT_KIND, dedupe_key=f"{key}:{pid}",
              person_id=pid)
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
            minutes = _minutes(lag)
            _tell_admins(session, say=lambda lang: _texts.stalled(lang=lang, minutes=minutes),
                         now=now, key=f"ops:stall:{start.isoformat()}")
            log.error("the deadline sweep is %.0f s behind; root admins alerted",
                      lag.total_seconds())
            return WatchResult(Watch.alerted, lag, start)
        if stalled:
            return WatchResult(Watch.stalled, lag, since)
        if since is not None:
            session.execute(sa.update(OPS).where(OPS.c.key == STALL_KEY)
                            .values(since=None, updated_at=now))
            minutes = _minutes(now - since)
            _tell_admins(session, say=lambda lang: _texts.recovered(lang=lang, minutes=minutes),
                         now=now, key=f"ops:recovered:{since.isoformat()}")
            log.warning("the deadline sweep has caught up after %.0f s",
                        (now - since).total_seconds())
            return WatchResult(Watch.recovered, lag, since)
        return WatchResult(Watch.ok, lag)
