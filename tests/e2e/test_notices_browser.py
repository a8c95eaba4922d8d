"""The notices page in a real headless Chromium: a 书记 fills in the form, sends a notice to
the 邻长 of the village, lands on its receipts; an empty text is refused in words and sends
nothing. Screenshots go to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import write_session
from core.settings import Settings
from tests.e2e.test_dashboard_browser import ARTIFACTS, browser_page  # noqa: F401
from tests.support.demo_city import VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def test_a_secretary_sends_a_notice_from_the_dashboard(sqlite_engine: Engine, sqlite_url: str,
                                                       tmp_path: Path, clock: FakeClock,
                                                       browser_page: Any) -> None:  # noqa: F811
    engine = sqlite_engine
    load_demo(engine)
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    sec = holder_of(engine, "secretary", VILLAGE1)
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
        assert page.locator("nav a.on").inner_text() == "通知"
        # Whitespace only: refused with a sentence, nothing written.
        page.fill("textarea[name=text]", "   ")
        page.click("form[action='/dashboard/notices'] button")
        page.wait_for_load_state()
        assert "通知内容不能为空" in page.locator("p.error").inner_text()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM notice")).scalar_one() == 0
        page.fill("textarea[name=text]", "本周六上午9点，村委会门前开展消防演练，请通知到户。")
        page.fill("input[name=deadline]", (clock.now() + timedelta(hours=30)).strftime(
            "%Y-%m-%dT%H:%M"))
        page.screenshot(path=str(ARTIFACTS / "dashboard-notice-form.png"), full_page=True)
        page.click("form[action='/dashboard/notices'] button")
        page.wait_for_url("**/dashboard/notices/*")
        table = page.locator("#receipts")
        total = table.locator("tr").nth(1).locator("td").all_inner_texts()
        with engine.connect() as conn:
            leaders = conn.execute(sa.text("SELECT count(*) FROM notice_recipient")).scalar_one()
        assert total[0] == "合计" and int(total[1]) == leaders > 0
        assert table.locator("tr").count() >= 3  # the total and at least one 片
        page.screenshot(path=str(ARTIFACTS / "dashboard-notice-receipts.png"), full_page=True)
