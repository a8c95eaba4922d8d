"""In headless Chromium: a resident reports with a photo, the 邻长 (another browser context)
sees the card and answers, and the answer appears on the resident's page without a reload."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

CHROMIUM = os.environ.get("LINZHANG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.environ.get("CI") or os.environ.get("LINZHANG_REQUIRE_POSTGRES"):
        pytest.fail(f"no Chromium at {CHROMIUM}: CI must install Debian's chromium package")
    pytest.skip("browser tests skipped: no Chromium found (apt-get install chromium)")


def test_resident_reports_with_photo_and_sees_answer(tmp_path: Path, clock: FakeClock) -> None:
    exe = _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    rid = holder_of(engine, "resident", LIN1).person_id
    lid = holder_of(engine, "neighbor_leader", LIN1).person_id
    photo = tmp_path / "lamp.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (120, 90), (250, 200, 0)).save(buf, "JPEG")
    photo.write_bytes(buf.getvalue())
    settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"))
    container = build_container(settings, clock=clock, engine=engine)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(create_app(settings, container=container, run_jobs=True)) as base, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            resident = browser.new_context(viewport={"width": 420, "height": 800}).new_page()
            leader = browser.new_context(viewport={"width": 420, "height": 800}).new_page()
            resident.goto(f"{base}/chat?as={rid}")
            leader.goto(f"{base}/chat?as={lid}")
            resident.fill("#text", "楼道灯坏了，晚上看不见")
            resident.set_input_files("#photo", str(photo))
            resident.click("#send")
            resident.locator(".msg.inbound img").wait_for(timeout=10_000)
            card = leader.locator(".msg.card", has_text="楼道灯坏了")
            card.wait_for(timeout=10_000)
            leader.screenshot(path=str(ARTIFACTS / "webchat-leader-card.png"))
            card.locator("button.reply").first.click()
            leader.fill("#text", "收到，明天上午来修")
            leader.click("#send")
            resident.locator(".msg.outbound", has_text="明天上午来修").wait_for(timeout=10_000)
            resident.screenshot(path=str(ARTIFACTS / "webchat-resident-answer.png"))
        finally:
            browser.close()
