"""The project's webhook path against a bare FastAPI endpoint (parse + one INSERT), on SQLite
and on PostgreSQL, same client, same concurrency, in one run; with the server's CPU time per
update, the machine-independent figure.

    python bench/bench_inbound_ceiling.py [--updates 2000] [--concurrency 16] [--pg URL]
                                          [--workers 1,2] [--pin CPUS]

Each configuration gets a fresh database (the project: the same generated city, residents on
Telegram, the sender pointed at the fake Bot API), a real server process under uvicorn, and
clients posting residents' reports over loopback HTTP. Latency is webhook → 200, which for the
project comes after the update, the case and the outbox rows have committed. Server CPU is
the user + system time of the server process and its children over the posting, from /proc.
`--pin 0` runs every server under `taskset -c 0`, so a worker count can be compared on a
fixed share of the machine (the clients and the database then have the other cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_workers import GEN, drop_pg, fresh_pg, load  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its living descendants."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
        todo += kids.get(p, [])
    return total


@dataclass
class Figures:
    label: str
    rate: float
    p50: float
    p99: float
    cpu_ms: float


def _post(updates: list[dict], base: str, concurrency: int) -> tuple[float, list[float]]:
    from tests.support.workers import post_updates

    start = time.perf_counter()
    posting = asyncio.run(post_updates(updates, [base], concurrency=concurrency))
    elapsed = time.perf_counter() - start
    assert len(posting.acked) == len(updates), "updates not taken"
    return elapsed, list(posting.acked.values())


def _figures(label: str, n: int, elapsed: float, lat: list[float], cpu: float) -> Figures:
    q = statistics.quantiles(lat, n=100)
    return Figures(label, n / elapsed, q[49] * 1e3, q[98] * 1e3, cpu / n * 1e3)


def _popen(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path,
           pin: str | None) -> subprocess.Popen[bytes]:
    if pin:
        cmd = ["taskset", "-c", pin, *cmd]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def project(url: str, city: Path, work: Path, updates: list[dict], concurrency: int,
            workers: int, pin: str | None, label: str) -> Figures:
    from tests.fakes.telegram_api import FakeTelegram
    from tests.support.server import free_port
    from tests.support.workers import Server, report, server_env, wait_healthy

    residents = load(url, city)
    updates = [report(k, residents[(k * 7919) % len(residents)]) for k in range(len(updates))]
    with FakeTelegram() as tg:
        env = server_env(database_url=url, work=work, token=tg.token, api_base=tg.base_url,
                         REPLY_DEADLINE="4h", HANDLE_DEADLINE="72h", DEPARTMENT_DEADLINE="24h",
                         CONFIRM_WINDOW="72h", NAG_BEFORE="30m", SWEEP_INTERVAL="1s")
        port = free_port()
        extra = ["--workers", str(workers)] if workers > 1 else []
        log = work / f"project-{port}.log"
        proc = _popen([sys.executable, "-m", "linzhang", "serve", "--port", str(port), *extra],
                      env=env, cwd=work, log=log, pin=pin)
        server = Server(port, proc, log)
        try:
            wait_healthy(server)
            time.sleep(2 if workers > 1 else 0.5)  # every worker up, start-up jobs done
            cpu0 = cpu_seconds(proc.pid)
            elapsed, lat = _post(updates, server.base, concurrency)
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            server.stop()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        outbox = int(conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one())
    engine.dispose()
    assert outbox >= len(updates), f"{label}: {outbox} outbox rows for {len(updates)} reports"
    return _figures(label, len(updates), elapsed, lat, cpu)


def bare(url: str, work: Path, updates: list[dict], concurrency: int, pin: str | None,
         label: str) -> Figures:
    from tests.support.server import free_port
    from tests.support.workers import Server, wait_healthy

    port = free_port()
    log = work / f"bare-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = _popen([sys.executable, str(ROOT / "bench" / "bare_endpoint.py"), "--port",
                   str(port), "--db", url], env=env, cwd=work, log=log, pin=pin)
    server = Server(port, proc, log)
    try:
        wait_healthy(server)
        cpu0 = cpu_seconds(proc.pid)
        elapsed, lat = _post(updates, server.base, concurrency)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        server.stop()
    return _figures(label, len(updates), elapsed, lat, cpu)


def main() -> None:
    from tests.support.workers import report

    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--scale", default="0.002", help="city size for gen_hierarchy.py")
    ap.add_argument("--workers", default="1,2", help="PostgreSQL worker counts")
    ap.add_argument("--pin", default=None, help="taskset CPU list for every server")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="linzhang-ceiling-"))
    subprocess.run([sys.executable, str(GEN), str(work / "city"), "--scale", a.scale],
                   check=True, capture_output=True)
    blank = [report(k, 9_000_000 + k) for k in range(a.updates)]
    pairs: list[tuple[Figures, Figures]] = []
    sq = f"sqlite:///{work / 'project.db'}"
    pairs.append((project(sq, work / "city", work, blank, a.concurrency, 1, a.pin,
                          "SQLite, 1 process"),
                  bare(f"sqlite:///{work / 'bare.db'}", work, blank, a.concurrency, a.pin,
                       "bare, SQLite")))
    for workers in (int(w) for w in a.workers.split(",")):
        url, burl = fresh_pg(a.pg), fresh_pg(a.pg)
        try:
            pairs.append((project(url, work / "city", work, blank, a.concurrency, workers,
                                  a.pin, f"PostgreSQL, {workers} worker(s)"),
                          bare(burl, work, blank, a.concurrency, a.pin, "bare, PostgreSQL")))
        finally:
            drop_pg(a.pg, url)
            drop_pg(a.pg, burl)
    load1, load5, _ = os.getloadavg()
    print(f"{a.updates:,} Telegram reports per configuration, {a.concurrency} concurrent"
          f" clients over loopback HTTP; pinned to CPUs {a.pin or '(none)'}; load average"
          f" {load1:.1f} / {load5:.1f} (1 / 5 min), {os.cpu_count()} cores")
    print("| configuration | updates/s | p50 | p99 | server CPU per update |"
          " bare updates/s | bare p99 | bare CPU | project / bare |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for p, b in pairs:
        print(f"| {p.label} | {p.rate:,.0f} | {p.p50:.0f} ms | {p.p99:.0f} ms |"
              f" {p.cpu_ms:.2f} ms | {b.rate:,.0f} | {b.p99:.0f} ms | {b.cpu_ms:.2f} ms |"
              f" {p.rate / b.rate:.2f} |")


if __name__ == "__main__":
    main()
