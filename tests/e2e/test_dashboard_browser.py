"""The dashboard in a real headless Chromium: sign in with a one-time link, watch a village turn
red on the warning map once its cases are overdue, drill down. Screenshots go to
test-artifacts/ for people to look at."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core import accounts
from core.cases import services
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.settings import Settings
from tests.casehelpers import HOUR, advance_and_sweep
from tests.support.demo_city import LIN1, TOWN, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("LINZHANG_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium_or_skip() -> None:
    if Path(CHROMIUM).exists() and shutil.which(CHROMIUM):
        return
    why = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {why}")
    pytest.skip(f"dashboard browser test did not run: {why}")


@pytest.fixture
def browser_page() -> Iterator[Any]:
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="zh-CN")
            yield page
        finally:
            browser.close()


def _open(engine: Engine, clock: FakeClock, settings: Settings, resident: int, text: str) -> None:
    with session_scope(engine) as s:
        services.open_case(s, clock=clock, settings=settings, resident_id=resident, text=text)


def test_map_turns_a_village_red_and_drills_down(sqlite_engine: Engine, sqlite_url: str,
                                                 tmp_path: Path, clock: FakeClock,
                                                 browser_page: Any) -> None:
    engine = sqlite_engine
    load_demo(engine)
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), warn_yellow_overdue=1,
                  warn_orange_overdue=2, warn_red_overdue=3, dashboard_session_ttl="7d")
    resident = holder_of(engine, "resident", LIN1)
    admin = holder_of(engine, "admin", TOWN)
    for text in ("楼道堆满杂物，有消防隐患", "路灯坏了一周", "下水道堵塞返味", "垃圾桶满了没人清",
                 "电动车在楼道充电"):
        _open(engine, clock, st, resident.person_id, text)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    with serve(app) as url:
        with session_scope(engine) as s:
            token = accounts.issue_login_token(s, person_id=admin.person_id, now=clock.now(),
                                               ttl=timedelta(minutes=15))
        page.goto(f"{url}/login/{token}")
        assert page.url.endswith("/dashboard")
        tile = page.locator(f'a.tile[data-code="{VILLAGE1}"]')
        assert tile.get_attribute("data-level") == "yellow"  # 5 open cases, none overdue yet
        page.screenshot(path=str(ARTIFACTS / "dashboard-map-before.png"), full_page=True)

        # Nobody answers for a day and a half: the sweep escalates them up to the town office;
        # then their deadline passes once more before the next pass of the sweep.
        advance_and_sweep(engine, clock, 36 * HOUR, step=HOUR)
        clock.advance(5 * HOUR)
        page.reload()
        assert tile.get_attribute("data-level") == "red"
        assert "告急" in tile.inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard-map-red.png"), full_page=True)

        tile.click()
        page.wait_for_url(f"**/dashboard?node={VILLAGE1}")
        assert page.locator("nav.crumbs a").all_inner_texts()[-1] == page.locator(
            "h1").inner_text()
        assert page.locator("a.tile").count() >= 1
        red_area = page.locator('a.tile[data-level="red"]').first
        red_area.click()
        page.wait_for_load_state()
        page.screenshot(path=str(ARTIFACTS / "dashboard-drilldown.png"), full_page=True)
        page.goto(f"{url}/dashboard/cases?node={VILLAGE1}&overdue=1")
        assert page.locator("table.cases tbody tr.late").count() == 5
        page.screenshot(path=str(ARTIFACTS / "dashboard-cases.png"), full_page=True)
        page.locator("table.cases tbody tr.late a").first.click()
        page.wait_for_load_state()
        assert "处理记录" in page.content()
        page.screenshot(path=str(ARTIFACTS / "dashboard-case.png"), full_page=True)
        page.goto(f"{url}/dashboard/figures")
        page.screenshot(path=str(ARTIFACTS / "dashboard-figures.png"), full_page=True)
