"""The one outbox dispatcher: claim → recipients → transport → settle, for every platform.

Which rows: `core.deliveries.claim_for_platform(platform=transport.platform)`, in batches,
under a lease the dispatcher keeps extending while rows wait in its queues (so no other
process claims them), and gives back untouched when it stops.

Order and concurrency: rows with the same `Row.key` (one recipient; one case's card edits) go
out in outbox order, one at a time, by one worker; workers for different keys run side by side
(at most `transport.parallel` at once), so one slow group chat does not hold back a
broadcast. When a row is put off or retried, the rows queued behind it on its key wait with it.
A transport may take several rows at the head of a key's queue as one delivery (`group`: a
Telegram album); if they cannot go together it answers `OneByOne` and they go one at a time.

What each outcome means for the row: settle.py; an exception in a transport is a Retry (a
bug or the network), and the others go on.

A claim that came back short (fewer due rows than room) means the next waits for `idle` or
the transport's wake-up (the web chat's hub), not for a send to end: each claim is a write
transaction, on SQLite the writer lock the webhooks wait on.

Where a row goes and what of it was delivered are read with its claim, for the whole batch
(recipients.resolve), so a send waits on no read; an outcome other than a clean Done drops
what was read for the rows behind it on its key, and they read theirs again.

Never twice on purpose: a transport records each message right after the platform accepted
it (Ledger), and a retry is handed the parts already delivered to skip them; a transport's
`settle_calls` lets calls under way finish and be recorded before rows are given back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatcher.recipients import Resolved, claim, resolve
from bot.dispatcher.rows import Row
from bot.dispatcher.settle import Settler
from bot.dispatcher.transport import (
    Done,
    Gone,
    Later,
    Ledger,
    Moved,
    OneByOne,
    Outcome,
    RealTimer,
    Retry,
    Stats,
    Timer,
    Transport,
    Work,
    group_size,
)
from core import deliveries
from core.clock import Clock
from core.counters import Counters
from core.db import write_session
from core.settings import Settings

__all__ = ["Dispatcher", "Done", "Gone", "Later", "Moved", "OneByOne", "Outcome", "Retry",
           "Row", "Stats", "Transport", "Work"]
log = logging.getLogger(__name__)
T = TypeVar("T")


class Dispatcher:
    """Drains the outbox through one transport; `run(stop)` in a server, `drain()` in tests
    and benches, `pass_once()` for one claimed batch."""

    def __init__(self, *, engine: Engine, transport: Transport, clock: Clock,
                 settings: Settings | None = None, configured: frozenset[str] | None = None,
                 counters: Counters | None = None, batch: int = 100, max_held: int = 1000,
                 lease: timedelta = timedelta(minutes=5), idle: float = 0.5,
                 timer: Timer | None = None) -> None:
        self.engine, self.transport, self.clock = engine, transport, clock
        self.platform = transport.platform
        self.settings = settings or Settings(_env_file=None)
        self.configured = configured  # the platforms the deployment runs (None: any)
        self.counters = counters if getattr(transport, "counts_rows", False) else None
        self.beats = counters  # every transport's sends are heartbeats (core/heartbeats.py)
        self.batch, self.max_held, self.lease, self.idle = batch, max_held, lease, idle
        self.timer: Timer = timer or getattr(transport, "timer", None) or RealTimer()
        self.ledger = Ledger(engine, clock, self.platform)
        self._settler = Settler(platform=self.platform, transport=transport, clock=clock,
                                settings=self.settings, configured=configured, stats=Stats())
        parallel = getattr(transport, "parallel", None)
        self._gate = asyncio.Semaphore(parallel) if parallel else None
        self._held: dict[int, Row] = {}
        self._ready: dict[int, Resolved] = {}  # read with the claim; dropped once it may be stale
        self._short_at: float | None = None  # when a claim last found less than it could take
        self._queues: dict[str, deque[Row]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._last_heartbeat = 0.0

    @property
    def stats(self) -> Stats:
        """What this dispatcher did (a caller may hand it its own to add to)."""
        return self._settler.stats

    @stats.setter
    def stats(self, stats: Stats) -> None:
        self._settler.stats = stats

    # ---- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the calls under way, give back the rest."""
        self._stopping = False
        try:
            while not stop.is_set():
                try:
                    claimed = await self._fill()
                    await self._heartbeat()
                except Exception:  # the database went away: keep the dispatcher alive
                    log.exception("%s dispatcher pass failed; retrying", self.platform)
                    claimed = 0
                if not claimed:
                    await self._pause(stop)
        finally:
            await self._shutdown()

    async def drain(self, *, max_seconds: float = 3600.0) -> Stats:
        """Deliver until no row for this platform is left pending (sent or dead), on the
        timer's clock; raises TimeoutError past `max_seconds`."""
        self._stopping = False
        start = self.timer.monotonic()
        try:
            while True:
                claimed = await self._fill()
                await self._heartbeat()
                if not claimed and not self._held:
                    left = await self._db(lambda s: deliveries.pending_for_platform(
                        s, platform=self.platform))
                    if left == 0:
                        break
                if self.timer.monotonic() - start > max_seconds:
                    raise TimeoutError(f"outbox not drained in {max_seconds} s")
                if not claimed:
                    await self._pause(None)
        finally:
            await self._shutdown()
        return self.stats

    async def pass_once(self, *, limit: int | None = None) -> int:
        """Claim one batch and deliver it to the end; how many rows were claimed."""
        self._stopping = False
        try:
            n = await self._fill(limit, eager=True)
            if self._workers:
                await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
        finally:
            await self._shutdown()
        return n

    async def _pause(self, stop: asyncio.Event | None) -> None:
        """Between claims: wake when a worker finishes (it may free room), when new rows may
        be due (`idle`), or when told to stop."""
        waits: set[asyncio.Future[Any]] = set(self._workers.values())
        idle = getattr(self.transport, "idle", None)
        woken: asyncio.Future[Any] | None = None
        if waits:
            # Workers run on real I/O: wait for them in real time, not on a virtual clock.
            timeout: float | None = self.idle
        else:
            woken = asyncio.ensure_future(idle(self.idle) if idle is not None
                                          else self.timer.sleep(self.idle))
            waits.add(woken)
            timeout = None
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopper is not None:
            waits.add(stopper)
        _, pending = await asyncio.wait(waits, timeout=timeout,
                                        return_when=asyncio.FIRST_COMPLETED)
        if woken is not None and woken.done():
            self._short_at = None  # idle passed, or the transport says new work came
        for f in pending:
            if f not in self._workers.values():
                f.cancel()

    async def _fill(self, limit: int | None = None, *, eager: bool = False) -> int:
        room = min(limit or self.batch, self.max_held - len(self._held))
        if room <= 0:
            return 0
        if not eager and self._short_at is not None and \
                self.timer.monotonic() - self._short_at < self.idle:
            # The last claim found fewer rows than it could take: a worker finishing is no
            # reason to look again before `idle` (a write transaction, on SQLite the lock).
            return 0
        now = self.clock.now()

        def take(s: Session) -> tuple[list[Row], dict[int, Resolved]]:
            got = claim(s, platform=self.platform, now=now, limit=room, lease=self.lease,
                        configured=self.configured)
            # A card edit's copies are read as it goes out: each edit before it adds to them.
            return got, resolve(s, platform=self.platform, rows=[
                r for r in got if r.kind != deliveries.CARD_UPDATE])

        rows, ready = await self._db(take)
        self._ready.update(ready)
        self._short_at = self.timer.monotonic() if len(rows) < room else None
        # In the order they were written: a case's receipt before the question that follows
        # it (a flow's rows can carry an earlier time than the ones its services wrote).
        for row in sorted(rows, key=lambda r: r.id):
            self._held[row.id] = row
            self._queues.setdefault(row.key, deque()).append(row)
            if row.key not in self._workers:
                self._workers[row.key] = asyncio.create_task(self._work(row.key))
        return len(rows)

    async def _heartbeat(self) -> None:
        now = self.timer.monotonic()
        if now - self._last_heartbeat < self.lease.total_seconds() / 3:
            return
        self._last_heartbeat = now
        ids = list(self._held)
        if ids:
            until = self.clock.now() + self.lease
            await self._db(lambda s: deliveries.extend_lease(s, message_ids=ids, until=until))

    async def _shutdown(self) -> None:
        self._stopping = True
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=5)
            for w in pending:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        settle_calls = getattr(self.transport, "settle_calls", None)
        if settle_calls is not None:
            # A call under way is finished and recorded before its row is given back.
            await settle_calls()
        ids = list(self._held)
        if ids:
            await self._db(lambda s: deliveries.release(s, message_ids=ids))
            self.stats.rows_released += len(ids)
        self._held.clear()
        self._ready.clear()
        self._queues.clear()
        self._workers.clear()

    # ---- one key's queue ------------------------------------------------------------------------

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                rows = list(queue)[:group_size(self.transport, queue)]
                if self._gate is not None:
                    async with self._gate:
                        until = await self._deliver(rows)
                else:
                    until = await self._deliver(rows)
                for _ in rows:
                    done = queue.popleft()
                    self._held.pop(done.id, None)
                    self._ready.pop(done.id, None)
                if until is not None and queue:
                    # Later rows for the same key wait behind this one: order is kept.
                    # Taken off the queue before the await: rows claimed meanwhile join behind.
                    rest = [r.id for r in queue]
                    queue.clear()
                    for rid in rest:
                        self._held.pop(rid, None)
                        self._ready.pop(rid, None)
                    await self._db(lambda s, r=rest, u=until: deliveries.defer(  # type: ignore[misc]
                        s, message_ids=r, until=u))
                    self.stats.rows_deferred += len(rest)
        finally:
            self._queues.pop(key, None)
            self._workers.pop(key, None)

    async def _deliver(self, rows: list[Row]) -> datetime | None:
        """Deliver rows as one, settle them; when their key's queue may go on (None: now)."""
        try:
            ready = [self._ready.pop(r.id, None) for r in rows]
            if all(ready):
                work = self._work_of(rows, [x for x in ready if x is not None])
            else:
                work = await self._db(lambda s: self._resolve(s, rows))
            outcome = await self.transport.deliver(work)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or the network: retried with backoff
            log.exception("%s outbox row %s failed", self.platform, rows[0].id)
            self.stats.errors.append(f"row {rows[0].id}: {exc!r}")
            outcome = Retry(f"sender error: {exc!r}")
        if not isinstance(outcome, Done) or outcome.lost:
            # Chats flagged, moved or parts half sent: the rows behind read theirs afresh.
            for r in self._queues.get(rows[0].key, ()):
                self._ready.pop(r.id, None)
        if isinstance(outcome, OneByOne):
            if len(rows) == 1:
                outcome = Retry("the transport could not deliver the row alone")
            else:
                for i, row in enumerate(rows):
                    until = await self._deliver([row])
                    if until is not None:
                        rest = [r.id for r in rows[i + 1:]]
                        await self._db(lambda s, r=rest, u=until: deliveries.defer(  # type: ignore[misc]
                            s, message_ids=r, until=u))
                        self.stats.rows_deferred += len(rest)
                        return until
                return None
        if self.beats is not None and isinstance(outcome, Done):
            self.beats.beat("out", self.platform, self.clock.now())
        if self.counters is not None:
            # Rows, not API calls: a row reaches each of a person's accounts at most once.
            if isinstance(outcome, Done):
                self.counters.sent(self.platform)
            elif isinstance(outcome, Later) and outcome.throttled:
                self.counters.throttled(self.platform)
        if isinstance(outcome, Done) and not outcome.lost and all(
                r.id in self.ledger.sent for r in rows):
            # Marked sent with its last message (Ledger.record `final`): nothing to settle.
            self.ledger.sent.difference_update(r.id for r in rows)
            self.stats.rows_sent += len(rows)
            until = None
        else:
            self.ledger.sent.difference_update(r.id for r in rows)
            until = await self._db(lambda s: self._settler.settle(s, rows, outcome))
        delivered = getattr(self.transport, "delivered", None)
        if delivered is not None:
            delivered()
        return until

    def _resolve(self, session: Session, rows: Sequence[Row]) -> Work:
        head = rows[0]
        if head.kind == deliveries.CARD_UPDATE and head.case_id is not None:
            # An edit goes to the copies already delivered on this platform, nowhere else.
            cards = tuple(deliveries.card_messages(
                session, head.case_id, platform=self.platform, person_id=head.person_id,
                chat_binding_id=head.chat_binding_id))
            return Work(tuple(rows), (), frozenset(), cards, self.ledger, self.stats,
                        self.clock.now())
        return self._work_of(rows, resolve(session, platform=self.platform,
                                           rows=rows).values())

    def _work_of(self, rows: Sequence[Row], ready: Iterable[Resolved]) -> Work:
        """The work for rows resolved together: the first row's chats, every row's parts."""
        ready = list(ready)
        done = frozenset().union(*(x.done for x in ready))
        return Work(tuple(rows), ready[0].dests, done, (), self.ledger, self.stats,
                    self.clock.now())

    async def _db(self, fn: Callable[[Session], T]) -> T:
        """One short transaction in a worker thread (the event loop never waits on the DB)."""
        def go() -> T:
            with write_session(self.engine) as s:
                return fn(s)

        return await asyncio.to_thread(go)

