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


class _TileServer:
    """A map tile server on loopback: one grey 256×256 PNG for every /{z}/{x}/{y}.png."""

    def __init__(self) -> None:
        import io
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (220, 224, 228)).save(buf, "PNG")
        png = buf.getvalue()
        served: list[str] = []
        self.served = served

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                served.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_geographic_view_shows_the_same_colours_on_leaflet(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path, clock: FakeClock,
        browser_page: Any) -> None:
    import sqlalchemy as sa

    engine = sqlite_engine
    load_demo(engine)
    tiles = _TileServer()
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), warn_yellow_open=1, warn_orange_open=2,
                  warn_red_open=3, tile_url=tiles.url + "/{z}/{x}/{y}.png")
    with engine.begin() as conn:
        # The two communities of the demo town, placed in Bozhou.
        conn.execute(sa.text("UPDATE node SET latitude = 33.87 + 0.01 * (id % 7),"
                             " longitude = 115.77 + 0.01 * (id % 5)"
                             " WHERE level = 'village'"))
    resident = holder_of(engine, "resident", LIN1)
    admin = holder_of(engine, "admin", TOWN)
    for text in ("路灯坏了一周", "下水道堵塞返味", "垃圾桶满了没人清"):
        _open(engine, clock, st, resident.person_id, text)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with serve(app) as url:
            with session_scope(engine) as s:
                token = accounts.issue_login_token(s, person_id=admin.person_id,
                                                   now=clock.now(), ttl=timedelta(minutes=15))
            page.goto(f"{url}/login/{token}")
            assert page.locator(f'a.tile[data-code="{VILLAGE1}"]').get_attribute(
                "data-level") == "red"
            # Leaflet (served by the app) draws one circle per community in the tile colours.
            red = page.locator(f"path.geo-node.geo-red.geo-code-{VILLAGE1}")
            red.wait_for(state="visible", timeout=15_000)
            assert page.locator("path.geo-node").count() == 2
            assert page.locator("path.geo-node.geo-green").count() == 1
            assert red.get_attribute("fill") == "#d93a34"
            page.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded')"
                                   ".length > 0", timeout=15_000)
            assert tiles.served and all(p.endswith(".png") for p in tiles.served)
            page.screenshot(path=str(ARTIFACTS / "dashboard-geo.png"), full_page=True)
            red.click(force=True)
            page.wait_for_url(f"**/dashboard?node={VILLAGE1}")
    finally:
        tiles.close()
