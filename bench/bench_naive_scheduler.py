"""One sweep job over indexed deadlines vs. the naive design: one APScheduler job per case.

    python bench/bench_naive_scheduler.py [--cases 100000]

Naive baseline: a BackgroundScheduler with a MemoryJobStore holding one DateTrigger job per
open case (its next deadline). Ours: the same cases as rows with an indexed next_due_at in
SQLite, and one interval job. Both in this run, side by side: Python heap held (tracemalloc),
process RSS growth, the time to set up, the time to find what is due, and what a restart
costs (the naive store is in memory, so every job has to be rebuilt from somewhere).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from apscheduler.jobstores.memory import MemoryJobStore  # noqa: E402
from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402

from core.cases.sweep import due_backlog  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.db import make_engine, migrate  # noqa: E402
from core.scheduler import build_scheduler  # noqa: E402
from core.settings import Settings  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def handle_case(case_id: int) -> None:
    """What a per-case job would run at its deadline."""


def naive(n: int) -> dict[str, float]:
    gc.collect()
    rss0 = rss_mib()
    tracemalloc.start()
    t = time.perf_counter()
    sched = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone="UTC")
    sched.start(paused=True)  # jobs go into the store, nothing fires during the bench
    base = datetime.now(UTC) + timedelta(hours=1)
    for i in range(n):
        sched.add_job(handle_case, "date", run_date=base + timedelta(seconds=i % 14400),
                      args=[i], id=f"case-{i}", misfire_grace_time=None)
    setup = time.perf_counter() - t
    heap = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    rss = rss_mib() - rss0
    t = time.perf_counter()
    due = [j for j in sched.get_jobs() if j.next_run_time <= base + timedelta(seconds=60)]
    find = time.perf_counter() - t
    sched.shutdown(wait=False)
    return {"setup_s": setup, "heap_mib": heap, "rss_mib": rss, "find_due_ms": find * 1000,
            "due": len(due), "restart_s": setup}


def ours(n: int) -> dict[str, float]:
    from bench_deadlines import build_city, followers, load_cases

    path = Path(tempfile.mkdtemp(prefix="linzhang-naive-")) / "bench.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    homes = build_city(engine)
    base = datetime.now(UTC) + timedelta(hours=1)
    gc.collect()
    rss0 = rss_mib()
    tracemalloc.start()
    t = time.perf_counter()
    load_cases(engine, homes, n, 0, base)
    followers(engine)
    sched = build_scheduler(engine=engine, clock=SystemClock(),
                            settings=Settings(_env_file=None))  # type: ignore[call-arg]
    sched.start(paused=True)
    setup = time.perf_counter() - t
    heap = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    rss = rss_mib() - rss0
    from sqlmodel import Session

    t = time.perf_counter()
    with Session(engine) as s:
        due = due_backlog(s, now=base + timedelta(seconds=600 + 60))
    find = time.perf_counter() - t
    # A restart: a new engine and scheduler; the deadlines are already in the database.
    t = time.perf_counter()
    sched.shutdown(wait=False)
    engine.dispose()
    engine = make_engine(f"sqlite:///{path}")
    sched = build_scheduler(engine=engine, clock=SystemClock(),
                            settings=Settings(_env_file=None))  # type: ignore[call-arg]
    restart = time.perf_counter() - t
    engine.dispose()
    return {"setup_s": setup, "heap_mib": heap, "rss_mib": rss, "find_due_ms": find * 1000,
            "due": due, "restart_s": restart, "db_mib": path.stat().st_size / 2**20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    args = ap.parse_args(argv)
    n = args.cases
    a = naive(n)
    b = ours(n)
    print(f"{n:,} open cases                naive: 1 APScheduler job/case | ours: 1 sweep job")
    print(f"  Python heap held            {a['heap_mib']:10.1f} MiB            | "
          f"{b['heap_mib']:8.1f} MiB   (ratio {a['heap_mib'] / max(b['heap_mib'], 1e-3):,.0f}×)")
    print(f"  process RSS growth          {a['rss_mib']:10.1f} MiB            | "
          f"{b['rss_mib']:8.1f} MiB   (cases live in a {b['db_mib']:.0f} MiB SQLite file)")
    print(f"  set up                      {a['setup_s']:10.2f} s              | "
          f"{b['setup_s']:8.2f} s     (ratio {a['setup_s'] / b['setup_s']:.1f}×; ours includes "
          "writing the rows)")
    print(f"  find what is due            {a['find_due_ms']:10.1f} ms             | "
          f"{b['find_due_ms']:8.2f} ms    (ratio {a['find_due_ms'] / b['find_due_ms']:,.0f}×)")
    print(f"  restart                     {a['restart_s']:10.2f} s (rebuild all) | "
          f"{b['restart_s']:8.3f} s     (ratio {a['restart_s'] / b['restart_s']:,.0f}×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
