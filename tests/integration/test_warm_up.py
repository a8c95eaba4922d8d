"""jieba's dictionary (the duplicate check's word cutting) is loaded beside the start, in the
background: not at import time, and not inside the first resident's report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import contextlib
import sys
import jieba
from fastapi.testclient import TestClient
from core.settings import Settings
from tests.support.poll import poll
from webhooks.app import create_app

settings = Settings(_env_file=None, database_url=sys.argv[1], media_dir=sys.argv[2])
app = create_app(settings)
print("after build:", jieba.dt.initialized)
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
    # The load runs in a worker thread; /healthz says when it is done.
    with contextlib.suppress(AssertionError):
        poll(lambda: client.get("/healthz").json()["words"] == "ready", timeout=60,
             what="the dictionary")
    print("healthz:", client.get("/healthz").json()["words"])
print("after start:", jieba.dt.initialized)
"""


def test_the_dictionary_loads_when_the_server_starts_not_before(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path / 'w.db'}", str(tmp_path / "m")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "after build: False" in out.stdout and "after start: True" in out.stdout, out.stdout
    assert "healthz: ready" in out.stdout, out.stdout
