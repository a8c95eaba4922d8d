"""A media store that cannot take files loses no report: over real HTTP, a web chat photo with an
unwritable MEDIA_DIR still files the words, marks the photo failed, says so politely, and
/healthz and /metrics report the store degraded until it takes files again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_webchat import Browser, jpeg, resident_and_leader
from tests.support.demo_city import load_demo
from tests.support.disk import block, unblock
from tests.support.server import serve
from webhooks.app import create_app


@pytest.fixture
def web(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[str, Any, Path]]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    blocker = tmp_path / "disk"
    settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                        media_dir=str(blocker / "media"), max_photo_bytes=200_000,
                        web_stream_seconds=1.0, web_keepalive_seconds=0.1)
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container, run_jobs=False)) as base:
        yield base, engine, blocker


def media_gauge(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("linzhang_media_store_up "))
    return float(line.split()[1])


def test_a_photo_on_a_broken_disk_files_the_words_and_health_says_degraded(web) -> None:  # type: ignore[no-untyped-def]
    base, engine, blocker = web
    rid, lid = resident_and_leader(engine)
    block(blocker)
    health = httpx.get(f"{base}/healthz")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "degraded" and health.json()["media"] == "degraded"
    assert media_gauge(base) == 0

    resident, leader = Browser(base, rid), Browser(base, lid)
    r = resident.send("msg-broken-1", "楼道灯坏了", photo=("a.jpg", jpeg(), "image/jpeg"))
    assert r.status_code == 200, r.text
    assert "照片暂时无法保存" in r.json()["unsaved"][0]
    with engine.connect() as conn:
        (case_id, text), = conn.execute(sa.text("SELECT id, text FROM cases")).all()
        atts = conn.execute(sa.text(
            "SELECT kind, fetch_status, stored_ref FROM case_attachment WHERE case_id = :c"),
            {"c": case_id}).all()
    assert text == "楼道灯坏了"
    assert [tuple(a) for a in atts] == [("photo", "failed", None)]
    lines = resident.events()
    polite = [m["text"] for m in lines if m["options"].get("error")]
    assert len(polite) == 1 and "不是您的原因" in polite[0] and "不会丢失" in polite[0]
    assert any(f"#{case_id}" in m["text"] for m in lines if m["dir"] == "outbound"
               and not m["options"].get("error"))
    card = next(m for m in leader.events() if m["options"].get("card"))
    assert "楼道灯坏了" in card["text"]

    # The disk takes files again: health is ok, and the next photo is kept.
    unblock(blocker)
    health = httpx.get(f"{base}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["media"] == "ok" and media_gauge(base) == 1
    r = resident.send("msg-broken-2", "", photo=("b.jpg", jpeg((80, 60)), "image/jpeg"))
    assert r.status_code == 200 and "unsaved" not in r.json()
    with engine.connect() as conn:
        statuses = conn.execute(sa.text(
            "SELECT fetch_status FROM case_attachment ORDER BY id")).scalars().all()
    assert statuses == ["failed", "stored"]
