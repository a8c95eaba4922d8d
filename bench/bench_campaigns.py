"""Campaigns at city scale: starting one over a Bozhou-size city, and the district board while
邻长 mark households.

    python bench/bench_campaigns.py [--scale 1.0] [--repeat 200] [--marks-per-s 50]
                                    [--db PATH [--reuse]]

Builds a synthetic city (/work/shared/tools/gen_hierarchy.py OUT --scale S; S=1 is Bozhou:
107,555 邻, about ten households each), imports it into SQLite, then:

1. starts a campaign on every district (the whole city, one transaction), households from
   the residents' addresses with INSERT … SELECT, the per-node counters, and the notifier's
   message to every 邻长 in the outbox; printed against the 60 s floor. Baseline in the same
   run: the same households written as one ORM object per row, for one town, extrapolated to
   the city by households.
2. times GET /api/campaigns/{id}/progress?node=<district> through real HTTP (the real app on
   loopback, a signed-in district admin) while a writer thread marks random households, each
   mark its own transaction; p50 / p99 against the 300 ms floor. Baseline in the same run: the
   same numbers counted from the items (GROUP BY over the district's households).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bot import notify  # noqa: E402
from core import accounts  # noqa: E402
from core.campaigns import marking  # noqa: E402
from core.campaigns.model import CampaignItem  # noqa: E402
from core.campaigns.services import start_campaign  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.container import build_container  # noqa: E402
from core.db import make_engine, migrate, session_scope, write_session  # noqa: E402
from core.hierarchy.importer import import_files  # noqa: E402
from core.hierarchy.tree import subtree_bounds  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.support.server import serve  # noqa: E402
from webhooks.app import create_app  # noqa: E402

GEN = Path("/work/shared/tools/gen_hierarchy.py")
CREATE_FLOOR_S = 60.0
BOARD_FLOOR_MS = 300.0


def build_city(engine: Engine, scale: float, work: Path) -> float:
    out = work / f"city-{scale}"
    if not (out / "nodes.csv").exists():
        subprocess.run([sys.executable, str(GEN), str(out), "--scale", str(scale)], check=True,
                       capture_output=True)
    t = time.perf_counter()
    import_files(engine, sorted(out.glob("*.csv")))
    return time.perf_counter() - t


def districts(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(sa.text(
            "SELECT id, code, path FROM node WHERE level = 'district' ORDER BY id"))]


def create(engine: Engine, clock: SystemClock) -> tuple[float, list[int], int, int]:
    """Seconds to start one campaign per district; ids, households, outbox rows."""
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT COUNT(*) FROM outbox")).scalar_one()
    t = time.perf_counter()
    ids = []
    with write_session(engine) as s:
        for node_id, _, _ in districts(engine):
            c = start_campaign(s, node_id=node_id, title="敲门行动", instructions="逐户核对",
                               outcomes=None, deadline=clock.now() + timedelta(days=3),
                               started_by=None, clock=clock)
            assert c.id is not None
            ids.append(c.id)
    took = time.perf_counter() - t
    with engine.connect() as conn:
        items = conn.execute(sa.text("SELECT COUNT(*) FROM campaign_item")).scalar_one()
        rows = conn.execute(sa.text("SELECT COUNT(*) FROM outbox")).scalar_one() - before
    return took, ids, int(items), int(rows)


def orm_baseline(engine: Engine, campaign_id: int) -> tuple[float, int]:
    """One town's households as ORM objects, one per row (rolled back): seconds, rows."""
    with engine.connect() as conn:
        town = conn.execute(sa.text("SELECT path FROM node WHERE level = 'town' ORDER BY id"
                                    " LIMIT 1")).scalar_one()
    low, high = subtree_bounds(town)
    with write_session(engine) as s:
        t = time.perf_counter()
        rows = s.execute(sa.text(
            "SELECT DISTINCT x.node_id, x.address FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE n.path >= :l AND n.path < :h AND x.role = 'resident'"
            " AND x.address IS NOT NULL"), {"l": low, "h": high}).all()
        for node_id, address in rows:
            s.add(CampaignItem(campaign_id=campaign_id, node_id=node_id,
                               address=address + "#orm"))
            s.flush()  # what a service that writes and reads back each object does
        took = time.perf_counter() - t
        s.rollback()
    return took, len(rows)


