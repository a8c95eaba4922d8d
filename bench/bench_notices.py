"""Notices (通知): fan-out to every 邻长 of a synthetic city, delivery through the fake Bot API,
and 收到 presses through the webhook.

    python bench/bench_notices.py [--scale 1.0] [--deliver 3000] [--presses 10000]
                                  [--reports 2000] [--no-pg] [--pg-url URL]

1. Fan-out: a city from shared/tools/gen_hierarchy.py (--scale 1 is Bozhou: 107,555 邻长) is
   imported into SQLite and PostgreSQL; a notice with 收到 goes to the 邻长 of each district
   (the tree has no node above its districts), each through `core.notices.services.send`
   (recipient rows, the event, the notifier's outbox rows, one transaction per notice).
   Reported: rows and seconds against the floor (60 s SQLite, 30 s PostgreSQL), and in the
   same run a baseline: a bare executemany of as many rows into a plain table.
2. Delivery: the first --deliver rows of that outbox (the rest set aside) drained by the
   Telegram sender over HTTP into the fake Bot API with its real limits: msgs/s, the ratio to
   the 30/s floor, 429s (target 0), and the peak RSS of this process.
3. Presses: --presses 收到 presses as callback queries posted to `POST /webhooks/telegram`
   by 8 concurrent clients (SQLite): p50/p99 and the confirmations counted (none lost),
   beside the plain report path (--reports text messages from residents) in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GEN = ROOT.parent / "shared" / "tools" / "gen_hierarchy.py"
if not GEN.exists():
    GEN = Path("/work/shared/tools/gen_hierarchy.py")
SECRET = "bench-secret"
FLOOR = {"sqlite": 60.0, "postgresql": 30.0}
CAP = 30.0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fan_out(engine: Any) -> tuple[int, float, list[int]]:
    """One notice per district to its 邻长; (outbox rows, seconds, notice ids)."""
    import sqlalchemy as sa

    from core.cases.policy import CasePolicy
    from core.clock import SystemClock
    from core.db import write_session
    from core.hierarchy.queries import roots
    from core.notices import services

    now = SystemClock().now()
    with write_session(engine) as s:
        districts = [n for n in roots(s)]
    t = time.perf_counter()
    ids = []
    for d in districts:
        with write_session(engine) as s:
            sent = services.send(s, who=None, node=d, audience=["neighbor_leader"],
                                 text="明天上午8点起开展全员核酸检测，请通知到户到人。",
                                 confirm=True, deadline=now + timedelta(hours=24), now=now,
                                 reping=timedelta(hours=4), policy=CasePolicy())
            ids.append(sent.notice_id)
    elapsed = time.perf_counter() - t
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE kind = 'notice'")
                            ).scalar_one()
    return int(rows), elapsed, ids


def baseline_insert(engine: Any, n: int) -> float:
    """A bare executemany of `n` rows of the outbox's width into a plain table."""
    import sqlalchemy as sa

    now = datetime.now(UTC)
    rows = [{"p": i, "t": "明天上午8点起开展全员核酸检测，请通知到户到人。", "k": f"b{i}",
             "at": now} for i in range(n)]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE bench_plain (p INTEGER, t TEXT, k VARCHAR(200)"
                             " UNIQUE, at TIMESTAMP)"))
    t = time.perf_counter()
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(sa.text("INSERT INTO bench_plain VALUES (:p, :t, :k, :at)"),
                         rows[i:i + 5000])
    elapsed = time.perf_counter() - t
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE bench_plain"))
    return elapsed


def load_city(url: str, city: Path) -> Any:
    from core.db import make_engine, migrate
    from core.hierarchy.importer import import_files

    engine = make_engine(url)
    migrate(engine)
    t = time.perf_counter()
    import_files(engine, sorted(city.glob("*.csv")))
    print(f"  import into {engine.dialect.name}: {time.perf_counter() - t:.1f} s")
    return engine


