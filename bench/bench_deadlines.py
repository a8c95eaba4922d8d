"""The deadline engine at scale: many open cases, a thousand falling due at once.

    python bench/bench_deadlines.py [--cases 1000000] [--due 1000] [--pg-cases 200000]
                                    [--engines sqlite,postgres] [--pg-url URL]
                                    [--policies plain,mixed]

For each engine: loads N open cases (bulk SQL, spread over 1,000 neighborhoods), makes `due`
of them reach their reply deadline a few seconds from now, starts the real APScheduler sweep
job (SystemClock, sweep_interval from settings) and measures how long after the due time
all of them are escalated with their messages in the outbox. Then the cost of a sweep with
nothing due. Baseline in the same run: the naive sweep that reads every open case and checks
its deadline in Python (what a scheduler without the indexed next_due_at column must do).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from apscheduler.events import EVENT_JOB_EXECUTED  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bot import notify  # noqa: E402
from core.cases.model import CASES  # noqa: E402
from core.cases.policy import CasePolicy  # noqa: E402
from core.cases.sweep import run_sweep  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.db import make_engine, migrate  # noqa: E402
from core.outbox import OUT  # noqa: E402
from core.scheduler import build_scheduler, sweep_job  # noqa: E402
from core.settings import Settings  # noqa: E402

GROUPS = 1000  # one neighborhood per group: each due case escalates to its own 组长
PG_ADMIN = os.environ.get("LINZHANG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def build_city(engine: Engine) -> list[tuple[int, int, int, int, str]]:
    """A town with one village, 10 areas, 1,000 groups and neighborhoods, each with its 组长,
    邻长 and one resident; returns (neighborhood, path, resident, 邻长) rows."""
    node = sa.table("node", sa.column("id"), sa.column("code"), sa.column("parent_id"),
                    sa.column("level"), sa.column("name"), sa.column("path"))
    person = sa.table("person", sa.column("id"), sa.column("name"), sa.column("language"))
    post = sa.table("post", sa.column("person_id"), sa.column("node_id"), sa.column("role"))
    nid = pid = 0
    nodes, people, posts = [], [], []

    def add_node(code: str, parent: int | None, level: str, path: str) -> tuple[int, str]:
        nonlocal nid
        nid += 1
        p = f"{path}{nid}/"
        nodes.append({"id": nid, "code": code, "parent_id": parent, "level": level,
                      "name": code, "path": p})
        return nid, p

    def add_person(role: str, node_id: int) -> int:
        nonlocal pid
        pid += 1
        people.append({"id": pid, "name": f"p{pid}", "language": "zh"})
        posts.append({"person_id": pid, "node_id": node_id, "role": role})
        return pid

    town, tpath = add_node("341602001", None, "town", "/")
    add_person("admin", town)
    vil, vpath = add_node("341602001001", town, "village", tpath)
    add_person("secretary", vil)
    out = []
    for a in range(10):
        area, apath = add_node(f"341602001001{a:02d}", vil, "area", vpath)
        add_person("area_leader", area)
        for g in range(GROUPS // 10):
            grp, gpath = add_node(f"341602001001{a:02d}{g:02d}", area, "group", apath)
            add_person("group_leader", grp)
            nb, npath = add_node(f"341602001001{a:02d}{g:02d}001", grp, "neighborhood", gpath)
            leader = add_person("neighbor_leader", nb)
            resident = add_person("resident", nb)
            out.append((nb, resident, leader, 0, npath))
    with engine.begin() as conn:
        conn.execute(sa.insert(node), nodes)
        conn.execute(sa.insert(person), people)
        conn.execute(sa.insert(post), posts)
        if engine.dialect.name == "postgresql":
            for t in ("node", "person", "post"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                                     f"(SELECT max(id) FROM {t}))"))
    return out


COLS = ["resident_id", "opened_by_id", "home_node_id", "node_path", "text", "state", "version",
        "holder_id", "holder_role", "holder_node_id", "first_holder_id", "first_holder_role",
        "stage", "stage_started_at", "deadline_at", "next_due_at", "nags_sent",
        "stage_renewals", "escalations", "opened_at", "updated_at", "policy", "maybe_dupes"]


# Per-category policies (`--policies mixed`): the escalations the sweep makes recompute these
# deadlines (the deployment's 4 h, working hours, working days, a clock limit of a category).
MIXED = [CasePolicy(), CasePolicy().with_limits(reply="4wh", handle="20wd"),
         CasePolicy().with_limits(reply="2wd", handle="15wd"),
         CasePolicy().with_limits(reply="2h", handle="3d")]


def case_rows(homes: list[tuple[int, int, int, int, str]], n: int, due: int, due_at: datetime,
              start: int, stop: int, policies: list[str]):
    """Rows start..stop of the N cases: the first `due` fall due at `due_at` (one per
    neighborhood), the rest later, spread over the next four hours. Each due case's first
    card named two likely duplicates in its neighbourhood (`maybe_dupes`, as a case opened in
    the app keeps them), so every escalated card checks them and offers their merge buttons."""
    for i in range(start, stop):
        nb, resident, leader, _, path = homes[i % len(homes)]
        if i < due:
            deadline = due_at
            next_due = due_at
        else:
            next_due = due_at + timedelta(seconds=600 + (i * 7919) % 14000)
            deadline = next_due + timedelta(minutes=30)
        opened = deadline - timedelta(hours=4)
        yield (resident, resident, nb, path, f"问题{i}", "open", 1, leader, "neighbor_leader",
               nb, leader, "neighbor_leader", "reply", opened, deadline, next_due, 2, 0, 0,
               opened, opened, policies[i % len(policies)],
               f"{i + 1 + len(homes)},{i + 1 + 2 * len(homes)}" if i < due else "")


def load_cases(engine: Engine, homes, n: int, due: int, due_at: datetime,
               mode: str = "mixed") -> float:
    import json

    pj = [json.dumps(CasePolicy.from_json(p.to_json()).to_json())
          for p in (MIXED if mode == "mixed" else [CasePolicy()])]
    t = time.perf_counter()
    chunk = 50_000
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "sqlite":
            fmt = "%Y-%m-%d %H:%M:%S.%f"
            sql = (f"INSERT INTO cases ({', '.join(COLS)}) VALUES "
                   f"({', '.join('?' for _ in COLS)})")
            cur.execute("BEGIN")
            for s in range(0, n, chunk):
                rows = [tuple(v.strftime(fmt) if isinstance(v, datetime) else v for v in r)
                        for r in case_rows(homes, n, due, due_at, s, min(n, s + chunk), pj)]
                cur.executemany(sql, rows)
            cur.execute("COMMIT")
        else:
            with cur.copy(f"COPY cases ({', '.join(COLS)}) FROM STDIN") as copy:
                for row in case_rows(homes, n, due, due_at, 0, n, pj):
                    copy.write_row(row)
            raw.commit()
            cur.execute("ANALYZE cases")
            raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t


def followers(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO case_follower (case_id, person_id) SELECT id, resident_id FROM cases"))


def measure(engine: Engine, label: str, n: int, due: int, lead: float,
            mode: str = "mixed") -> dict[str, float]:
    notify.install()  # the sweep's events reach the notifier, as in the real app
    homes = build_city(engine)
    clock = SystemClock()
    due_at = clock.now() + timedelta(days=1)  # placeholder, moved below once loading is done
    load_s = load_cases(engine, homes, n, due, due_at, mode)
    followers(engine)
    print(f"[{label}] loaded {n:,} open cases ({mode} policies) in {load_s:.1f}s", flush=True)

    # Empty sweeps: nothing due now.
    empty = []
    for _ in range(300):
        t = time.perf_counter()
        r = run_sweep(engine, clock=clock)
        empty.append((time.perf_counter() - t) * 1000)
        assert r.claimed == 0
    empty.sort()

    # Baseline: read every open case and check its deadline in Python.
    t = time.perf_counter()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(CASES.c.id, CASES.c.deadline_at).where(
            CASES.c.state.in_(["open", "accepted"]))).all()
    now_naive = clock.now().replace(tzinfo=None)
    overdue = [r.id for r in rows if (r.deadline_at.replace(tzinfo=None) if r.deadline_at.tzinfo
                                      else r.deadline_at) <= now_naive]
    naive_ms = (time.perf_counter() - t) * 1000
    assert not overdue

    # Move the due cases to fall due `lead` seconds from now, then run the real scheduler.
    due_at = clock.now() + timedelta(seconds=lead)
    with engine.begin() as conn:
        conn.execute(sa.update(CASES).where(CASES.c.id <= due).values(
            deadline_at=due_at, next_due_at=due_at,
            stage_started_at=due_at - timedelta(hours=4)))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    sched = build_scheduler(engine=engine, clock=clock, settings=settings)
    job = sweep_job(sched)
    finished = threading.Event()
    done: list[datetime] = []

    def check(_event: object) -> None:
        # After each sweep run: are all the due cases' messages in the outbox?
        with engine.connect() as conn:
            got = conn.execute(sa.select(sa.func.count()).select_from(OUT).where(
                OUT.c.kind == "new_case")).scalar_one()
        if got >= due and not finished.is_set():
            done.append(datetime.now(UTC))
            finished.set()

    sched.add_listener(check, EVENT_JOB_EXECUTED)
    sched.start()
    try:
        finished.wait(timeout=lead + 60)
    finally:
        sched.shutdown(wait=True)
    assert done, "the due cases were not all handled within a minute"
    done_at = done[0]
    latency = (done_at - due_at).total_seconds()
    with engine.connect() as conn:
        msgs = conn.execute(sa.select(sa.func.count()).select_from(OUT)).scalar_one()
    return {"load_s": load_s, "empty_p50_ms": statistics.median(empty),
            "empty_p99_ms": empty[int(len(empty) * 0.99) - 1], "naive_scan_ms": naive_ms,
            "latency_s": latency, "outbox_rows": msgs, "sweep_runs": job.runs,
            "escalated": job.totals.escalated}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def during_rebuild(engine: Engine, *, clients: int = 4, baseline: int = 200,
                   cap: int = 3000, apart: bool = True) -> dict[str, float]:
    """Residents' reports through the inbound path (bot.dispatch.process, in-process: the
    server's scheduler thread shares the process and the writer with its webhooks), first on
    their own, then while a full rollup rebuild of the 1 M cases runs beside them (`apart`: its
    reading in a child process, as the server's job does; else in a thread of this one, as
    before, the comparison)."""
    from concurrent.futures import ThreadPoolExecutor
    from zoneinfo import ZoneInfo

    from bot.dispatch import process
    from bot.flows.types import Inbound
    from core.cases.duplicates import warm_up
    from core.rollup.apart import SMALL
    from core.rollup.refresh import refresh, request_rebuild

    warm_up()  # a server loads the word list at start
    settings = Settings(_env_file=None, media_dir=tempfile.mkdtemp())  # type: ignore[call-arg]
    clock = SystemClock()
    with engine.begin() as conn:
        residents = list(conn.execute(sa.text(
            "SELECT person_id FROM post WHERE role = 'resident' ORDER BY person_id")).scalars())
        linked = conn.execute(sa.text("SELECT count(*) FROM chat_identity")).scalar_one()
        if not linked:
            conn.execute(sa.text(
                "INSERT INTO chat_identity (person_id, platform, external_id, unreachable)"
                " VALUES (:p, 'telegram', :t, false)"),
                [{"p": p, "t": f"r{p}"} for p in residents])
    counter = iter(range(10**9))
    run = "apart" if apart else "thread"

    def post(_: int) -> float:
        n = next(counter)
        who = f"r{residents[n % len(residents)]}"
        t = time.perf_counter()
        process(engine, inbound=Inbound(
            platform="telegram", update_id=f"{run}{n}", chat_id=who, sender_id=who,
            received_at=clock.now(), text=f"楼道灯坏了{n}"), payload={"n": n}, clock=clock,
            settings=settings)
        return (time.perf_counter() - t) * 1000

    with ThreadPoolExecutor(clients) as pool:
        alone = list(pool.map(post, range(baseline)))
        request_rebuild(engine)
        rebuilt: list[float] = []

        def rebuild() -> None:
            t = time.perf_counter()
            refresh(engine, clock=clock, tz=ZoneInfo(settings.timezone),
                    apart_from=SMALL if apart else None)
            rebuilt.append(time.perf_counter() - t)

        worker = threading.Thread(target=rebuild)
        worker.start()
        during: list[float] = []
        while worker.is_alive() and len(during) < cap:
            during += pool.map(post, range(clients * 5))
        worker.join()
    return {"alone_p50": _pct(alone, 0.5), "alone_p99": _pct(alone, 0.99),
            "during_p50": _pct(during, 0.5), "during_p99": _pct(during, 0.99),
            "during_max": max(during), "during_n": len(during), "rebuild_s": rebuilt[0]}


def fresh_sqlite() -> tuple[Engine, str]:
    path = Path(tempfile.mkdtemp(prefix="linzhang-bench-")) / "bench.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return engine, str(path)


def fresh_pg(admin_url: str) -> tuple[Engine, str]:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import create_pg_database

    url = create_pg_database(admin_url)
    engine = make_engine(url)
    migrate(engine)
    return engine, url


def report(label: str, n: int, due: int, r: dict[str, float]) -> None:
    ok_latency = "OK" if r["latency_s"] <= 2 else "MISSED"
    ok_empty = "OK" if r["empty_p50_ms"] < 5 else "MISSED"
    print(f"[{label}] {n:,} open cases, {due:,} due at once:")
    print(f"  all {due:,} escalated, {int(r['outbox_rows']):,} outbox rows written; last one "
          f"{r['latency_s']:.2f}s after the due time (target ≤ 2 s: {ok_latency}); "
          f"{int(r['sweep_runs'])} sweep runs")
    print(f"  empty sweep: p50 {r['empty_p50_ms']:.2f} ms, p99 {r['empty_p99_ms']:.2f} ms "
          f"(target < 5 ms: {ok_empty})")
    print(f"  baseline, naive full scan of open cases: {r['naive_scan_ms']:.0f} ms per sweep "
          f"→ the indexed sweep is {r['naive_scan_ms'] / r['empty_p50_ms']:,.0f}× cheaper")


def arithmetic_us(policies: list[CasePolicy], n: int = 20_000) -> float:
    """Microseconds to compute one escalation's new deadline and next due time."""
    from core.cases.model import Stage
    from core.cases.policy import next_due, stage_deadline

    start = datetime(2026, 11, 23, 2, tzinfo=UTC)
    t = time.perf_counter()
    for i in range(n):
        p = policies[i % len(policies)]
        s = start + timedelta(minutes=17 * i)
        d = stage_deadline(p, Stage.reply, s)
        next_due(p, Stage.reply, start=s, deadline=d, nags_sent=0)
    return (time.perf_counter() - t) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--pg-cases", type=int, default=200_000)
    ap.add_argument("--due", type=int, default=1000)
    ap.add_argument("--lead", type=float, default=3.0, help="seconds until the due time")
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--pg-url", default=PG_ADMIN)
    ap.add_argument("--policies", default="plain,mixed",
                    help="plain: every case on the deployment's 4 h (the baseline); mixed: a "
                         "quarter each on 4 h, 4wh, 2wd and 2h category limits")
    ap.add_argument("--no-rebuild", action="store_true",
                    help="leave out the reports-during-a-rollup-rebuild measure")
    ap.add_argument("--compare-in-process", action="store_true",
                    help="also rebuild the old way (reading in a thread of the server)")
    args = ap.parse_args(argv)
    plain, mixed = arithmetic_us([CasePolicy()]), arithmetic_us(MIXED)
    print(f"deadline arithmetic per escalation: mixed category policies {mixed:.1f} µs, "
          f"baseline plain 4 h {plain:.1f} µs ({(mixed / plain - 1) * 100:+.0f} %)")
    for label, mode in [(e, m) for e in args.engines.split(",")
                        for m in args.policies.split(",")]:
        if label == "sqlite":
            engine, where = fresh_sqlite()
            n = args.cases
        else:
            engine, where = fresh_pg(args.pg_url)
            n = args.pg_cases
            if n < args.cases:
                print(f"[postgres] loading {n:,} cases instead of {args.cases:,} to keep the "
                      "run short (--pg-cases)")
        try:
            r = measure(engine, label, n, min(args.due, n), args.lead, mode)
            report(f"{label}, {mode} policies", n, min(args.due, n), r)
            ways = [True, False] if args.compare_in_process else [True]
            for apart in ways if mode == args.policies.split(",")[0] and not args.no_rebuild \
                    else []:
                st = during_rebuild(engine, apart=apart)
                ok = "OK" if st["during_p99"] < 250 else "MISSED"
                how = "read in a child process" if apart else "BEFORE: read in a thread"
                print(f"  reports during a full rollup rebuild ({how}, {st['rebuild_s']:.1f} s, "
                      f"{int(st['during_n'])} reports, 4 clients): p50 {st['during_p50']:.0f} ms,"
                      f" p99 {st['during_p99']:.0f} ms (target < 250 ms: {ok}), max "
                      f"{st['during_max']:.0f} ms; baseline without the rebuild, same run: "
                      f"p50 {st['alone_p50']:.0f} ms, p99 {st['alone_p99']:.0f} ms", flush=True)
        finally:
            engine.dispose()
            if label != "sqlite":
                from tests.conftest import drop_pg_database

                drop_pg_database(args.pg_url, where)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
