"""Run an ASGI app on a free loopback port in a background thread, for real-HTTP tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

from tests.support.poll import poll


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any, *, timeout: float = 20.0,
          lifespan: Literal["on", "off"] = "on", port: int | None = None) -> Iterator[str]:
    """Yield the base URL while the app serves on 127.0.0.1 (lifespan included); `port`: one
    chosen beforehand (free_port()), for an app whose settings name its own address."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    def up() -> bool:
        if not thread.is_alive():
            raise RuntimeError("the app did not start")
        return bool(server.started)

    poll(up, timeout=timeout, what="the app to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
