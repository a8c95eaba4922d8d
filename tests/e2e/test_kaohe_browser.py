"""The 考核 page in headless Chromium at 390 px and 1440 px: on a phone the tables turn into
cards with nothing scrolling sideways; on a desktop they stay tables. Screenshots go to
test-artifacts/ (dashboard-phone-kaohe.png, dashboard-desktop-kaohe.png)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.rollup.refresh import refresh
from core.settings import Settings
from tests.cityfactory import build_city
from tests.e2e.test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM, _chromium_or_skip
from tests.e2e.test_output_browser import WATCH
from tests.support.kaoheset import MONTH, seed
from tests.support.server import serve
from webhooks.app import create_app


@pytest.fixture
def site(sqlite_engine: Engine, sqlite_url: str, tmp_path: Path,
         clock: FakeClock) -> Iterator[dict[str, Any]]:
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    city = build_city(sqlite_engine)
    seed(sqlite_engine, clock, city)
    refresh(sqlite_engine, clock=clock, tz=ZoneInfo("Asia/Shanghai"))
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), timezone="Asia/Shanghai",
                  dashboard_min_cases=1)
    app = create_app(st, clock=clock,
                     container=build_container(st, clock=clock, engine=sqlite_engine),
                     run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield {"url": url, "browser": browser, "engine": sqlite_engine, "clock": clock,
                   "admin": city["district_admin"]}
        finally:
            browser.close()


def _open(site: dict[str, Any], width: int, height: int, path: str) -> Any:
    page = site["browser"].new_page(viewport={"width": width, "height": height},
                                    locale="zh-CN")
    page.add_init_script(WATCH)
    with session_scope(site["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=site["admin"], now=site["clock"].now(),
                                           ttl=timedelta(minutes=15))
    page.goto(f"{site['url']}/login/{token}")
    page.goto(f"{site['url']}{path}")
    return page


@pytest.mark.parametrize(("width", "height", "name"), [(390, 844, "phone"),
                                                       (1440, 900, "desktop")])
def test_the_kaohe_page_fits_phone_and_desktop(site: dict[str, Any], width: int, height: int,
                                               name: str) -> None:
    page = _open(site, width, height, f"/dashboard/kaohe?node=341602&month={MONTH}")
    assert page.locator("#k-accept").inner_text() == "60.0%"
    phone = width < 720
    for table in ("ktiers", "towns", "villages", "depts", "kleaders"):
        assert page.locator(f"table.{table} thead").is_visible() is not phone, table
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("window.__csp") == []
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-kaohe.png"), full_page=True)
    page.goto(f"{site['url']}/dashboard/kaohe/shortlist?node=341602&year=2026")
    assert page.locator("table.shortlist").first.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-zuimei.png"), full_page=True)
    page.close()
