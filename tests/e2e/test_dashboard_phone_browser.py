"""The dashboard on a phone (390×844) and a desktop (1440×900) in headless Chromium: the nav
folds behind a menu button, every table turns into cards, the figures page draws its SVG
charts, and nothing breaks the page's policy. Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from tests.support.figureset import EXPECTED, PERIOD, seed
from tests.support.server import serve
from webhooks.app import create_app

TOWN = "341602001"
VILLAGE = "341602001001"


@pytest.fixture
def site(sqlite_engine: Engine, sqlite_url: str, tmp_path: Path,
         clock: FakeClock) -> Iterator[dict[str, Any]]:
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    engine = sqlite_engine
    city = build_city(engine)
    seed(engine, clock, city)
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), timezone="Asia/Shanghai",
                  dashboard_min_cases=1)
    container = build_container(st, clock=clock, engine=engine)
    refresh(engine, clock=clock, tz=container.tz)
    app = create_app(st, clock=clock, container=container, run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield {"url": url, "browser": browser, "engine": engine, "clock": clock,
                   "admin": city["town_admin"]}
        finally:
            browser.close()


def _signed_in(site: dict[str, Any], width: int, height: int) -> Any:
    page = site["browser"].new_page(viewport={"width": width, "height": height},
                                    locale="zh-CN")
    page.add_init_script(WATCH)
    with session_scope(site["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=site["admin"], now=site["clock"].now(),
                                           ttl=timedelta(minutes=15))
    page.goto(f"{site['url']}/login/{token}")
    assert page.url.endswith("/dashboard")
    return page


def _no_sideways_scroll(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


def _no_policy_violation(page: Any) -> None:
    assert page.evaluate("window.__csp") == [], page.url


def test_phone_folds_the_nav_and_shows_tables_as_cards(site: dict[str, Any]) -> None:
    page = _signed_in(site, 390, 844)
    links = page.locator("header .nav-links > a")
    button = page.locator("header label.nav-button")
    assert button.is_visible() and not links.first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone-map.png"), full_page=True)
    button.click()
    # 预警地图, 工单, 热线受理, 统计, 考核, 通知, 摸排, 类别规则: every page, on one line each.
    assert links.count() == 8
    for i in range(links.count()):
        box = links.nth(i).bounding_box()
        # A label on one line, wider than tall: never "警/地/图" stacked one per line.
        assert box is not None and box["width"] > box["height"] and box["height"] < 60
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone-menu.png"))
    _no_sideways_scroll(page, 390)

    page.goto(f"{site['url']}/dashboard/cases?node={VILLAGE}")
    assert not page.locator("table.cases thead").is_visible()
    rows = page.locator("table.cases tbody tr")
    assert rows.count() == 3
    text = page.locator('table.cases td[data-label="内容"]').first
    box = text.bounding_box()
    assert box is not None and box["width"] > 250 and box["height"] < 80
    assert page.evaluate("getComputedStyle(document.querySelector("
                         "'table.cases td'), '::before').content") == '"编号"'
    _no_sideways_scroll(page, 390)
    _no_policy_violation(page)
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone-cases.png"), full_page=True)

    for code, name in ((VILLAGE, "village"), (TOWN, "town")):
        page.goto(f"{site['url']}/dashboard/figures?node={code}&start={PERIOD['start']}"
                  f"&end={PERIOD['end']}")
        assert page.locator("svg.chart.trend").is_visible()
        assert page.locator("svg.chart.cats").is_visible()
        for table in ("tiers", "ranking", "leaders"):
            assert not page.locator(f"table.{table} thead").is_visible(), table
        tier = page.locator('table.tiers tr[data-role="neighbor_leader"] td').nth(2)
        t_box = tier.bounding_box()
        assert t_box is not None and t_box["width"] > 250
        _no_sideways_scroll(page, 390)
        _no_policy_violation(page)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-phone-figures-{name}.png"),
                        full_page=True)
    page.close()


def test_desktop_keeps_the_nav_and_tables_and_draws_the_charts(site: dict[str, Any]) -> None:
    page = _signed_in(site, 1440, 900)
    assert not page.locator("header label.nav-button").is_visible()
    assert page.locator("header .nav-links > a").nth(2).is_visible()
    page.goto(f"{site['url']}/dashboard/cases?node={VILLAGE}")
    assert page.locator("table.cases thead").is_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard-desktop-cases.png"), full_page=True)
    page.goto(f"{site['url']}/dashboard/figures?node={TOWN}&start={PERIOD['start']}"
              f"&end={PERIOD['end']}")
    assert page.locator("table.tiers thead").is_visible()
    bars = page.locator("svg.chart.trend rect.received")
    assert [bars.nth(i).get_attribute("data-value") for i in range(bars.count())] == [
        str(w[1]) for w in EXPECTED["weeks"]]
    # Drawn, not only present: the busiest week's bar is the tallest thing in the chart.
    heights = [bars.nth(i).bounding_box()["height"] for i in range(bars.count())]
    assert heights[0] > heights[1] > 0
    _no_sideways_scroll(page, 1440)
    _no_policy_violation(page)
    page.screenshot(path=str(ARTIFACTS / "dashboard-desktop-figures.png"), full_page=True)
    page.close()
