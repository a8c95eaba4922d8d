"""Inbound Telegram updates per second: our webhook → database + outbox, on SQLite, beside a
bare python-telegram-bot Application echo bot fed the same updates.

    python bench/bench_telegram_inbound.py [--updates 2000] [--concurrency 8]

Ours: real HTTP on loopback into `POST /webhooks/telegram` (secret check, JSON parse, stored
and deduplicated, the report flow opens or extends a case, replies written to the outbox,
all in one SQLite transaction) — latency per update p50/p99.
Baseline: `Application.process_update` with one MessageHandler that echoes via the Bot API
to the fake Bot API server (limits lifted), in-process with no HTTP in front: the bare
library's cost of turning an update into an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GEN = ROOT.parent / "shared" / "tools" / "gen_hierarchy.py"
if not GEN.exists():
    GEN = Path("/work/shared/tools/gen_hierarchy.py")
SECRET = "bench-secret"


def updates(tg_ids: list[str], n: int) -> list[dict[str, Any]]:
    texts = ["楼道灯坏了", "垃圾没人清", "路面有坑", "下水道堵了", "电梯不动了"]
    out = []
    for k in range(n):
        uid = int(tg_ids[k % len(tg_ids)])
        out.append({"update_id": 100000 + k, "message": {
            "message_id": k + 1, "date": 1700000000, "text": texts[k % len(texts)],
            "chat": {"id": uid, "type": "private", "first_name": "居民"},
            "from": {"id": uid, "is_bot": False, "first_name": "居民"}}})
    return out


async def ours(ups: list[dict[str, Any]], db: Path, concurrency: int) -> tuple[float, list[float]]:
    import httpx
    from pydantic import SecretStr

    from core.settings import Settings
    from tests.support.server import serve
    from webhooks.app import create_app

    settings = Settings(_env_file=None, database_url=f"sqlite:///{db}",  # type: ignore[call-arg]
                        telegram_webhook_secret=SecretStr(SECRET),
                        media_dir=str(db.parent / "media"))
    lat: list[float] = []
    with serve(create_app(settings, run_jobs=False)) as base:
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

        async with httpx.AsyncClient(timeout=60) as client:
            start = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
    return elapsed, lat


async def baseline(ups: list[dict[str, Any]]) -> float:
    from telegram import Update
    from telegram.ext import Application, MessageHandler, filters

    from tests.fakes.telegram_api import FakeLimits, FakeTelegram

    limits = FakeLimits(global_per_second=10**9, private_interval=0.0, group_per_minute=10**9)
    with FakeTelegram(limits=limits) as tg:
        app = (Application.builder().token(tg.token).base_url(tg.base_url + "/bot")
               .base_file_url(tg.base_url + "/file/bot").build())

        async def echo(update: Update, _ctx: Any) -> None:
            assert update.message is not None
            await update.message.reply_text(update.message.text or "")

        app.add_handler(MessageHandler(filters.TEXT, echo))
        async with app:
            start = time.perf_counter()
            for u in ups:
                await app.process_update(Update.de_json(u, app.bot))
            return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    import sqlalchemy as sa

    from core.db import make_engine, migrate
    from core.hierarchy.importer import import_files

    work = Path(tempfile.mkdtemp(prefix="linzhang-inbound-"))
    subprocess.run([sys.executable, str(GEN), str(work / "city"), "--scale", "0.002"],
                   check=True, capture_output=True)
    db = work / "bench.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    import_files(engine, sorted((work / "city").glob("*.csv")))
    with engine.connect() as conn:
        tg_ids = [r[0] for r in conn.execute(sa.text(
            "SELECT i.external_id FROM chat_identity i JOIN post x ON x.person_id = i.person_id"
            " WHERE i.platform = 'telegram' AND x.role = 'resident'"))]
    engine.dispose()
    ups = updates(tg_ids, a.updates)
    ours_s, lat = asyncio.run(ours(ups, db, a.concurrency))
    base_s = asyncio.run(baseline(ups))
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        cases = conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one()
        outbox = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one()
    q = statistics.quantiles(lat, n=100)
    print(f"{a.updates:,} updates from {len(tg_ids):,} residents, {a.concurrency} concurrent"
          f" clients; {cases:,} cases opened, {outbox:,} outbox rows written")
    print("| path | updates/s | p50 | p99 |")
    print("| --- | --- | --- | --- |")
    print(f"| linzhang webhook → SQLite + outbox (HTTP) | {a.updates / ours_s:,.0f} |"
          f" {q[49] * 1e3:.1f} ms | {q[98] * 1e3:.1f} ms |")
    print(f"| baseline: bare PTB Application echo (in-process, one API call) |"
          f" {a.updates / base_s:,.0f} | - | - |")
    print(f"ratio linzhang / baseline: {base_s / ours_s:.2f}")


if __name__ == "__main__":
    main()
