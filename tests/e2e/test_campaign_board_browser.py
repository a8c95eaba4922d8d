"""The campaign progress board in a real headless Chromium: the town's numbers match the
marks, the board refreshes itself while a 邻长 marks (no reload), drill-down town → village →
片 → 组 → 邻 ends at the 邻长's list. Screenshots in test-artifacts/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from core import accounts
from core.campaigns import marking
from core.campaigns.services import start_campaign
from core.clock import FakeClock
from core.container import build_container
from core.db import write_session
from core.hierarchy.queries import node_by_code
from core.settings import Settings
from tests.e2e.test_dashboard_browser import ARTIFACTS, browser_page  # noqa: F401
from tests.support.demo_city import AREA1, GROUP1, LIN1, TOWN, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def _mark(engine: Engine, clock: FakeClock, cid: int, code: str, n: int, outcome: int) -> None:
    leader = holder_of(engine, "neighbor_leader", code)
    with write_session(engine) as s:
        items = marking.items_of(s, campaign_id=cid, node_ids=[node_by_code(s, code).id])
        for it in [i for i in items if i.outcome is None][:n]:
            marking.mark(s, item_id=it.id, outcome=outcome, person_id=leader.person_id,
                         clock=clock)


def test_board_counts_refresh_and_drill_down(sqlite_engine: Engine, sqlite_url: str,
                                             tmp_path: Path, clock: FakeClock,
                                             browser_page: Any) -> None:  # noqa: F811
    engine = sqlite_engine
    load_demo(engine)
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), campaign_board_refresh="1s")
    admin = holder_of(engine, "admin", TOWN)
    with write_session(engine) as s:
        c = start_campaign(s, node_id=node_by_code(s, TOWN).id, title="敲门行动·人口核查",
                           instructions="", outcomes=None,
                           deadline=clock.now() + timedelta(hours=8),
                           started_by=admin.person_id, clock=clock)
        cid = c.id or 0
    _mark(engine, clock, cid, LIN1, 2, 0)
    _mark(engine, clock, cid, GROUP1 + "002", 3, 1)
    clock.advance(timedelta(hours=1, minutes=30))  # a fifth of the time gone: colours differ
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    with serve(app) as url:
        with write_session(engine) as s:
            token = accounts.issue_login_token(s, person_id=admin.person_id, now=clock.now(),
                                               ttl=timedelta(minutes=15))
        page.goto(f"{url}/login/{token}")
        page.goto(f"{url}/dashboard/campaigns")
        page.locator(f'a[href="/dashboard/campaigns/{cid}"]').click()
        page.wait_for_load_state()
        town = node_by_code_id(engine, TOWN)
        assert page.locator(f'[data-k="{town}:total"]').inner_text() == "48"
        assert page.locator(f'[data-k="{town}:done"]').inner_text() == "5"
        assert "截至" in page.content()
        assert page.locator(f'[data-k="{town}:colour"]').get_attribute("class") == "sw yellow"
        page.screenshot(path=str(ARTIFACTS / "campaign-board-town.png"), full_page=True)

        # A 邻长 marks three more: the open board follows by itself.
        _mark(engine, clock, cid, LIN1, 1, 2)
        _mark(engine, clock, cid, GROUP1 + "002", 0, 0)
        from playwright.sync_api import expect

        expect(page.locator(f'[data-k="{town}:done"]')).to_have_text("6", timeout=10000)
        page.screenshot(path=str(ARTIFACTS / "campaign-board-town-refreshed.png"),
                        full_page=True)

        for code in (VILLAGE1, AREA1, GROUP1):
            page.locator(f'a[href="/dashboard/campaigns/{cid}?node={code}"]').last.click()
            page.wait_for_load_state()
        group = node_by_code_id(engine, GROUP1)
        assert page.locator(f'[data-k="{group}:done"]').inner_text() == "6"
        page.screenshot(path=str(ARTIFACTS / "campaign-board-group.png"), full_page=True)
        page.locator(f'a[href="/dashboard/campaigns/{cid}?node={LIN1}"]').click()
        page.wait_for_load_state()
        rows = page.locator("table.items tr").all_inner_texts()
        assert len(rows) == 4 and "已完成" in rows[1] and "拒绝" in rows[3]
        page.screenshot(path=str(ARTIFACTS / "campaign-board-lin.png"), full_page=True)
        r = page.request.get(f"{url}/dashboard/campaigns/{cid}/export.xlsx?node={LIN1}")
        assert r.status == 200 and r.body()[:2] == b"PK"


def node_by_code_id(engine: Engine, code: str) -> int:
    with write_session(engine) as s:
        return node_by_code(s, code).id
