"""考核 at city scale: a month of the whole city from the rollups, against the same
computation straight from the cases table.

    python bench/bench_kaohe.py [--quick] [--scale 1.0] [--cases 1000000] [--repeat 20]
                                [--db PATH [--reuse]]

Builds the city and the cases the way bench/bench_dashboard.py does (a Bozhou-size city from
/work/shared/tools/gen_hierarchy.py, N cases over the year before 2026-06-01, most closed),
then gives them the outcomes 考核 counts that the bulk load leaves out (missed deadlines,
whistled departments, reopened cases), rebuilds the rollups, and times:
- the monthly 考核 of the whole city (May 2026, each of the four districts: totals, tiers,
  town, village and department rankings, the ranked 邻长) from rollup_kaohe: p50/p99 over
  --repeat runs against the 300 ms target; BASELINE: core/kaohe/live.py, the same report
  counted from the cases (and their events) in the same run;
- the same with every 邻长 (the XLSX's read), the yearly 最美邻长 shortlist of the city, and
  /dashboard/kaohe for a district admin through real HTTP.
`--quick`: a tenth of the city and 100,000 cases.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.bench_dashboard import NOW, build_city, load_cases, person_on  # noqa: E402
from core import accounts  # noqa: E402
from core.clock import FakeClock, SystemClock  # noqa: E402
from core.container import build_container  # noqa: E402
from core.db import make_engine, migrate, session_scope  # noqa: E402
from core.hierarchy.queries import roots  # noqa: E402
from core.kaohe import live, read  # noqa: E402
from core.rollup.refresh import rebuild  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.support.server import serve  # noqa: E402
from webhooks.app import create_app  # noqa: E402

TARGET_MS = 300.0
TZ = ZoneInfo("Asia/Shanghai")
MONTH = "2026-05"
MIN_CASES = 10


def outcomes(engine: Engine) -> dict[str, int]:
    """What the bulk load leaves out: half the late first answers missed their deadline
    (超期), every 30th case went to a department, every 25th closed case was reopened once."""
    with engine.begin() as conn:
        dept = conn.execute(sa.text("SELECT min(id) FROM node WHERE level = 'department'")
                            ).scalar()
        a = conn.execute(sa.text("UPDATE cases SET missed_deadlines = 1"
                                 " WHERE first_reply_on_time = 0 AND id % 2 = 0")).rowcount
        conn.execute(sa.text("UPDATE cases SET resolved_at = closed_at WHERE state = 'closed'"))
        b = conn.execute(sa.text("UPDATE cases SET department_node_id = :d WHERE id % 30 = 0"),
                         {"d": dept}).rowcount if dept is not None else 0
        c = conn.execute(sa.text(
            "INSERT INTO case_event (case_id, at, kind, from_state, to_state, detail)"
            " SELECT id, closed_at, 'reopened', 'resolved', 'accepted', '{}' FROM cases"
            " WHERE state = 'closed' AND id % 25 = 0")).rowcount
    return {"missed": a, "department": b, "reopened": c}


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the city, 100,000 cases")
    ap.add_argument("--scale", type=float, default=None)
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--db", help="SQLite file to build (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="time on a --db built earlier")
    args = ap.parse_args()
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    n = args.cases if args.cases is not None else (100_000 if args.quick else 1_000_000)
    work = Path(tempfile.mkdtemp(prefix="bench-kaohe-"))
    db = Path(args.db) if args.db else work / "kaohe.db"
    reuse = args.reuse and db.exists()
    if not reuse:
        db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    migrate(engine)
    print(f"bench_kaohe: city scale {scale}, {n:,} cases, SQLite {db}"
          f"{' (reused)' if reuse else ''}", flush=True)
    if not reuse:
        print(f"  city imported in {build_city(engine, scale, work):.1f}s", flush=True)
        print(f"  cases loaded in {load_cases(engine, n):.1f}s; outcomes {outcomes(engine)}",
              flush=True)
        t = time.perf_counter()
        built = rebuild(engine, clock=SystemClock(), tz=TZ)
        print(f"  rollups: {built.villages:,} villages, {built.village_days:,} village-days "
              f"rebuilt in {time.perf_counter() - t:.1f}s", flush=True)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, count(*) FROM rollup_kaohe GROUP BY kind")
                            ).all()
    print("  rollup_kaohe rows: " + ", ".join(f"{k} {c:,}" for k, c in rows), flush=True)

    with session_scope(engine) as s:
        city = roots(s)
    print(f"\nmonthly 考核 of the whole city ({len(city)} districts, {MONTH}), from the rollups")

    def from_rollups(all_leaders: bool = False) -> list[read.MonthReport]:
        with session_scope(engine) as s:
            return [read.month_report(s, scope=d, month=MONTH, min_cases=MIN_CASES,
                                      all_leaders=all_leaders) for d in city]

    def from_cases() -> list[read.MonthReport]:
        with session_scope(engine) as s:
            return [live.live_report(s, scope=d, month=MONTH, tz=TZ, min_cases=MIN_CASES)
                    for d in city]

    reps = from_rollups()
    total = sum(r.total.received for r in reps)
    ranked = sum(len(r.leaders.ranked) for r in reps)
    villages = sum(len(r.villages.ranked) + len(r.villages.too_few) for r in reps)
    print(f"  {total:,} cases, {villages:,} villages, {ranked:,} 邻长 ranked "
          f"(≥ {MIN_CASES} cases), {sum(len(r.leaders.too_few) for r in reps):,} under it")
    p50, p99 = timed(from_rollups, args.repeat)
    ok = "ok  " if p99 <= TARGET_MS else "SLOW"
    print(f"  {ok} rollups (page: ranked 邻长)       p50 {p50:8.1f} ms  p99 {p99:8.1f} ms"
          f"  (target {TARGET_MS:.0f} ms)", flush=True)
    x50, x99 = timed(lambda: from_rollups(True), max(3, args.repeat // 4))
    print(f"  file rollups (XLSX: every 邻长)       p50 {x50:8.1f} ms  p99 {x99:8.1f} ms",
          flush=True)
    b50, b99 = timed(from_cases, max(3, args.repeat // 10))
    print(f"  BASELINE straight from the cases    p50 {b50:8.1f} ms  p99 {b99:8.1f} ms  "
          f"({b50 / p50:.0f}× the rollups at p50)", flush=True)
    same = [(r.total.__dict__ == x.total.__dict__) for r, x in zip(reps, from_cases(),
                                                                    strict=True)]
    print(f"  rollups and baseline agree on every district's totals: {all(same)}")

    def shortlist() -> object:
        with session_scope(engine) as s:
            return [read.shortlist(s, scope=d, year=2026, min_cases=MIN_CASES) for d in city]

    s50, s99 = timed(shortlist, max(3, args.repeat // 4))
    print(f"  yearly 最美邻长 shortlist, city      p50 {s50:8.1f} ms  p99 {s99:8.1f} ms",
          flush=True)

    clock = FakeClock(NOW)
    st = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                  media_dir=str(work / "media"), dashboard_session_ttl="30d",
                  dashboard_min_cases=MIN_CASES)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    pid, code = person_on(engine, "admin", "district")
    with serve(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        with session_scope(engine) as s:
            token = accounts.issue_login_token(s, person_id=pid, now=clock.now(),
                                               ttl=timedelta(minutes=15))
        client.get(f"/login/{token}")
        for path in ("/dashboard/kaohe", "/dashboard/kaohe/export.xlsx"):
            def get(path: str = path) -> None:
                r = client.get(path, params={"node": code, "month": MONTH})
                assert r.status_code == 200, r.text[:200]
            get()
            h50, h99 = timed(get, args.repeat)
            tag = "file" if path.endswith(".xlsx") else ("ok  " if h99 <= TARGET_MS else "SLOW")
            print(f"  {tag} HTTP {path:31} p50 {h50:8.1f} ms  p99 {h99:8.1f} ms  "
                  f"(district {code})", flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