def run_fan_out(engine: Any) -> tuple[int, list[int]]:
    rows, elapsed, ids = fan_out(engine)
    base = baseline_insert(engine, rows)
    dialect = engine.dialect.name
    floor = FLOOR[dialect]
    print(f"| fan-out {dialect} | {rows:,} outbox rows | {elapsed:.1f} s | floor {floor:.0f} s"
          f" | {'OK' if elapsed < floor else 'OVER'} | baseline bare executemany"
          f" {base:.1f} s ({elapsed / max(base, 1e-9):.1f}×) |")
    from core.db import session_scope
    from core.notices import services

    with session_scope(engine) as s:
        t = time.perf_counter()
        st = services.status(s, notice_id=ids[0], viewer_scopes=None)
        took = time.perf_counter() - t
    print(f"| receipts of one district's notice ({dialect}) | {st.totals.recipients:,}"
          f" recipients, {len(st.children)} towns | {took * 1e3:.0f} ms | - | - | - |")
    return rows, ids


async def drain(engine: Any, tg: Any) -> float:
    from bot.handlers.telegram.api import TelegramApi
    from bot.handlers.telegram.transport import telegram_dispatcher
    from core.settings import Settings

    st = Settings(_env_file=None)  # type: ignore[call-arg]
    async with TelegramApi(token=tg.token, base=tg.base_url) as api:
        sender = telegram_dispatcher(engine=engine, api=api, settings=st,  # type: ignore[arg-type]
                                     batch=200, max_held=2000, idle=0.05)
        t = time.perf_counter()
        await sender.drain()
        return time.perf_counter() - t


def run_delivery(engine: Any, n: int) -> None:
    import sqlalchemy as sa

    from tests.fakes.telegram_api import FakeTelegram

    with engine.begin() as conn:
        keep = conn.execute(sa.text("SELECT id FROM outbox WHERE kind = 'notice' ORDER BY id"
                                    " LIMIT 1 OFFSET :n"), {"n": n}).scalar_one_or_none()
        if keep is not None:  # set the rest aside: the subset is what is timed
            conn.execute(sa.text("UPDATE outbox SET status = 'sent' WHERE id >= :k"),
                         {"k": keep})
    with FakeTelegram() as tg:
        elapsed = asyncio.run(drain(engine, tg))
        sent = len(tg.sent)
        rate = sent / elapsed
        print(f"| delivery (fake Bot API) | {sent:,} messages | {elapsed:.1f} s | {rate:.2f} msg/s"
              f" = {rate / CAP:.1%} of the 30/s floor (target ≥ 90%) | 429s:"
              f" {len(tg.too_many)} (target 0) | peak RSS {rss_mib():.0f} MiB |")


def callback(uid: int, nid: int, k: int) -> dict[str, Any]:
    return {"update_id": 500000 + k, "callback_query": {
        "id": f"q{k}", "from": {"id": uid, "is_bot": False, "first_name": "邻长"},
        "chat_instance": "ci", "data": f"no:{nid}:0",
        "message": {"message_id": k + 1, "date": 1700000000, "text": "【通知】",
                    "chat": {"id": uid, "type": "private", "first_name": "邻长"}}}}


def report(uid: int, k: int) -> dict[str, Any]:
    return {"update_id": 900000 + k, "message": {
        "message_id": k + 1, "date": 1700000000, "text": "楼道灯坏了",
        "chat": {"id": uid, "type": "private", "first_name": "居民"},
        "from": {"id": uid, "is_bot": False, "first_name": "居民"}}}


