"""Fast at any age: the cost of a resident's update when the database is young and when it holds
a year of history (issue 17: 1 M open cases, 10 M events, within 1.2× of the cost at 10 k).

    python bench/bench_age.py [--engines sqlite,postgres] [--pg-url URL] [--scale 0.1]
                              [--cases 1000000] [--events 10000000] [--updates 300] [--quick]

For each engine: a fresh migrated database with a generated city (gen_hierarchy.py, imported
by the project's importer) and every resident on Telegram. YOUNG: 10,000 cases (nine in ten
closed) with ten events each, bulk-loaded with their outbox, delivery, update-log and
send-log rows; then `--updates` first reports and as many additions (the same resident again
within the append window), each through the real inbound path in-process (bot.dispatch.process
with the notifier installed), spread over that many residents with no history, the clock
moving on between them. OLD: more history bulk-loaded into the same database up to `--cases`
cases (the added ones open) and `--events` events, opened over the year before, then
ANALYZE on PostgreSQL and the same updates from as many other fresh residents. Printed: wall
time per update (p50, p90), CPU per update (process time / updates), old/young ratios against
the target ≤ 1.2×, and, for PostgreSQL at the OLD size, EXPLAIN of each distinct SELECT of a
first report and an addition, with any Seq Scan on a growing table flagged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.age_history import Home, Ids, analyze, history, load  # noqa: E402
from bot import notify  # noqa: E402
from bot.dispatch import process  # noqa: E402
from bot.flows.types import Inbound  # noqa: E402
from core.clock import FakeClock  # noqa: E402
from core.db import make_engine, migrate  # noqa: E402
from core.settings import Settings  # noqa: E402

PG_ADMIN = os.environ.get("LINZHANG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
GEN = Path("/work/shared/tools/gen_hierarchy.py")
YOUNG_CASES, YOUNG_EVENTS = 10_000, 100_000
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # the measurements start here
YEAR_AGO = NOW - timedelta(days=365)
TARGET = 1.2
# Tables that grow with the city or with its age (tests/integration/test_hot_path_plans.py).
GROWING = ("node", "person", "post", "household", "chat_identity", "chat_binding", "cases",
           "case_event", "case_follower", "case_attachment", "outbox", "delivery",
           "inbound_update", "conversation", "rollup_dirty", "away", "notice_recipient",
           "send_log")


def city(engine: Engine, scale: str, work: Path) -> list[Home]:
    """Import a generated city, give everyone a Telegram identity; the residents."""
    from core.hierarchy.importer import import_files
    from tests.support.workers import link_everyone

    out = work / f"city-{scale}"
    if not (out / "nodes.csv").exists():
        subprocess.run([sys.executable, str(GEN), str(out), "--scale", scale], check=True,
                       stdout=subprocess.DEVNULL)
    import_files(engine, sorted(out.glob("*.csv")))
    link_everyone(engine)
    with engine.connect() as conn:
        tg = dict(conn.execute(sa.text(
            "SELECT person_id, external_id FROM chat_identity WHERE platform = 'telegram'")).all())
        path = dict(conn.execute(sa.text("SELECT id, path FROM node")).all())
        posts = conn.execute(sa.text(
            "SELECT person_id, node_id, role FROM post WHERE role IN"
            " ('resident', 'neighbor_leader') ORDER BY id")).all()
    leader: dict[int, int] = {}
    for p, nid, role in posts:
        if role == "neighbor_leader":
            leader.setdefault(nid, p)
    seen: set[int] = set()
    homes = []
    for p, nid, role in posts:
        if role == "resident" and p not in seen and nid in leader:
            seen.add(p)
            lid = leader[nid]
            homes.append(Home(p, nid, path[nid], lid, tg[lid], tg[p]))
    return homes


class Capture:
    """The distinct SELECTs the updates issue (a before_cursor_execute listener)."""

    def __init__(self) -> None:
        self.selects: dict[str, Any] = {}

    def __call__(self, _c, _cur, statement, parameters, _ctx, many):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and not many:
            self.selects.setdefault(statement, parameters)


Figures = dict[str, list[float]]  # "first report"/"append" → wall ms; "cpu …" → CPU s


def updates(engine: Engine, homes: list[Home], clock: FakeClock, settings: Settings,
            into: Figures, capture: Capture | None = None) -> None:
    """A first report and an addition from each resident, timed into `into`."""
    if capture is not None:
        sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        for h in homes:
            for kind, text in (("first report", f"{h.person_id}号：楼道灯坏了三天了，晚上很黑"),
                               ("append", "而且楼梯扶手也松了，老人上下楼危险")):
                uid = f"{h.person_id}-{kind[0]}"
                inbound = Inbound(platform="telegram", update_id=uid, chat_id=h.tg,
                                  sender_id=h.tg, received_at=clock.now(), text=text)
                c0, w0 = time.process_time(), time.perf_counter()
                assert process(engine, inbound=inbound, payload={"update_id": uid},
                               clock=clock, settings=settings)
                into.setdefault(kind, []).append((time.perf_counter() - w0) * 1000)
                into.setdefault("cpu " + kind, []).append(time.process_time() - c0)
                clock.advance(timedelta(seconds=40))
            clock.advance(timedelta(minutes=11))  # out of the append window before the next
    finally:
        if capture is not None:
            sa.event.remove(engine, "before_cursor_execute", capture)


def summary(f: Figures) -> dict[str, dict[str, float]]:
    out = {}
    for kind in ("first report", "append"):
        w = sorted(f[kind])
        out[kind] = {"mean": statistics.fmean(w), "p50": statistics.median(w),
                     "p90": w[int(len(w) * 0.9) - 1], "cpu": sum(f["cpu " + kind]) / len(w) * 1000}
    return out


def explain(engine: Engine, capture: Capture) -> list[tuple[str, list[str]]]:
    """PostgreSQL's plan of each captured SELECT: (statement, its Seq Scans on growing tables,
    each with the table's row count: on a table of a few rows a scan is the planner's right
    choice, not a cost that grows)."""
    out = []
    with engine.connect() as conn:
        rows: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relkind = 'r'")).all())
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        for statement, params in capture.selects.items():
            cur.execute("EXPLAIN " + statement, params)
            scans = []
            for (line,) in cur.fetchall():
                if "Seq Scan on " in line:
                    table = line.split("Seq Scan on ")[1].split()[0]
                    if table in GROWING:
                        scans.append(f"{table} ({max(0, rows.get(table, 0)):,} rows)")
            out.append((statement, scans))
    return out


def next_ids(engine: Engine) -> Ids:
    """Ids after what is there: the updates measured in between wrote rows of their own."""
    with engine.connect() as conn:
        top = {t: conn.execute(sa.text(f"SELECT coalesce(max(id), 0) FROM {t}")).scalar_one()
               for t in ("cases", "case_event", "outbox", "delivery", "inbound_update",
                         "send_log")}
    rows = max(top[t] for t in ("outbox", "delivery", "inbound_update", "send_log"))
    return Ids(case=top["cases"] + 1, event=top["case_event"] + 1, row=rows + 1)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("cases", "case_event", "outbox", "inbound_update")}


def clone(engine: Engine, a: argparse.Namespace, work: Path) -> tuple[Engine, str]:
    """A copy of the young database, to grow old (the young one stays, for alternating)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        shutil.copyfile(work / "young.db", work / "old.db")
        return make_engine(f"sqlite:///{work / 'old.db'}"), ""
    from tests.conftest import create_pg_database

    engine.dispose()
    url = create_pg_database(a.pg_url, template=engine.url.database, prefix="linzhang_age_")
    return make_engine(url), url


