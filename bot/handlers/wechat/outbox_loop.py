"""A small outbox loop shared by the WeChat and WeCom senders.

Rows are claimed with `core.deliveries.claim_for_platform` and delivered one at a time in a
worker thread (wechatpy is synchronous). Each delivery answers Done (mark sent), Retry (mark
failed, with backoff, or dead when permanent) or Later (a budget is spent: put the row off
without counting an attempt). Every chat a row reached is recorded as a `Delivery` right
after the call, so a retried row skips the chats it already reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import deliveries
from core.cases.unreachable import mark_unreachable, on_unreachable
from core.clock import Clock
from core.counters import Counters
from core.db import write_session
from core.hierarchy.model import ChatBinding, ChatIdentity
from core.outbox import OutboxMessage, mark_failed, mark_sent
from core.settings import Settings

log = logging.getLogger(__name__)
CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
CB: sa.Table = ChatBinding.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Row:
    """An outbox row as plain data (it crosses threads)."""

    id: int
    kind: str
    text: str
    person_id: int | None
    chat_binding_id: int | None
    address: str | None
    case_id: int | None
    actions: tuple[dict[str, Any], ...]
    options: dict[str, Any]

    @classmethod
    def of(cls, r: OutboxMessage) -> Row:
        assert r.id is not None
        return cls(r.id, r.kind, r.text, r.person_id, r.chat_binding_id, r.address, r.case_id,
                   tuple(r.actions or ()), dict(r.options or {}))


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Retry:
    error: str
    permanent: bool = False


@dataclass(frozen=True)
class Later:
    until: datetime
    note: str
    throttled: bool = False  # the platform said "too many requests" (45009), not our budget


Outcome = Done | Retry | Later


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)


class Deliverer(Protocol):
    platform: str

    def deliver(self, row: Row) -> Outcome:
        """Deliver one row (sync, in a worker thread)."""
        ...


def destinations(session: Session, *, platform: str, row: Row) -> tuple[list[str], bool]:
    """The chats a row goes to on `platform`, and whether they are a person's own chats."""
    if row.person_id is not None:
        ids = session.execute(sa.select(CI.c.external_id).where(
            CI.c.person_id == row.person_id, CI.c.platform == platform,
            CI.c.unreachable.is_(False))).scalars().all()
        return [str(i) for i in ids], True
    if row.chat_binding_id is not None:
        chat = session.execute(sa.select(CB.c.chat_id).where(
            CB.c.id == row.chat_binding_id, CB.c.platform == platform)).scalar_one_or_none()
        return ([str(chat)] if chat else []), False
    return ([row.address] if row.address else []), False


def gone(engine: Engine, *, platform: str, chat_id: str, clock: Clock,
         settings: Settings) -> None:
    """A person's chat can no longer be reached: flag it, and tell the tier above."""
    with write_session(engine) as s:
        person_id = mark_unreachable(s, platform=platform, external_id=chat_id)
        if person_id is not None:
            on_unreachable(s, person_id=person_id, clock=clock, settings=settings)


def _apply(engine: Engine, row: Row, outcome: Outcome, now: datetime) -> None:
    with write_session(engine) as s:
        if isinstance(outcome, Done):
            mark_sent(s, message_id=row.id, now=now)
        elif isinstance(outcome, Later):
            deliveries.defer(s, message_ids=[row.id], until=outcome.until, note=outcome.note)
        else:
            mark_failed(s, message_id=row.id, now=now, error=outcome.error,
                        permanent=outcome.permanent)


async def pass_once(engine: Engine, *, sender: Deliverer, clock: Clock, stats: Stats,
                    limit: int = 50, counters: Counters | None = None) -> int:
    """Claim and deliver one batch; how many rows were claimed."""
    def claim() -> list[Row]:
        with write_session(engine) as s:
            return [Row.of(r) for r in deliveries.claim_for_platform(
                s, platform=sender.platform, now=clock.now(), limit=limit,
                lease=timedelta(minutes=5))]

    rows = await asyncio.to_thread(claim)
    for row in rows:
        try:
            outcome = await asyncio.to_thread(sender.deliver, row)
        except Exception as exc:  # a bug or the network: retried with backoff
            log.exception("%s outbox row %s failed", sender.platform, row.id)
            stats.errors.append(f"row {row.id}: {exc!r}")
            outcome = Retry(f"sender error: {exc!r}")
        if isinstance(outcome, Done):
            stats.sent += 1
        elif isinstance(outcome, Later):
            stats.deferred += 1
        else:
            stats.failed += 1
        if counters is not None:
            # Rows, not API calls: a row reaches each of a person's accounts at most once.
            if isinstance(outcome, Done):
                counters.sent(sender.platform)
            elif isinstance(outcome, Later) and outcome.throttled:
                counters.throttled(sender.platform)
        await asyncio.to_thread(_apply, engine, row, outcome, clock.now())
    return len(rows)


async def run(engine: Engine, *, sender: Deliverer, clock: Clock, stop: asyncio.Event,
              idle: float = 0.3, counters: Counters | None = None) -> None:
    """Deliver until `stop` is set (a lifespan task)."""
    stats = Stats()
    while not stop.is_set():
        try:
            claimed = await pass_once(engine, sender=sender, clock=clock, stats=stats,
                                      counters=counters)
        except Exception:
            log.exception("%s sender pass failed; retrying", sender.platform)
            claimed = 0
        if not claimed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle)
