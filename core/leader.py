"""One leader among the worker processes, chosen in the database.

On PostgreSQL the leader is the process that holds a session-level advisory lock
(`pg_try_advisory_lock`) on a connection of its own, kept open for as long as it leads. A
process that dies loses its connection and with it the lock, and the next candidate to retry
takes over: candidates retry every `retry` seconds (3 by default), so a leader that is gone is
replaced within one interval plus the time PostgreSQL takes to notice the lost connection.
A leader checks its connection on the same beat and steps down when it is gone.

On SQLite the single process is always the leader.

What only the leader does (webhooks/app.py): the once-per-deployment Telegram setup (bot
menus for every leader and admin: thousands of API calls that N workers would repeat N times).
What every worker does: take webhooks, sweep deadlines (claimed with SKIP LOCKED, so several
sweepers are safe and one that dies is covered by the rest) and drain the outbox (rows claimed
with SKIP LOCKED; the platform's global rate shared through core/ratebucket.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

RETRY_SECONDS = 3.0


class Sleeper(Protocol):
    async def sleep(self, seconds: float) -> None:
        """Wait that long on this timer's clock."""
        ...


class _RealSleeper:
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Leader:
    """A candidate: `poll()` tries to become (or checks it still is) the leader."""

    def __init__(self, engine: Engine, *, name: str = "linzhang.leader",
                 retry: float = RETRY_SECONDS, timer: Sleeper | None = None) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self.retry = retry
        self.timer = timer or _RealSleeper()
        self.always = engine.dialect.name != "postgresql"  # SQLite: one process, the leader
        self.is_leader = self.always
        self.elections = 0  # how often this process became the leader
        self.backend_pid: int | None = None  # the lock connection's server process
        self._conn: sa.Connection | None = None
        self._on_elected: list[Callable[[], None]] = []

    def on_elected(self, fn: Callable[[], None]) -> None:
        """Call `fn` (in the poller's thread) each time this process becomes the leader."""
        self._on_elected.append(fn)
        if self.is_leader and self.always:
            fn()

    def poll(self) -> bool:
        """One beat: keep or lose the lead when leading, else try to take it."""
        if self.always:
            return True
        if self.is_leader:
            try:
                assert self._conn is not None
                self._conn.execute(sa.text("SELECT 1"))
                return True
            except sa.exc.DBAPIError as exc:
                log.warning("leader: lost the lock connection (%s); stepping down",
                            str(exc).splitlines()[0])
                self._drop()
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self.backend_pid = int(self._conn.execute(
                    sa.text("SELECT pg_backend_pid()")).scalar_one())
            got = bool(self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                          {"k": self.key}).scalar_one())
        except sa.exc.DBAPIError as exc:
            log.warning("leader: database unreachable (%s)", str(exc).splitlines()[0])
            self._drop()
            return False
        if got:
            self.is_leader = True
            self.elections += 1
            log.info("leader: this process (backend %s) leads now", self.backend_pid)
            for fn in self._on_elected:
                try:
                    fn()
                except Exception:
                    log.exception("leader: a job started on election failed")
        return got

    def _drop(self) -> None:
        self.is_leader = False
        self.backend_pid = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every `retry` seconds until `stop` is set, then let go of the lead."""
        try:
            while not stop.is_set():
                await asyncio.to_thread(self.poll)
                if self.always:
                    break
                sleeper = asyncio.ensure_future(self.timer.sleep(self.retry))
                stopper = asyncio.ensure_future(stop.wait())
                _, pending = await asyncio.wait({sleeper, stopper},
                                                return_when=asyncio.FIRST_COMPLETED)
                for f in pending:
                    f.cancel()
        finally:
            await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Give up the lead (closing the connection releases the lock)."""
        if self.always:
            return
        if self._conn is not None and self.is_leader:
            with contextlib.suppress(Exception):
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        self._drop()


def start_leader(engine: Engine, *, retry: float = RETRY_SECONDS
                 ) -> tuple[Leader, Callable[[], Awaitable[None]]]:
    """Run a candidate in the current event loop (its first beat before this returns, so the
    caller knows at once whether it leads); returns it and the coroutine function that stops
    it."""
    leader = Leader(engine, retry=retry)
    leader.poll()
    stop = asyncio.Event()
    task = asyncio.create_task(leader.run(stop))

    async def shutdown() -> None:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)

    return leader, shutdown