def run(label: str, young_db: Engine, a: argparse.Namespace, work: Path) -> dict[str, Any]:
    notify.install()
    settings = Settings(_env_file=None, media_dir=str(work / f"media-{label}"))  # type: ignore[call-arg]
    t = time.perf_counter()
    homes = city(young_db, a.scale, work)
    print(f"[{label}] city: {len(homes):,} residents on Telegram ({time.perf_counter() - t:.0f} s)",
          flush=True)
    u = a.updates
    # The same residents write to both databases; the history is about the others.
    warm, who, rest = homes[:5], homes[5:5 + u], homes[5 + u:]
    load(young_db, history(rest, Ids(), cases=YOUNG_CASES, events=YOUNG_EVENTS, start=YEAR_AGO,
                           days=365, closed_share=0.9, after=NOW, seed=1))
    analyze(young_db)
    old_db, old_url = clone(young_db, a, work)
    try:
        t = time.perf_counter()
        n = load(old_db, history(rest, next_ids(old_db), cases=max(0, a.cases - YOUNG_CASES),
                                 events=max(0, a.events - YOUNG_EVENTS), start=YEAR_AGO,
                                 days=365, closed_share=0.0, after=NOW, seed=2))
        analyze(old_db)
        print(f"[{label}] old copy: {n['cases']:,} more open cases, {n['case_event']:,} events"
              f" ({time.perf_counter() - t:.0f} s)", flush=True)
        capture = Capture() if old_db.dialect.name == "postgresql" else None
        clocks = {"young": FakeClock(NOW), "old": FakeClock(NOW)}
        dbs = {"young": young_db, "old": old_db}
        figures: dict[str, Figures] = {"young": {}, "old": {}}
        for age in dbs:  # jieba's dictionary, caches, first plans
            updates(dbs[age], warm, clocks[age], settings, {})
        step = 25
        for r in range(0, u, step):  # alternating, so that outside load hits both alike
            for age in dbs:
                updates(dbs[age], who[r:r + step], clocks[age], settings, figures[age],
                        capture if age == "old" else None)
        sizes = {age: counts(db) for age, db in dbs.items()}
        plans = explain(old_db, capture) if capture is not None else []
    finally:
        old_db.dispose()
        if old_url:
            from tests.conftest import drop_pg_database

            drop_pg_database(a.pg_url, old_url)
    return {"young": summary(figures["young"]), "old": summary(figures["old"]),
            "sizes": sizes, "plans": plans}


