"""The warning map as a map, with no tile server: the demo city's boundaries drawn as shapes in
the warning colours, a click drills down, and a name is only ever text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.importer import import_files
from core.settings import Settings
from tests.e2e.test_dashboard_browser import ARTIFACTS, _open, browser_page  # noqa: F401
from tests.support.demo_city import DEMO, LIN1, TOWN, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

VILLAGE2 = "341602001002"
NASTY = "<img src=x onerror=window.__pwned=1>"
WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});"""


def test_the_map_draws_shapes_in_warning_colours_without_tiles(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path, clock: FakeClock,
        browser_page: Any) -> None:  # noqa: F811
    engine = sqlite_engine
    load_demo(engine)
    import_files(engine, [DEMO / "boundaries.geojson"])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE node SET name = :n WHERE code = :c"),
                     {"n": NASTY, "c": VILLAGE2})
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), warn_yellow_open=1, warn_orange_open=2,
                  warn_red_open=3)
    assert st.tile_url is None
    resident = holder_of(engine, "resident", LIN1)
    admin = holder_of(engine, "admin", TOWN)
    for text in ("路灯坏了一周", "下水道堵塞返味", "垃圾桶满了没人清"):
        _open(engine, clock, st, resident.person_id, text)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    page = browser_page
    page.add_init_script(WATCH)
    elsewhere: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as url:
        page.on("request", lambda r: None if r.url.startswith(url) else elsewhere.append(r.url))
        with session_scope(engine) as s:
            token = accounts.issue_login_token(s, person_id=admin.person_id, now=clock.now(),
                                               ttl=timedelta(minutes=15))
        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(f"{url}/login/{token}")
        red = page.locator(f"#geo path.geo-node.geo-red.geo-code-{VILLAGE1}")
        red.wait_for(state="visible", timeout=15_000)
        # One shape per community of the town (the only children on screen), in tile colours.
        fills = page.eval_on_selector_all("#geo path.geo-node", "ps => ps.map(p => [p."
                                          "getAttribute('class'), p.getAttribute('fill')])")
        assert len(fills) == 2
        assert {f for _, f in fills} == {"#d93a34", "#2e9d5b"}
        assert page.locator("#geo img").count() == 0  # no tiles, no injected image
        assert page.evaluate("window.__pwned") is None
        labels = page.locator("#geo .leaflet-tooltip").all_inner_texts()
        assert any(NASTY in t for t in labels), labels
        page.screenshot(path=str(ARTIFACTS / "dashboard-map-shapes.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        red.wait_for(state="visible", timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "dashboard-map-shapes-390.png"), full_page=True)
        page.set_viewport_size({"width": 1440, "height": 900})
        page.reload()
        red.wait_for(state="visible", timeout=15_000)
        red.click(force=True)
        page.wait_for_url(f"**/dashboard?node={VILLAGE1}")
        areas = page.locator("#geo path.geo-node")
        areas.first.wait_for(state="visible", timeout=15_000)
        assert areas.count() == 2  # the village's two 片
        assert page.evaluate("window.__csp") == []
    assert elsewhere == []
