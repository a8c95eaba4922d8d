"""In headless Chromium: places and people named like markup (`<img onerror=…>`, `<script>`)
reach the map tooltip, the tiles, the case list, the case page, the figures, the web chat, the
demo switcher and the poster as plain visible text, no script of theirs runs, and no page of
ours breaks its own Content-Security-Policy (so no inline script or style is left)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.settings import Settings
from tests.e2e.test_dashboard_browser import ARGS, CHROMIUM, _chromium_or_skip, _TileServer
from tests.support.demo_city import LIN1, TOWN, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

VILLAGE2 = "341602001002"
IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=2</script>西关"
LIN_NAME = '<svg onload="window.__xss=3">3号楼'
RESIDENT = '<img src=x onerror="window.__xss=5">王阿姨'
REPORT = '<img src=x onerror="window.__xss=4">楼道灯坏了，晚上看不见'
# Runs before any script of the page, in every frame: the page's own policy violations.
WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});"""


class Watch:
    """Console errors and policy violations of every page and frame we open."""

    def __init__(self) -> None:
        self.console: list[str] = []

    def attach(self, page: Any) -> Any:
        page.on("console", lambda m: self.console.append(f"{page.url}: {m.text}")
                if m.type == "error" else None)
        return page

    def check(self, page: Any) -> None:
        """No injected script ran, and nothing broke the policy, in the page or its frames."""
        for frame in page.frames:
            assert frame.evaluate("typeof window.__xss") == "undefined", frame.url
            assert frame.evaluate("window.__csp") == [], frame.url
        assert not [c for c in self.console if "Content Security Policy" in c], self.console


def _rename(engine: Engine, resident: int) -> None:
    with engine.begin() as conn:
        for code, name in ((VILLAGE1, IMG), (VILLAGE2, SCRIPT), (LIN1, LIN_NAME)):
            conn.execute(sa.text("UPDATE node SET name = :n WHERE code = :c"),
                         {"n": name, "c": code})
        conn.execute(sa.text("UPDATE person SET name = :n WHERE id = :i"),
                     {"n": RESIDENT, "i": resident})
        conn.execute(sa.text("UPDATE node SET latitude = 33.87 + 0.01 * (id % 7),"
                             " longitude = 115.77 + 0.01 * (id % 5) WHERE level = 'village'"))
        lin = conn.execute(sa.text("SELECT id FROM node WHERE code = :c"), {"c": LIN1}).scalar()
        conn.execute(sa.text("INSERT INTO invite (code, node_id, created_at, uses, revoked)"
                             " VALUES ('jmarkup12345', :n, CURRENT_TIMESTAMP, 0, false)"),
                     {"n": lin})


def test_names_like_markup_stay_text_and_no_page_breaks_its_policy(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path, clock: FakeClock) -> None:
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    engine = sqlite_engine
    load_demo(engine)
    rid = holder_of(engine, "resident", LIN1).person_id
    lid = holder_of(engine, "neighbor_leader", LIN1).person_id
    admin = holder_of(engine, "admin", TOWN).person_id
    _rename(engine, rid)
    tiles = _TileServer()
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), demo_mode=True, warn_yellow_open=1,
                  tile_url=tiles.url + "/{z}/{x}/{y}.png")
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=True)
    watch = Watch()
    try:
        with serve(app) as url, sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                def page_of() -> Any:
                    ctx = browser.new_context(viewport={"width": 1280, "height": 860},
                                              locale="zh-CN")
                    ctx.add_init_script(WATCH)
                    return watch.attach(ctx.new_page())

                # The web chat: the resident reports, the 邻长 gets the card.
                resident, leader = page_of(), page_of()
                resident.goto(f"{url}/chat?as={rid}")
                assert resident.locator("#who").inner_text() == RESIDENT
                leader.goto(f"{url}/chat?as={lid}")
                resident.fill("#text", REPORT)
                resident.click("#send")
                mine = resident.locator(".msg.inbound", has_text="楼道灯坏了")
                mine.wait_for(timeout=15_000)
                assert REPORT in mine.inner_text()
                card = leader.locator(".msg.card", has_text="楼道灯坏")  # the card cuts it short
                card.wait_for(timeout=15_000)
                assert REPORT[:40] in card.inner_text() and card.locator("img").count() == 0
                watch.check(resident)
                watch.check(leader)

                # The demo switcher frames /chat panes (same origin only) and lists the posts.
                demo = page_of()
                demo.goto(f"{url}/demo")
                assert any(IMG in t for t in demo.locator("option").all_inner_texts())
                demo.frame_locator("iframe").first.locator("#who").wait_for(timeout=15_000)
                watch.check(demo)

                poster = page_of()
                poster.goto(f"{url}/poster/jmarkup12345")
                assert poster.locator("h1").inner_text() == LIN_NAME
                assert poster.locator(".qr svg").count() == 1
                watch.check(poster)

                # The dashboard of the town's admin.
                page = page_of()
                with session_scope(engine) as s:
                    token = accounts.issue_login_token(s, person_id=admin, now=clock.now(),
                                                       ttl=timedelta(minutes=15))
                page.goto(f"{url}/login/{token}")
                assert page.url.endswith("/dashboard")
                names = page.locator("a.tile .name").all_inner_texts()
                assert IMG in names and SCRIPT in names
                marker = page.locator(f"path.geo-node.geo-code-{VILLAGE1}")
                marker.wait_for(state="visible", timeout=15_000)
                page.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded')"
                                       ".length > 0", timeout=15_000)
                marker.hover(force=True)
                tip = page.locator(".leaflet-tooltip")
                tip.wait_for(state="visible", timeout=15_000)
                assert IMG in tip.inner_text() and tip.locator("img").count() == 0
                watch.check(page)

                page.goto(f"{url}/dashboard?node={VILLAGE1}")
                assert page.locator("h1").inner_text() == IMG
                watch.check(page)
                page.goto(f"{url}/dashboard/cases?node={VILLAGE1}")
                row = page.locator("table.cases tbody td.txt").first
                assert row.inner_text() in REPORT and row.locator("img").count() == 0
                page.locator("table.cases tbody a").first.click()
                page.wait_for_load_state()
                assert page.locator("p.text").inner_text() == REPORT
                watch.check(page)
                page.goto(f"{url}/dashboard/figures")
                assert "样本不足未排名" in page.content()
                assert IMG in page.locator("main").inner_text()
                watch.check(page)
                # The week's bar is inline SVG sized by presentation attributes, not a style.
                page.goto(f"{url}/dashboard/figures?node={VILLAGE1}")
                tall = page.locator("svg.chart.trend rect.received[data-value='1']").first
                assert tall.evaluate("e => e.getBoundingClientRect().height") > 100
                watch.check(page)
                page.goto(f"{url}/dashboard/cases/1?msg=<script>window.__xss=6</script>")
                assert page.locator("p.error").count() == 0
                watch.check(page)
            finally:
                browser.close()
    finally:
        tiles.close()
