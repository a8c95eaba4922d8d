"""Inbound Telegram updates per second with several workers: PostgreSQL with 1 and 2 worker
processes (`linzhang serve --workers N`) beside SQLite with 1, in one run.

    python bench/bench_workers.py [--updates 5000] [--concurrency 16] [--pg URL]

Each configuration gets a fresh database with the same generated city (residents on
Telegram), a real server process (`python -m linzhang serve`, settings in environment
variables, the Telegram sender pointed at the fake Bot API and running), and concurrent
clients posting residents' reports over loopback HTTP. Latency is webhook → outbox: from the
POST to its 200, which comes after the transaction that stored the update, opened or extended
the case and wrote the replies to the outbox has committed (the count of outbox rows is
checked afterwards). Default deadlines (hours), so the sweep stays out of the way.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GEN = ROOT.parent / "shared" / "tools" / "gen_hierarchy.py"
if not GEN.exists():
    GEN = Path("/work/shared/tools/gen_hierarchy.py")


def fresh_pg(admin: str) -> str:
    name = f"linzhang_bench_{uuid.uuid4().hex[:8]}"
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_pg(admin: str, url: str) -> None:
    eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(
            f'DROP DATABASE IF EXISTS "{sa.engine.make_url(url).database}" WITH (FORCE)'))
    eng.dispose()


def load(url: str, city: Path) -> list[int]:
    from core.db import make_engine, migrate
    from core.hierarchy.importer import import_files
    from tests.support.workers import link_everyone

    engine = make_engine(url)
    migrate(engine)
    import_files(engine, sorted(city.glob("*.csv")))
    ids = link_everyone(engine)
    engine.dispose()
    return ids


def run(label: str, url: str, workers: int, city: Path, work: Path, n: int,
        concurrency: int) -> tuple[str, float, float, float, int]:
    from core.db import make_engine
    from tests.fakes.telegram_api import FakeTelegram
    from tests.support.server import free_port
    from tests.support.workers import (
        post_updates,
        report,
        server_env,
        start_server,
        wait_healthy,
    )

    residents = load(url, city)
    updates = [report(k, residents[(k * 7919) % len(residents)]) for k in range(n)]
    with FakeTelegram() as tg:
        env = server_env(database_url=url, work=work, token=tg.token, api_base=tg.base_url,
                         REPLY_DEADLINE="4h", HANDLE_DEADLINE="72h", DEPARTMENT_DEADLINE="24h",
                         CONFIRM_WINDOW="72h", NAG_BEFORE="30m", SWEEP_INTERVAL="1s")
        extra = ("--workers", str(workers)) if workers > 1 else ()
        server = start_server(env, free_port(), work, *extra)
        try:
            wait_healthy(server)
            time.sleep(2 if workers > 1 else 0.5)  # every worker up and listening
            start = time.perf_counter()
            posting = asyncio.run(post_updates(updates, [server.base], concurrency=concurrency))
            elapsed = time.perf_counter() - start
        finally:
            server.stop()
    assert len(posting.acked) == n, f"{label}: {n - len(posting.acked)} updates not taken"
    engine = make_engine(url)
    with engine.connect() as conn:
        outbox = int(conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one())
    engine.dispose()
    q = statistics.quantiles(list(posting.acked.values()), n=100)
    return label, n / elapsed, q[49] * 1e3, q[98] * 1e3, outbox


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--scale", default="0.002", help="city size for gen_hierarchy.py")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="linzhang-workers-"))
    subprocess.run([sys.executable, str(GEN), str(work / "city"), "--scale", a.scale],
                   check=True, capture_output=True)
    rows = []
    rows.append(run("SQLite, 1 process", f"sqlite:///{work / 'bench.db'}", 1, work / "city",
                    work, a.updates, a.concurrency))
    for workers in (1, 2):
        url = fresh_pg(a.pg)
        try:
            rows.append(run(f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}", url,
                            workers, work / "city", work, a.updates, a.concurrency))
        finally:
            drop_pg(a.pg, url)
    print(f"{a.updates:,} Telegram reports per configuration, {a.concurrency} concurrent"
          " clients over loopback HTTP; the sender runs too (fake Bot API)")
    print("| configuration | updates/s | webhook → outbox p50 | p99 | outbox rows |")
    print("| --- | --- | --- | --- | --- |")
    for label, rate, p50, p99, outbox in rows:
        print(f"| {label} | {rate:,.0f} | {p50:.1f} ms | {p99:.1f} ms | {outbox:,} |")


if __name__ == "__main__":
    main()
