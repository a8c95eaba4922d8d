"""`linzhang serve` as deployed (a real process): a 400 MB body claimed or streamed at the
unauthenticated WeChat and WeCom callbacks is refused at the cap without the server's memory
growing (its peak RSS, read from /proc), idle keep-alive connections are closed, and clients
that open connections and never finish a request cannot take more than the set number."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.poll import poll
from tests.support.rawhttp import chunked, request
from tests.support.server import free_port
from tests.support.wechat import WECOM_AES_KEY, WECOM_CORP_ID, WECOM_TOKEN
from tests.support.workers import ROOT, Server, start_server, wait_healthy

KEEPALIVE = 1  # HTTP_KEEPALIVE_TIMEOUT for this server (uvicorn's own default is 5)
CONCURRENCY = 6  # HTTP_LIMIT_CONCURRENCY for this server
MB = 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("limits")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "TELEGRAM_", "WECHAT_", "WECOM_", "HTTP_"))}
    env.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{work / 'limits.db'}",
                "MEDIA_DIR": str(work / "media"), "LOG_LEVEL": "WARNING",
                "WECHAT_TOKEN": "wx-token-1", "WECOM_TOKEN": WECOM_TOKEN,
                "WECOM_ENCODING_AES_KEY": WECOM_AES_KEY, "WECOM_CORP_ID": WECOM_CORP_ID,
                "WECOM_BOT_TOKEN": "bot-token", "WECOM_BOT_ENCODING_AES_KEY": WECOM_AES_KEY,
                "HTTP_KEEPALIVE_TIMEOUT": str(KEEPALIVE),
                "HTTP_LIMIT_CONCURRENCY": str(CONCURRENCY)})
    srv = start_server(env, free_port(), work)
    try:
        wait_healthy(srv)
        # The dictionary it loads beside the start would count as the bodies' memory.
        poll(lambda: httpx.get(f"{srv.base}/healthz", timeout=10).json().get("words")
             == "ready", timeout=60, what="the word-cutting dictionary loaded at start")
        yield srv
    finally:
        srv.stop()


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def stream(n_mb: int) -> Iterator[bytes]:
    piece = b"<" * MB
    for _ in range(n_mb):
        yield piece


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ["/webhooks/wechat", "/webhooks/wecom", "/webhooks/wecom/bot"])
def test_a_400_mb_body_is_refused_without_the_server_reading_it(server: Server,
                                                                path: str) -> None:
    before = peak_rss(server.proc.pid)
    # Claimed up front: answered before the body is sent (64 MB of it is offered).
    claimed = request(server.base, path, headers={"Content-Length": str(400 * MB)},
                      chunks=stream(64), timeout=15)
    assert claimed.status == 413, claimed.head[:200]
    assert claimed.sent < 32 * MB
    # Chunked, no length said: stopped at the cap.
    streamed = request(server.base, path, headers={"Transfer-Encoding": "chunked"},
                       chunks=chunked(b"<" * MB, 64), timeout=15)
    assert streamed.status == 413, streamed.head[:200]
    assert streamed.sent < 32 * MB
    grew = peak_rss(server.proc.pid) - before
    assert grew < 16 * MB, f"the server's peak memory grew by {grew // MB} MB"


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += sock.recv(65536)
        assert got.startswith(b"HTTP/1.1 ")
        start = time.monotonic()
        # Idle now: the server must hang up within its keep-alive timeout (not uvicorn's 5 s).
        while True:
            readable, _, _ = select.select([sock], [], [], KEEPALIVE + 2)
            assert readable, "the idle connection is still open"
            try:
                if sock.recv(65536) == b"":
                    break
            except ConnectionResetError:
                break
        assert time.monotonic() - start < KEEPALIVE + 2


def test_connections_that_never_finish_a_request_are_bounded(server: Server) -> None:
    hung = []
    try:
        for _ in range(CONCURRENCY):  # each sends half a request line and stops
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"POST /webhooks/wechat HTT")
            hung.append(sock)
        r = httpx.get(f"{server.base}/healthz", timeout=10)
        assert r.status_code == 503  # refused at once, not queued behind them
    finally:
        for sock in hung:
            sock.close()
    poll(lambda: httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200,
         timeout=10, what="the server to take requests again")