def statement_times(engine: Engine) -> dict[str, float]:
    """Seconds per kind of SQL statement (its first words) while the start runs."""
    spent: dict[str, float] = {"__on__": 1.0}

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        conn.info["t0"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        if "__on__" not in spent:
            return
        words = " ".join(statement.split()[:3])
        if "campaign_count" in statement and words.startswith("INSERT"):
            words = "INSERT campaign_count"
        spent[words] = spent.get(words, 0.0) + time.perf_counter() - conn.info.pop("t0")

    return spent


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


def board_under_marks(engine: Engine, settings: Settings, clock: SystemClock, campaign_id: int,
                      district_code: str, district_path: str, repeat: int,
                      marks_per_s: float) -> tuple[list[float], int, list[float]]:
    with engine.connect() as conn:
        admin = conn.execute(sa.text(
            "SELECT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE x.role = 'admin' AND n.code = :c LIMIT 1"), {"c": district_code}).scalar()
        items = [tuple(r) for r in conn.execute(sa.text(
            "SELECT i.id, x.person_id FROM campaign_item i JOIN post x ON x.node_id = i.node_id"
            " AND x.role = 'neighbor_leader' WHERE i.campaign_id = :c"), {"c": campaign_id})]
    if admin is None:
        with engine.connect() as conn:
            admin = conn.execute(sa.text("SELECT x.person_id FROM post x WHERE x.role = 'admin'"
                                         " ORDER BY x.id LIMIT 1")).scalar()
    stop = threading.Event()
    marked = [0]
    rng = random.Random(1)

    def writer() -> None:
        while not stop.is_set():
            item, leader = items[rng.randrange(len(items))]
            with write_session(engine) as s:
                marking.mark(s, item_id=item, outcome=rng.randrange(4), person_id=leader,
                             clock=clock)
            marked[0] += 1
            time.sleep(1.0 / marks_per_s)

    app = create_app(settings, clock=clock,
                     container=build_container(settings, clock=clock, engine=engine),
                     run_jobs=False)
    times: list[float] = []
    with serve(app) as url:
        with session_scope(engine) as s:
            token = accounts.issue_login_token(s, person_id=admin, now=clock.now(),
                                               ttl=timedelta(minutes=30))
        client = httpx.Client(base_url=url, timeout=60)
        assert client.get(f"/login/{token}").status_code == 303
        th = threading.Thread(target=writer, daemon=True)
        th.start()
        try:
            path = f"/api/campaigns/{campaign_id}/progress"
            client.get(path, params={"node": district_code}).raise_for_status()  # warm
            for _ in range(repeat):
                t = time.perf_counter()
                r = client.get(path, params={"node": district_code})
                times.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
        finally:
            stop.set()
            th.join()
            client.close()
    # Baseline: the same board counted from the items each time.
    low, high = subtree_bounds(district_path)
    live: list[float] = []
    q = sa.text(
        "SELECT t.id, COUNT(*), SUM(CASE WHEN i.outcome IS NULL THEN 0 ELSE 1 END)"
        " FROM campaign_item i JOIN node n ON n.id = i.node_id"
        " JOIN node t ON t.parent_id = :d AND n.path >= t.path"
        " AND n.path < substr(t.path, 1, length(t.path) - 1) || '0'"
        " WHERE i.campaign_id = :c GROUP BY t.id")
    with engine.connect() as conn:
        did = conn.execute(sa.text("SELECT id FROM node WHERE code = :c"),
                           {"c": district_code}).scalar()
        for _ in range(max(3, repeat // 20)):
            t = time.perf_counter()
            conn.execute(q, {"c": campaign_id, "d": did, "l": low, "h": high}).all()
            live.append((time.perf_counter() - t) * 1000)
    return times, marked[0], live


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--marks-per-s", type=float, default=50.0)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--reuse", action="store_true", help="keep an imported --db city")
    ap.add_argument("--skip-board", action="store_true", help="time the start only")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-campaigns-"))
    db = a.db or work / "city.db"
    url = f"sqlite:///{db}"
    settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                        media_dir=str(work / "media"))
    engine = make_engine(url)
    migrate(engine)
    notify.install()
    print(f"scale {a.scale} (1.0 = Bozhou: 107,555 邻, 1.2 M people); SQLite {db}")
    with engine.connect() as conn:
        have = conn.execute(sa.text("SELECT COUNT(*) FROM node")).scalar_one()
    if not (a.reuse and have):
        took = build_city(engine, a.scale, work)
        print(f"import: {took:.1f} s (setup, not a figure)")
    with engine.begin() as conn:  # a run starts from no campaign
        for t in ("campaign_event", "campaign_newcomer", "campaign_count", "campaign_item"):
            conn.execute(sa.text(f"DELETE FROM {t}"))
        conn.execute(sa.text("DELETE FROM outbox WHERE kind = 'campaign'"))
        conn.execute(sa.text("DELETE FROM campaign"))
        lins = conn.execute(sa.text("SELECT COUNT(*) FROM node WHERE level = 'neighborhood'")
                            ).scalar_one()
    clock = SystemClock()
    spent = statement_times(engine)
    took, ids, items, rows = create(engine, clock)
    spent.pop("__on__")
    top = sorted(spent.items(), key=lambda kv: -kv[1])[:4]
    rest = took - sum(spent.values())
    print("  where the start's time went (SQL by statement): " + "; ".join(
        f"{k} {v:.1f} s" for k, v in top) + f"; the rest (Python) {rest:.1f} s")
    verdict = "under" if took < CREATE_FLOOR_S else "OVER"
    print(f"start campaign over the city: {took:.1f} s for {items:,} households in {lins:,} 邻,"
          f" {rows:,} messages to 邻长 in the outbox — {verdict} the {CREATE_FLOOR_S:.0f} s floor")
    base_s, base_n = orm_baseline(engine, ids[0])
    extrapolated = base_s / max(1, base_n) * items
    print(f"baseline, one ORM object per household: {base_s:.2f} s for {base_n:,} households of"
          f" one town, ≈ {extrapolated:.0f} s for the city's {items:,}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS so far: {rss:.0f} MB")
    if a.skip_board:
        return
    _, d_code, d_path = districts(engine)[0]
    times, marked, live = board_under_marks(engine, settings, clock, ids[0], d_code, d_path,
                                            a.repeat, a.marks_per_s)
    p50, p99 = statistics.median(times), pct(times, 99)
    verdict = "under" if p99 < BOARD_FLOOR_MS else "OVER"
    print(f"district board (HTTP, {len(times)} requests while {marked} households were"
          f" marked): p50 {p50:.1f} ms, p99 {p99:.1f} ms — {verdict} the"
          f" {BOARD_FLOOR_MS:.0f} ms floor")
    print(f"baseline, the district's children counted from the items: median"
          f" {statistics.median(live):.0f} ms, max {max(live):.0f} ms")


if __name__ == "__main__":
    main()
