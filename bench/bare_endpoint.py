"""The ceiling the project's webhook is compared with: a bare FastAPI endpoint that parses the
update and stores it with one INSERT (SQLite in WAL mode, or PostgreSQL through psycopg, one
connection per server thread), nothing else.

    python bench/bare_endpoint.py --port P --db URL

Started as its own process by bench_inbound_ceiling.py, under uvicorn as the project is."""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool


def _store(db: str) -> Callable[[int, str], None]:
    local = threading.local()
    if db.startswith("sqlite:///"):
        path = db.removeprefix("sqlite:///")
        with sqlite3.connect(path) as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("CREATE TABLE IF NOT EXISTS inbound (update_id INTEGER PRIMARY KEY,"
                      " body TEXT NOT NULL)")

        def store(update_id: int, body: str) -> None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = sqlite3.connect(path, timeout=30)
                conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                conn.execute("INSERT OR IGNORE INTO inbound VALUES (?, ?)", (update_id, body))
        return store

    import psycopg

    dsn = db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS inbound (update_id BIGINT PRIMARY KEY,"
                  " body TEXT NOT NULL)")

    def store_pg(update_id: int, body: str) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(dsn)
        with conn.transaction():
            conn.execute("INSERT INTO inbound VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (update_id, body))
    return store_pg


def build(db: str) -> Any:
    app = FastAPI()
    store = _store(db)

    @app.post("/webhooks/telegram")
    async def webhook(request: Request) -> JSONResponse:
        raw = await request.body()
        update = json.loads(raw)
        await run_in_threadpool(store, int(update["update_id"]), raw.decode())
        return JSONResponse({"ok": True})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True)
    a = ap.parse_args()
    uvicorn.run(build(a.db), host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
