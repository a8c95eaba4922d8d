"""A notice's relay in a real headless Chromium: a 书记 sends a notice to the residents of the
village from the dashboard form; its page shows the 邻长's relay progress (households, 已转达 /
不在家 / 已搬离, not yet) and links to the relay's board, which says 转达 and links back; a
household marked in chat moves the numbers. Screenshots go to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import accounts
from core.campaigns import marking
from core.clock import FakeClock
from core.container import build_container
from core.db import write_session
from core.hierarchy.queries import node_by_code
from core.settings import Settings
from tests.e2e.test_dashboard_browser import ARTIFACTS, browser_page  # noqa: F401
from tests.support.demo_city import LIN1, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def test_the_notice_page_shows_its_relay(sqlite_engine: Engine, sqlite_url: str,
                                         tmp_path: Path, clock: FakeClock,
                                         browser_page: Any) -> None:  # noqa: F811
    engine = sqlite_engine
    load_demo(engine)
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    sec = holder_of(engine, "secretary", VILLAGE1)
    lz = holder_of(engine, "neighbor_leader", LIN1)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    with serve(app) as url:
        with write_session(engine) as s:
            token = accounts.issue_login_token(s, person_id=sec.person_id, now=clock.now(),
                                               ttl=timedelta(minutes=15))
        page.goto(f"{url}/login/{token}")
        page.goto(f"{url}/dashboard/notices")
        page.uncheck("input[name=audience][value=neighbor_leader]")
        page.check("input[name=audience][value=resident]")
        page.fill("textarea[name=text]", "明天上午8点到12点停水，请提前储水。")
        page.click("form[action='/dashboard/notices'] button")
        page.wait_for_url("**/dashboard/notices/*")
        relay = page.locator("#relay")
        cells = relay.locator("tr").nth(1).locator("td").all_inner_texts()
        with engine.connect() as conn:
            cid, total = conn.execute(sa.text(
                "SELECT c.id, count(i.id) FROM campaign c JOIN campaign_item i"
                " ON i.campaign_id = c.id WHERE c.notice_id IS NOT NULL GROUP BY c.id")).one()
        assert int(cells[0]) == total > 0 and cells[1:4] == ["0", "0", "0"]
        assert int(cells[4]) == total and cells[5] == "0%"
        page.screenshot(path=str(ARTIFACTS / "dashboard-notice-relay.png"), full_page=True)

        # The 邻长 marks one household in chat (the same service the buttons call).
        with Session(engine) as s:
            item = marking.items_of(s, campaign_id=cid, node_ids=[node_by_code(s, LIN1).id])[0]
        with write_session(engine) as s:
            marking.mark(s, item_id=item.id, outcome=0, person_id=lz.person_id, clock=clock)
        page.reload()
        cells = page.locator("#relay tr").nth(1).locator("td").all_inner_texts()
        assert cells[1] == "1" and int(cells[4]) == total - 1

        page.click("text=查看转达清单")
        page.wait_for_url(f"**/dashboard/campaigns/{cid}")
        assert page.locator("h1").first.inner_text().startswith("转达：明天上午8点")
        assert "这是通知的转达任务" in page.locator("p.relay").inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard-relay-board.png"), full_page=True)
        page.click("p.relay a")
        page.wait_for_url("**/dashboard/notices/*")
