"""The dispatcher's loop for transports that deliver one row at a time (WeChat OA, WeCom).

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
from typing import Protocol

from sqlalchemy.engine import Engine

from bot.dispatcher.reach import gone, still_reachable
from bot.dispatcher.recipients import destinations
from bot.dispatcher.rows import Row
from core import deliveries
from core.clock import Clock
from core.counters import Counters
from core.db import write_session
from core.outbox import mark_failed, mark_sent

__all__ = [
    "Deliverer",
    "Done",
    "Gone",
    "Later",
    "Outcome",
    "Retry",
    "Row",
    "Stats",
    "Transport",
    "destinations",
    "gone",
    "pass_once",
    "run",
]
log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Gone:
    """None of the row's chats on this platform reaches its recipient."""

    why: str


Outcome = Done | Retry | Later | Gone


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)


class Transport(Protocol):
    """One platform's API and rules (limits, windows, quotas, sizes, cards) behind one call:
    deliver a row to its chats on this platform and say what happened. Claiming, leases,
    settling, retries and unreachable people are the loop's (and reach.py's)."""

    platform: str

    def deliver(self, row: Row) -> Outcome:
        """Deliver one row (sync, in a worker thread)."""
        ...


Deliverer = Transport  # the name the first senders used


def _apply(engine: Engine, row: Row, outcome: Outcome, now: datetime,
           configured: frozenset[str] | None = None) -> None:
    with write_session(engine) as s:
        if isinstance(outcome, Gone):
            if row.person_id is not None and still_reachable(
                    s, person_id=row.person_id, configured=configured):
                deliveries.release(s, message_ids=[row.id])  # another platform's turn
            elif row.person_id is not None:
                deliveries.give_up_unreachable(s, message_ids=[row.id], now=now,
                                               why=outcome.why)
            else:
                mark_failed(s, message_id=row.id, now=now, error=outcome.why, permanent=True)
        elif isinstance(outcome, Done):
            mark_sent(s, message_id=row.id, now=now)
        elif isinstance(outcome, Later):
            deliveries.defer(s, message_ids=[row.id], until=outcome.until, note=outcome.note)
        else:
            mark_failed(s, message_id=row.id, now=now, error=outcome.error,
                        permanent=outcome.permanent)


async def pass_once(engine: Engine, *, sender: Transport, clock: Clock, stats: Stats,
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
        # `configured`: the platforms the deployment runs (None: judge by any platform).
        await asyncio.to_thread(_apply, engine, row, outcome, clock.now(),
                                getattr(sender, "configured", None))
    return len(rows)


async def run(engine: Engine, *, sender: Transport, clock: Clock, stop: asyncio.Event,
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
