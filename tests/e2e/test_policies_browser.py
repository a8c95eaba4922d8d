"""The read-only page of category policies and routing rules in a real headless Chromium,
after the console imported both files; a screenshot goes to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.importer import import_files
from core.settings import Settings
from tests.e2e.test_dashboard_browser import ARTIFACTS, browser_page  # noqa: F401 - fixture
from tests.support.demo_city import VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def test_the_policies_page_shows_limits_in_words_and_rules_in_order(
        sqlite_engine: Engine, sqlite_url: str, tmp_path: Path, clock: FakeClock,
        browser_page: Any) -> None:  # noqa: F811
    engine = sqlite_engine
    load_demo(engine)
    cats = tmp_path / "categories.csv"
    cats.write_text("类别,责任部门,答复时限,办结时限,需核查\n公共设施,D01,2wd,15wd,是\n"
                    "安全隐患,D06,4wh,,\n", encoding="utf-8")
    rules = tmp_path / "routing.csv"
    rules.write_text("规则编号,类别,直派,范围,时段,知会\nR1,安全隐患,D06,341602001,,书记\n"
                     "R2,纠纷调处,书记,,20:00-08:00,\n", encoding="utf-8")
    import_files(engine, [cats, rules])
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    secretary = holder_of(engine, "secretary", VILLAGE1)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    with serve(app) as url:
        with session_scope(engine) as s:
            token = accounts.issue_login_token(s, person_id=secretary.person_id,
                                               now=clock.now(), ttl=timedelta(minutes=15))
        page.goto(f"{url}/login/{token}")
        page.get_by_role("link", name="类别规则").click()
        page.wait_for_url("**/dashboard/policies")
        cats_text = page.locator("table.policies").inner_text()
        assert "2个工作日" in cats_text and "15个工作日" in cats_text and "4个工作小时" in cats_text
        assert "wd" not in cats_text
        rows = page.locator("table.rules tr").all_inner_texts()
        assert rows[1].split()[0] == "R1" and rows[2].split()[0] == "R2"
        assert "书记" in rows[1] and "20:00-08:00" in rows[2]
        assert page.locator("form").count() == 1  # only the sign-out form: nothing to edit
        page.screenshot(path=str(ARTIFACTS / "dashboard-policies.png"), full_page=True)
