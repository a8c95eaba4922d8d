"""The outbox sender for Telegram: drains outbox rows within Telegram's flood limits.

Which rows: `core.deliveries.claim_for_platform(platform="telegram")` — a person with a
reachable Telegram identity (delivered to each such identity), a chat bound on Telegram, a raw
Telegram chat (`platform` + `address`), or a `card_update` of a case with Telegram cards. A
person with no Telegram identity is left for the other platforms' senders.

How fast: every API call goes through the `RateLimiter` (30/s in all, 1/s per chat, 20/min per
group), which makes the sender wait instead of being told 429. Rows for one recipient are
sent in order by one worker; workers for different recipients run side by side, so one slow
group chat does not hold back a broadcast.

What each answer of Telegram means for a row, why no part is sent twice on purpose, and how a
message is cut into parts: delivery.py, which delivers one row (`JobDelivery`, the base of
`TelegramSender`). The row as the sender holds it, its destinations, media and stats: jobs.py
(re-exported here, so `from bot.handlers.telegram.sender import ...` keeps working). This
module keeps the loop: claiming, the per-recipient workers, leases, stopping.

Order: rows for one recipient go out in outbox order, and when one is deferred or retried the
rows queued behind it wait with it; a row enqueued while an older one waits for its retry may
overtake it (two sender processes may also interleave one recipient's rows).

In the server (webhooks/ lifespan):

    stop = asyncio.Event()
    task = asyncio.create_task(run_sender(engine=engine, settings=settings, stop=stop))
    yield
    stop.set()
    await task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from telegram.error import TelegramError

from bot.handlers.telegram.album import AlbumDelivery, album_of
from bot.handlers.telegram.api import TelegramApi
from bot.handlers.telegram.jobs import (
    CARD_KINDS,
    PLATFORM,
    Dest,
    Job,
    MediaSource,
    SenderStats,
    StoreMedia,
)
from core import deliveries
from core.clock import Clock, SystemClock
from core.media.store import MediaStore
from core.settings import Settings

__all__ = [
    "CARD_KINDS",
    "PLATFORM",
    "Dest",
    "Job",
    "MediaSource",
    "SenderStats",
    "StoreMedia",
    "TelegramSender",
    "run_sender",
]

log = logging.getLogger(__name__)


class TelegramSender(AlbumDelivery):
    """Drains the outbox to Telegram; `run(stop)` in a server, `drain()` in tests and benches."""

    def __init__(self, *, engine: Engine, api: TelegramApi, settings: Settings,
                 clock: Clock | None = None, media: MediaSource | None = None,
                 batch: int = 100, max_held: int = 1000,
                 lease: timedelta = timedelta(minutes=5), idle: float = 0.5,
                 configured: frozenset[str] | None = None) -> None:
        self.engine = engine
        self.configured = configured
        self.api = api
        self.settings = settings
        self.clock = clock or SystemClock()
        # The API's limiter is the bot token's: its timer is the sender's too.
        self.limiter = api.limiter
        self.timer = api.limiter.timer
        self.media = media or StoreMedia(MediaStore.from_settings(settings))
        self.batch = batch
        self.max_held = max_held
        self.lease = lease
        self.idle = idle
        self.stats = SenderStats()
        self._held: dict[int, Job] = {}
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._calls: set[asyncio.Future[Any]] = set()
        self._stopping = False
        self._last_heartbeat = 0.0

    # ---- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the calls under way and give back the rest."""
        self._stopping = False
        try:
            while not stop.is_set():
                claimed = await self._fill()
                await self._heartbeat()
                if not claimed:
                    await self._pause(stop)
        finally:
            await self._shutdown()

    async def drain(self, *, max_seconds: float = 3600.0) -> SenderStats:
        """Deliver until no row for Telegram is left pending (sent or dead), on the timer's
        clock; raises TimeoutError past `max_seconds`."""
        self._stopping = False
        start = self.timer.monotonic()
        try:
            while True:
                claimed = await self._fill()
                await self._heartbeat()
                if not claimed and not self._held:
                    left = await self._db(lambda s: deliveries.pending_for_platform(
                        s, platform=PLATFORM))
                    if left == 0:
                        break
                if self.timer.monotonic() - start > max_seconds:
                    raise TimeoutError(f"outbox not drained in {max_seconds} s")
                if not claimed:
                    await self._pause(None)
        finally:
            await self._shutdown()
        return self.stats

    async def _pause(self, stop: asyncio.Event | None) -> None:
        """Between claims: wake when a worker finishes (it may free room), when new rows may be
        due (`idle` on the timer), or when told to stop."""
        waits: set[asyncio.Future[Any]] = set(self._workers.values())
        if waits:
            # Workers run on real I/O: wait for them in real time, not on a virtual clock.
            timeout: float | None = self.idle
        else:
            waits.add(asyncio.ensure_future(self.timer.sleep(self.idle)))
            timeout = None
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopper is not None:
            waits.add(stopper)
        _, pending = await asyncio.wait(waits, timeout=timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            if f not in self._workers.values():
                f.cancel()

    async def _fill(self) -> int:
        room = min(self.batch, self.max_held - len(self._held))
        if room <= 0:
            return 0
        now = self.clock.now()
        jobs = await self._db(lambda s: [Job.of(r) for r in deliveries.claim_for_platform(
            s, platform=PLATFORM, now=now, limit=room, lease=self.lease)])
        for job in jobs:
            self._held[job.id] = job
            self._queues.setdefault(job.key, deque()).append(job)
            if job.key not in self._workers:
                self._workers[job.key] = asyncio.create_task(self._work(job.key))
        return len(jobs)

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
        if self._calls:
            # A call under way is finished and recorded before its row is given back.
            await asyncio.gather(*list(self._calls), return_exceptions=True)
        ids = list(self._held)
        if ids:
            await self._db(lambda s: deliveries.release(s, message_ids=ids))
            self.stats.rows_released += len(ids)
        self._held.clear()
        self._queues.clear()
        self._workers.clear()

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                job = queue[0]
                album = album_of(queue)
                try:
                    until = await (self._deliver_album(album) if album else self._deliver(job))
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a bug or the database: keep the sender alive
                    log.exception("outbox row %s failed", job.id)
                    self.stats.errors.append(f"row {job.id}: {e!r}")
                    until = await self._fail(job, f"sender error: {e!r}")
                    album = []  # the rest of an album goes on without this row
                for _ in album or [job]:
                    done = queue.popleft()
                    self._held.pop(done.id, None)
                if until is not None and queue:
                    # Later rows for the same recipient wait behind this one: order is kept.
                    # Taken off the queue before the await: rows claimed meanwhile join behind.
                    rest = [j.id for j in queue]
                    queue.clear()
                    for jid in rest:
                        self._held.pop(jid, None)
                    await self._db(lambda s, r=rest, u=until: deliveries.defer(  # type: ignore[misc]
                        s, message_ids=r, until=u))
                    self.stats.rows_deferred += len(rest)
        finally:
            self._queues.pop(key, None)
            self._workers.pop(key, None)


async def run_sender(*, engine: Engine, settings: Settings, stop: asyncio.Event,
                     clock: Clock | None = None, api: TelegramApi | None = None,
                     media: MediaSource | None = None,
                     configured: frozenset[str] | None = None) -> None:
    """Drain the outbox to Telegram until `stop` is set: run it as a task in the FastAPI
    lifespan (`asyncio.create_task(run_sender(...))`, then `stop.set()` and await it)."""
    own = api is None
    api = api or TelegramApi.from_settings(settings)
    delay = 1.0
    while own and not stop.is_set():
        try:
            await api.start()
            break
        except TelegramError as e:  # Telegram unreachable at boot: keep trying, do not crash
            log.warning("Telegram not reachable yet (%s); retrying in %.0f s", e, delay)
            await _wait(stop, delay)
            delay = min(60.0, delay * 2)
    try:
        if not stop.is_set():
            sender = TelegramSender(engine=engine, api=api, settings=settings, clock=clock,
                                    media=media, lease=settings.outbox_lease,
                                    configured=configured)
            await sender.run(stop)
    finally:
        if own:
            await api.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

