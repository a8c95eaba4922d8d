"""`linzhang serve` brings its schema up by itself and answers over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import sqlalchemy as sa

from core.db import current_revision, make_engine
from tests.support.poll import poll


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> httpx.Response:
    def answer() -> httpx.Response | None:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            return None

    return poll(answer, timeout=timeout, what=f"{url} to answer")


def test_serve_migrates_and_answers_health(tmp_path: Path) -> None:
    db = tmp_path / "srv.db"
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "PORT": str(port)}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "linzhang", "serve"], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        r = wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert r.status_code == 200
        assert r.json()["status"] == "ok"
        engine = make_engine(f"sqlite:///{db}")
        assert current_revision(engine) is not None
        assert "node" in sa.inspect(engine).get_table_names()
        engine.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
