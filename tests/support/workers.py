"""Real server processes for crash tests and the workers bench: `python -m linzhang serve`
with settings in environment variables, the demo city's people on Telegram, and clients that
post webhook updates the way Telegram does (a failed delivery is retried)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.poll import apoll, poll

ROOT = Path(__file__).resolve().parents[2]
SECRET = "crash-test-secret"
TG_BASE_ID = 8_000_000  # a person's Telegram user id is this plus the person id


def server_env(*, database_url: str, work: Path, token: str, api_base: str,
               **overrides: str) -> dict[str, str]:
    """Environment for a server process: short deadlines, no quiet hours, quick takeovers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WECHAT_",
                                                                     "WECOM_", "REDIS_"))}
    env.update({
        "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "MEDIA_DIR": str(work / "media"),
        "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE": api_base,
        "TELEGRAM_WEBHOOK_SECRET": SECRET, "REPLY_DEADLINE": "3s", "HANDLE_DEADLINE": "3s",
        "DEPARTMENT_DEADLINE": "3s", "CONFIRM_WINDOW": "30s", "NAG_BEFORE": "1s",
        "QUIET_START": "00:00", "QUIET_END": "00:00", "SWEEP_INTERVAL": "0.5s",
        "OUTBOX_LEASE": "3s", "LOG_LEVEL": "WARNING",
    })
    env.update(overrides)
    return env


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no lease given back, connections just drop."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(env: dict[str, str], port: int, work: Path, *extra: str) -> Server:
    """`python -m linzhang serve --port <port>` in `work` (no stray .env), log to a file."""
    log = work / f"server-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "linzhang", "serve", "--port", str(port), *extra],
            cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Server(port, proc, log)


def wait_healthy(server: Server, timeout: float = 60.0) -> None:
    def up() -> bool:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited: {server.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{server.base}/healthz", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    try:
        poll(up, timeout=timeout, what="the server to answer", step=0.1)
    except AssertionError:
        raise RuntimeError(f"server not up: {server.log.read_text()[-3000:]}") from None


def link_everyone(engine: Engine) -> list[int]:
    """Give every person without one a Telegram identity; the residents' Telegram ids."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO chat_identity (person_id, platform, external_id, unreachable)"
            " SELECT p.id, 'telegram', CAST(:base + p.id AS VARCHAR(32)), :no FROM person p"
            " WHERE NOT EXISTS (SELECT 1 FROM chat_identity i WHERE i.person_id = p.id"
            "                   AND i.platform = 'telegram')"), {"base": TG_BASE_ID, "no": False})
        rows = conn.execute(sa.text(
            "SELECT DISTINCT i.external_id FROM chat_identity i JOIN post x"
            " ON x.person_id = i.person_id WHERE x.role = 'resident' AND i.platform = 'telegram'"
        )).scalars().all()
    return sorted(int(r) for r in rows)


def report_text(k: int) -> str:
    return f"报告{k:05d} 楼道灯坏了"


def report(k: int, user_id: int) -> dict[str, Any]:
    """Update `k`: a resident's report whose text names it."""
    return {"update_id": 500000 + k, "message": {
        "message_id": k + 1, "date": 1700000000, "text": report_text(k),
        "chat": {"id": user_id, "type": "private", "first_name": "居民"},
        "from": {"id": user_id, "is_bot": False, "first_name": "居民", "language_code": "zh"}}}


@dataclass
class Posting:
    acked: dict[int, float] = field(default_factory=dict)  # update k → seconds to its 200
    acked_at: dict[int, float] = field(default_factory=dict)  # update k → monotonic time of 200
    failures: int = 0  # deliveries that failed and were retried (Telegram retries too)


def _accepts(base: str) -> bool:
    """Whether a server listens on `base` (a refused connect on loopback answers at once)."""
    host, port = base.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.05):
            return True
    except OSError:
        return False


async def _answering_again(base: str, alive: Callable[[str], bool]) -> None:
    """After a failed delivery, as Telegram would: try again once the server listens again
    (or is known dead, when another takes it), within a bound."""
    with contextlib.suppress(AssertionError):  # still down: the next attempt says so
        await apoll(lambda: not alive(base) or _accepts(base), timeout=10, step=0.05,
                    what=f"{base} to listen again")


async def post_updates(updates: list[dict[str, Any]], bases: list[str], *, concurrency: int,
                       on_ack: Callable[[int], None] | None = None,
                       alive: Callable[[str], bool] = lambda _b: True) -> Posting:
    """Post update k to bases[k % n]; on failure, retry on the next base (as Telegram would
    retry a webhook delivery) until a 200. `on_ack(count)` after each 200."""
    out = Posting()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for k in range(len(updates)):
        queue.put_nowait(k)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            k = queue.get_nowait()
            for attempt in range(40):
                base = bases[(k + attempt) % len(bases)]
                if not alive(base):
                    continue
                t = time.perf_counter()
                try:
                    r = await client.post(f"{base}/webhooks/telegram", json=updates[k],
                                          headers=headers)
                except httpx.HTTPError:
                    out.failures += 1
                    await _answering_again(base, alive)
                    continue
                if r.status_code == 200:
                    out.acked[k] = time.perf_counter() - t
                    out.acked_at[k] = time.monotonic()
                    if on_ack is not None:
                        on_ack(len(out.acked))
                    break
                out.failures += 1
                await _answering_again(base, alive)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(
            max_connections=concurrency * 2)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return out