async def post_all(base: str, ups: list[dict[str, Any]], concurrency: int) -> list[float]:
    import httpx

    lat: list[float] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for u in ups:
        queue.put_nowait(u)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            u = queue.get_nowait()
            t = time.perf_counter()
            r = await client.post(f"{base}/webhooks/telegram", json=u,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            r.raise_for_status()
            lat.append(time.perf_counter() - t)

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return lat


def run_presses(db: Path, engine: Any, notice_ids: list[int], presses: int,
                reports: int) -> None:
    import sqlalchemy as sa
    from pydantic import SecretStr

    from core.settings import Settings
    from tests.support.server import serve
    from webhooks.app import create_app

    with engine.connect() as conn:
        who = conn.execute(sa.text(
            "SELECT r.notice_id, CAST(i.external_id AS INTEGER) FROM notice_recipient r"
            " JOIN chat_identity i ON i.person_id = r.person_id AND i.platform = 'telegram'"
            " ORDER BY r.id LIMIT :n"), {"n": presses}).all()
        residents = [int(x) for x in conn.execute(sa.text(
            "SELECT i.external_id FROM chat_identity i JOIN post x ON x.person_id = i.person_id"
            " WHERE i.platform = 'telegram' AND x.role = 'resident' LIMIT :n"),
            {"n": reports}).scalars()]
    presses_ups = [callback(uid, nid, k) for k, (nid, uid) in enumerate(who)]
    report_ups = [report(uid, k) for k, uid in enumerate(residents)]
    settings = Settings(_env_file=None, database_url=f"sqlite:///{db}",  # type: ignore[call-arg]
                        telegram_webhook_secret=SecretStr(SECRET),
                        media_dir=str(db.parent / "media"))
    with serve(create_app(settings, run_jobs=False)) as base:
        t = time.perf_counter()
        lat_p = asyncio.run(post_all(base, presses_ups, 8))
        press_s = time.perf_counter() - t
        t = time.perf_counter()
        lat_r = asyncio.run(post_all(base, report_ups, 8))
        report_s = time.perf_counter() - t
    with engine.connect() as conn:
        confirmed = conn.execute(sa.text("SELECT count(confirmed_at) FROM notice_recipient")
                                 ).scalar_one()
    for name, lat, n, s in (("收到 presses (webhook → confirm)", lat_p, len(presses_ups),
                             press_s),
                            ("baseline: plain reports (webhook → case)", lat_r,
                             len(report_ups), report_s)):
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
        print(f"| {name} | {n:,} | {n / s:,.0f}/s | p50 {q[49] * 1e3:.1f} ms |"
              f" p99 {q[98] * 1e3:.1f} ms (target < 500 ms) |")
    print(f"confirmations counted: {confirmed:,} of {len(presses_ups):,} presses"
          f" ({'none lost' if confirmed == len(presses_ups) else 'LOST SOME'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--deliver", type=int, default=3000)
    ap.add_argument("--presses", type=int, default=10_000)
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--pg-only", action="store_true", help="only the PostgreSQL fan-out")
    ap.add_argument("--pg-url", default=os.environ.get(
        "LINZHANG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    a = ap.parse_args()
    from bot import notify

    notify.install()
    work = Path(tempfile.mkdtemp(prefix="linzhang-notices-"))
    subprocess.run([sys.executable, str(GEN), str(work / "city"), "--scale", str(a.scale)],
                   check=True, capture_output=True)
    print(f"scale {a.scale} (1 = Bozhou, 107,555 邻长); city in {work / 'city'}")
    db = work / "bench.db"
    print("| what | size | time | figure | target | baseline |")
    print("| --- | --- | --- | --- | --- | --- |")
    if not a.pg_only:
        engine = load_city(f"sqlite:///{db}", work / "city")
        _rows, ids = run_fan_out(engine)
    if not a.no_pg:
        import sqlalchemy as sa

        name = f"linzhang_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(a.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(a.pg_url).set(database=name).render_as_string(
            hide_password=False)
        try:
            pg = load_city(url, work / "city")
            run_fan_out(pg)
            pg.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if a.pg_only:
        return
    # Presses first (the recipients' rows are all open), then the delivery subset.
    run_presses(db, engine, ids, a.presses, a.reports)
    run_delivery(engine, a.deliver)
    print(f"peak RSS of the whole run: {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
