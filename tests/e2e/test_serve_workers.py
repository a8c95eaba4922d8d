"""`linzhang serve --workers N`: refused on SQLite; on PostgreSQL N processes take webhooks,
one of them leads, and when a worker dies a leader is there again within 10 seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from linzhang.cli import main
from tests.e2e.test_crash_workers import assert_each_report_once, prepared
from tests.fakes.telegram_api import FakeTelegram
from tests.support.poll import poll
from tests.support.server import free_port
from tests.support.workers import (
    post_updates,
    report,
    server_env,
    start_server,
    wait_healthy,
)


def test_several_workers_on_sqlite_are_refused_with_a_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'one.db'}")
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--workers", "2"])
    assert "SQLite is the single-process embedded database" in str(exc.value)
    assert "postgresql" in str(exc.value)
    assert not (tmp_path / "one.db").exists()  # refused before touching anything


def workers_of(pid: int) -> list[int]:
    """The uvicorn supervisor's worker processes (children running multiprocessing spawn)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmd:
            found.append(int(entry))
    return sorted(found)


def leader_ports(url: str) -> list[int]:
    """The client ports of the connections holding the leader lock (one, when all is well)."""
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return [int(p) for p in conn.execute(sa.text(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM"
                " pg_database WHERE datname = current_database())")).scalars()]
    finally:
        eng.dispose()


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (to tell which worker holds the lock)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def wait_for(cond: Callable[[], bool], seconds: float, what: str) -> float:
    start = time.monotonic()
    poll(cond, timeout=seconds, what=what, step=0.1)
    return time.monotonic() - start


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_two_workers_take_webhooks_and_a_leader_survives_any_worker(
        pg_url: str, tmp_path: Path) -> None:
    engine, residents = prepared(pg_url)
    n = 200
    updates = [report(k, residents[k % len(residents)]) for k in range(n)]
    with FakeTelegram() as tg:
        env = server_env(database_url=pg_url, work=tmp_path, token=tg.token,
                         api_base=tg.base_url)
        server = start_server(env, free_port(), tmp_path, "--workers", "2")
        try:
            wait_healthy(server)
            wait_for(lambda: len(workers_of(server.proc.pid)) == 2, 30, "two workers")
            wait_for(lambda: len(leader_ports(pg_url)) == 1, 10, "leader")
            first = asyncio.run(post_updates(updates[: n // 2], [server.base], concurrency=8))
            assert len(first.acked) == n // 2
            # Kill the leader's process: another worker (or the one uvicorn starts in its
            # place) takes the lead within 10 seconds.
            (port,) = leader_ports(pg_url)
            (victim,) = [w for w in workers_of(server.proc.pid) if port in local_ports(w)]
            os.kill(victim, signal.SIGKILL)
            took = wait_for(lambda: len(ports := leader_ports(pg_url)) == 1 and ports != [port],
                            10, "new leader")
            wait_for(lambda: victim not in workers_of(server.proc.pid)
                     and len(workers_of(server.proc.pid)) == 2, 30, "a new worker")
            second = asyncio.run(post_updates(updates[n // 2:], [server.base], concurrency=8))
            assert len(second.acked) == n - n // 2
            assert_each_report_once(engine, set(range(n)))
            print(f"\nleader again {took:.1f} s after the leader's process was killed")
        finally:
            server.stop()
            engine.dispose()
