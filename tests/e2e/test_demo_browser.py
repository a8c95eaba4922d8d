"""`linzhang demo` as a visitor sees it: five people side by side at 1440×900, and a town map
with weeks of history drawn on the demo city's boundaries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.demo_seed import demo_settings, seed
from core.hierarchy.importer import import_files
from tests.e2e.test_dashboard_browser import ARTIFACTS, browser_page  # noqa: F401
from tests.support.demo_city import DEMO, TOWN, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def test_five_panes_fit_and_the_seeded_map_is_a_map(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path, clock: FakeClock,
        browser_page: Any) -> None:  # noqa: F811
    engine = sqlite_engine
    load_demo(engine)
    import_files(engine, [DEMO / "boundaries.geojson"])
    st = demo_settings(database_url=sqlite_url, deadline="2m", media_dir=str(tmp_path / "m"))
    seed(engine, settings=st, clock=clock)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as url:
        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(f"{url}/demo")
        frames = page.locator(".pane iframe")
        assert frames.count() == 5
        boxes = [frames.nth(i).bounding_box() for i in range(5)]
        assert all(b is not None and b["x"] + b["width"] <= 1440 for b in boxes), boxes
        assert len({round(b["y"]) for b in boxes if b is not None}) == 1  # one row
        page.locator(".pane iframe").last.content_frame.locator("#text").wait_for()
        page.screenshot(path=str(ARTIFACTS / "demo-panes-1440.png"))

        admin = holder_of(engine, "admin", TOWN)
        with session_scope(engine) as s:
            token = accounts.issue_login_token(s, person_id=admin.person_id, now=clock.now(),
                                               ttl=timedelta(minutes=15))
        page.goto(f"{url}/login/{token}")
        shapes = page.locator("#geo path.geo-node")
        shapes.first.wait_for(state="visible", timeout=15_000)
        assert shapes.count() == 2
        page.screenshot(path=str(ARTIFACTS / "demo-dashboard-map-1440.png"), full_page=True)
        page.goto(f"{url}/dashboard/figures")
        # The 考核 ranking ranks both communities (each has enough cases in the last 30 days).
        ranking = page.request.get(f"{url}/api/ranking").json()
        assert len(ranking["ranked"]) == 2 and ranking["too_few"] == [], ranking
        page.screenshot(path=str(ARTIFACTS / "demo-dashboard-figures-1440.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{url}/dashboard?node=341602001001")
        shapes.first.wait_for(state="visible", timeout=15_000)
        assert shapes.count() == 2  # the village's two 片
        page.screenshot(path=str(ARTIFACTS / "demo-dashboard-map-390.png"), full_page=True)
