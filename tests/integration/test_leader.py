"""Leader election on the real PostgreSQL: one leader; when its connection dies, another."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from core.db import make_engine
from core.leader import Leader
from tests.support.poll import apoll, poll

pytestmark = pytest.mark.timeout(60)


class StepTimer:
    """Virtual time that moves only when the test says: sleepers wake at `advance`."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self.now]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self.now]
        for _, f in due:
            if not f.done():
                f.set_result(None)

    @property
    def sleeping(self) -> int:
        return sum(not f.done() for _, f in self._sleepers)


async def until(cond: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Real time, bounded: for the database and the poller threads to do their part."""
    await apoll(cond, timeout=seconds, what=what)


def backend_alive(admin: sa.Engine, pid: int) -> bool:
    with admin.connect() as conn:
        return bool(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                 {"p": pid}).scalar_one())


@pytest.mark.postgres
def test_the_other_candidate_takes_over_within_the_retry_interval(pg_url: str) -> None:
    engines = [make_engine(pg_url), make_engine(pg_url)]  # two processes' worth
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    timer = StepTimer()
    a, b = (Leader(e, name="test.leader", retry=3.0, timer=timer) for e in engines)
    elected: list[str] = []
    a.on_elected(lambda: elected.append("a"))
    b.on_elected(lambda: elected.append("b"))

    async def scenario() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(a.run(stop))]
        await until(lambda: timer.sleeping == 1, "a's first beat")
        tasks.append(asyncio.create_task(b.run(stop)))
        await until(lambda: timer.sleeping == 2, "b's first beat")
        assert (a.is_leader, b.is_leader) == (True, False)
        # More beats change nothing: the lock stays where it is.
        for _ in range(3):
            timer.advance(3.0)
            await until(lambda: timer.sleeping == 2, "a beat")
        assert (a.is_leader, b.is_leader) == (True, False) and elected == ["a"]

        # The leader's process "dies": the server drops its connection.
        pid = a.backend_pid
        assert pid is not None
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        await until(lambda: not backend_alive(admin, pid), "the backend to go")
        a.always = a.is_leader = False  # the dead process no longer competes
        a_task = tasks.pop(0)
        a_task.cancel()
        start = timer.now
        while not b.is_leader:
            timer.advance(1.0)
            await until(lambda: timer.sleeping >= 1, "b's next beat")
            assert timer.now - start <= 3.0, "no takeover within one retry interval"
        assert elected == ["a", "b"]
        stop.set()
        await asyncio.gather(*tasks)
        await asyncio.gather(a_task, return_exceptions=True)

    try:
        asyncio.run(scenario())
        # b let go when it stopped: a fresh candidate gets the lock at once.
        c = Leader(engines[0], name="test.leader")
        assert c.poll() is True
        c.close()
    finally:
        for e in (*engines, admin):
            e.dispose()


@pytest.mark.postgres
def test_a_leader_whose_connection_died_steps_down_on_its_next_beat(pg_url: str) -> None:
    engine = make_engine(pg_url)
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    a, b = Leader(engine, name="test.x"), Leader(engine, name="test.x")
    try:
        assert a.poll() is True and b.poll() is False
        assert a.backend_pid is not None
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": a.backend_pid})
        pid = a.backend_pid
        poll(lambda: not backend_alive(admin, pid), timeout=10, what="the backend to end")
        assert b.poll() is True
        # a finds its connection gone, steps down and cannot take the lock back.
        assert a.poll() is False and not a.is_leader
        assert a.elections == 1 and b.elections == 1
    finally:
        a.close()
        b.close()
        engine.dispose()
        admin.dispose()


def test_on_sqlite_the_single_process_always_leads(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    leader = Leader(engine)
    started: list[int] = []
    leader.on_elected(lambda: started.append(1))
    assert leader.is_leader and leader.poll() and started == [1]

    async def run() -> None:
        await asyncio.wait_for(leader.run(asyncio.Event()), 5)  # returns at once

    asyncio.run(run())
    assert leader.is_leader
    engine.dispose()
