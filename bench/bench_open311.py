"""Open311 posts per second beside the chat report path, same run, same machine, on SQLite.

    python bench/bench_open311.py [--posts 1000] [--concurrency 8]

Open311: real HTTP on loopback into `POST /open311/v2/requests.json` (api_key check, form
parse, placement by coordinates, household address or grid code — one in twenty placed nowhere
and filed to the town office — then the case opened and routed, events and outbox rows
written, all in one SQLite transaction).
Chat: the same number of Telegram updates into `POST /webhooks/telegram`, driven as
bench_telegram_inbound.py drives them, on a copy of the same city.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_telegram_inbound import GEN, ours, updates  # noqa: E402

TEXTS = ["路灯不亮", "井盖缺失", "垃圾满溢", "占道经营", "下水道堵塞"]


def bodies(key: str, homes: list[tuple[str, float, float, str]], n: int) -> list[dict[str, str]]:
    """n form bodies over the neighborhoods: (code, lat, lon, a household address)."""
    out = []
    for k in range(n):
        code, lat, lon, address = homes[k % len(homes)]
        body = {"api_key": key, "service_code": str(1 + k % 5), "description": TEXTS[k % 5],
                "first_name": "市民", "phone": "12345"}
        if k % 20 == 19:
            body.update(lat="10.0", long="10.0")  # nowhere in the tree: the town office
        elif k % 3 == 0:
            body.update(lat=f"{lat + 0.0004:.6f}", long=f"{lon:.6f}")
        elif k % 3 == 1:
            body["address_string"] = address
        else:
            body["address_id"] = code
        out.append(body)
    return out


async def post_all(forms: list[dict[str, str]], db: Path,
                   concurrency: int) -> tuple[float, list[float]]:
    import httpx

    from core.settings import Settings
    from tests.support.server import serve
    from webhooks.app import create_app

    settings = Settings(_env_file=None, database_url=f"sqlite:///{db}",  # type: ignore[call-arg]
                        media_dir=str(db.parent / "media"))
    lat: list[float] = []
    with serve(create_app(settings, run_jobs=False)) as base:
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        for f in forms:
            queue.put_nowait(f)

        async def worker(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                f = queue.get_nowait()
                t = time.perf_counter()
                r = await client.post(f"{base}/open311/v2/requests.json", data=f)
                r.raise_for_status()
                lat.append(time.perf_counter() - t)

        async with httpx.AsyncClient(timeout=60) as client:
            start = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
    return elapsed, lat


def _city(work: Path) -> tuple[Path, str, list[tuple[str, float, float, str]], list[str]]:
    import sqlalchemy as sa

    from core.clock import SystemClock
    from core.db import make_engine, migrate, session_scope
    from core.hierarchy.importer import import_files
    from core.open311 import keys

    subprocess.run([sys.executable, str(GEN), str(work / "city"), "--scale", "0.002"],
                   check=True, capture_output=True)
    db = work / "city.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    import_files(engine, sorted((work / "city").glob("*.csv")))
    with engine.begin() as conn:
        district = conn.execute(sa.text(
            "SELECT code, path FROM node WHERE level = 'district' ORDER BY id LIMIT 1")).one()
        hoods = list(conn.execute(sa.text(
            "SELECT n.id, n.code, min(x.address) FROM node n JOIN post x ON x.node_id = n.id"
            " WHERE n.level = 'neighborhood' AND n.path LIKE :p AND x.role = 'resident'"
            " GROUP BY n.id, n.code ORDER BY n.id"), {"p": district.path + "%"}))
        homes = []
        for i, (nid, code, address) in enumerate(hoods):
            # Synthetic points 1 km apart: the import files carry none.
            lat, lon = 33.0 + (i // 100) * 0.01, 115.0 + (i % 100) * 0.01
            conn.execute(sa.text("UPDATE node SET latitude = :a, longitude = :b WHERE id = :i"),
                         {"a": lat, "b": lon, "i": nid})
            homes.append((code, lat, lon, address))
        tg_ids = [r[0] for r in conn.execute(sa.text(
            "SELECT i.external_id FROM chat_identity i JOIN post x ON x.person_id = i.person_id"
            " WHERE i.platform = 'telegram' AND x.role = 'resident'"))]
    with session_scope(engine) as s:
        key = keys.create_key(s, name="12345", scope_code=district.code, now=SystemClock().now())
    engine.dispose()
    return db, key, homes, tg_ids


def _count(db: Path, sql: str) -> Any:
    import sqlalchemy as sa

    from core.db import make_engine

    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        out = list(conn.execute(sa.text(sql)))
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="linzhang-open311-"))
    db, key, homes, tg_ids = _city(work)
    chat_db = work / "chat.db"
    shutil.copyfile(db, chat_db)
    o_s, o_lat = asyncio.run(post_all(bodies(key, homes, a.posts), db, a.concurrency))
    t_s, t_lat = asyncio.run(ours(updates(tg_ids, a.posts), chat_db, a.concurrency))
    placed = dict(_count(db, "SELECT placed_by, count(*) FROM open311_request GROUP BY 1"))
    routed = _count(db, "SELECT count(*) FROM cases WHERE holder_id IS NOT NULL")[0][0]
    chat_cases = _count(chat_db, "SELECT count(*) FROM cases")[0][0]
    print(f"{a.posts:,} Open311 posts over {len(homes):,} neighborhoods, {a.concurrency}"
          f" concurrent clients: {sum(placed.values()):,} filed, {routed:,} routed;"
          f" placed by {placed}")
    print(f"{a.posts:,} Telegram updates from {len(tg_ids):,} residents: {chat_cases:,} cases")
    print("| path | requests/s | p50 | p99 |")
    print("| --- | --- | --- | --- |")
    for name, secs, lat in (("Open311 POST requests.json → case + outbox (HTTP)", o_s, o_lat),
                            ("chat: Telegram webhook → case + outbox (HTTP)", t_s, t_lat)):
        q = statistics.quantiles(lat, n=100)
        print(f"| {name} | {a.posts / secs:,.0f} | {q[49] * 1e3:.1f} ms |"
              f" {q[98] * 1e3:.1f} ms |")
    print(f"ratio Open311 / chat: {t_s / o_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