def report(label: str, r: dict[str, Any]) -> None:
    for age, s in r["sizes"].items():
        print(f"[{label}] {age}: {s['cases']:,} cases, {s['case_event']:,} events, "
              f"{s['outbox']:,} outbox rows, {s['inbound_update']:,} updates logged")
    for kind in ("first report", "append"):
        y, o = r["young"][kind], r["old"][kind]
        for m, name in (("p50", "wall p50"), ("p90", "wall p90"), ("mean", "wall avg"),
                        ("cpu", "CPU avg")):
            ratio = o[m] / y[m]
            ok = "OK" if ratio <= TARGET else "MISSED"
            print(f"  {kind:12} {name:8} young {y[m]:7.2f} ms  old {o[m]:7.2f} ms  "
                  f"{ratio:.2f}× (target ≤ {TARGET}×: {ok})")
    if r["plans"]:
        bad = [(st, sc) for st, sc in r["plans"] if sc]
        print(f"  PostgreSQL plans at the old size: {len(r['plans'])} distinct SELECTs, "
              f"{len(bad)} with a Seq Scan on a growing table (ANALYZEd; row counts as the "
              "planner sees them)")
        for st, sc in bad:
            print(f"    {' '.join(st.split())[:200]}\n      → {sc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--pg-url", default=PG_ADMIN)
    ap.add_argument("--scale", default="1", help="city size for gen_hierarchy.py")
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--updates", type=int, default=300, help="of each kind, young and old")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 100,000 cases, 1,000,000 events, 60 updates, scale 0.01")
    a = ap.parse_args(argv)
    if a.quick:
        a.cases, a.events, a.updates, a.scale = 100_000, 1_000_000, 60, "0.01"
    print(f"load average at start: {os.getloadavg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="linzhang-age-"))
    for label in a.engines.split(","):
        if label == "sqlite":
            engine, where = make_engine(f"sqlite:///{work / 'young.db'}"), ""
        else:
            from tests.conftest import create_pg_database

            where = create_pg_database(a.pg_url, prefix="linzhang_age_")
            engine = make_engine(where)
        try:
            migrate(engine)
            report(label, run(label, engine, a, work))
        finally:
            engine.dispose()
            if where:
                from tests.conftest import drop_pg_database

                drop_pg_database(a.pg_url, where)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
