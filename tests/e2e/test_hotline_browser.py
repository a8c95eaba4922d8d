"""The hotline console in a real headless Chromium, by keyboard only, as an operator on the
phone works it: number, Enter, words, Ctrl+Enter, the receipt, and the focus back on the number
for the next call; at 1440 px and at 390 px, screenshots to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
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
from tests.e2e.test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM, _chromium_or_skip
from tests.e2e.test_output_browser import WATCH
from tests.support.demo_city import load_demo
from tests.support.server import serve
from webhooks.app import create_app

LIN1 = "3416020010010101001"  # 幸福社区1号楼, 周军's


@pytest.fixture
def site(sqlite_engine: Engine, sqlite_url: str, tmp_path: Path,
         clock: FakeClock) -> Iterator[dict[str, Any]]:
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    load_demo(sqlite_engine)
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), timezone="Asia/Shanghai")
    app = create_app(st, clock=clock, container=build_container(st, clock=clock,
                                                                engine=sqlite_engine),
                     run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield {"url": url, "browser": browser, "engine": sqlite_engine, "clock": clock}
        finally:
            browser.close()


def _operator(site: dict[str, Any], width: int, height: int) -> Any:
    """黄涛, 书记 of 幸福社区, signed in and on the console from the menu."""
    with site["engine"].connect() as conn:
        pid = conn.execute(sa.text("SELECT id FROM person WHERE phone = '13900000006'")
                           ).scalar_one()
    with session_scope(site["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=pid, now=site["clock"].now(),
                                           ttl=timedelta(minutes=15))
    page = site["browser"].new_page(viewport={"width": width, "height": height},
                                    locale="zh-CN")
    page.add_init_script(WATCH)
    page.goto(f"{site['url']}/login/{token}")
    page.goto(f"{site['url']}/dashboard/hotline")
    return page


def _focused(page: Any) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def _call(page: Any, phone: str, words: str, shot: str) -> None:
    assert _focused(page) == "hl-phone"  # focus on load: the operator just types
    page.keyboard.type(phone)
    page.keyboard.press("Enter")
    page.wait_for_selector("#hl-words")
    assert _focused(page) == "hl-words"
    assert "王芳" in page.locator(".hl-who").inner_text()
    page.screenshot(path=str(ARTIFACTS / f"{shot}-caller.png"), full_page=True)
    page.keyboard.type(words)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#hl-receipt")
    assert _focused(page) == "hl-phone"
    assert page.locator("#hl-phone").input_value() == ""
    page.screenshot(path=str(ARTIFACTS / f"{shot}-receipt.png"), full_page=True)
    assert page.evaluate("window.__csp") == []


def test_an_operator_files_a_call_by_keyboard_on_a_desktop(site: dict[str, Any]) -> None:
    page = _operator(site, 1440, 900)
    page.screenshot(path=str(ARTIFACTS / "hotline-1440-empty.png"), full_page=True)
    _call(page, "139 0000 0009", "小区门口路灯不亮三天了", "hotline-1440")
    receipt = page.locator("#hl-receipt").inner_text()
    assert "已登记工单 #1" in receipt and "邻长王芳" in receipt
    # 周军 has no chat: the words to read out, with the deadline as a date and time.
    read = page.locator("#hl-read").inner_text()
    assert "编号1号" in read and "王芳" in read and "前会答复您" in read
    # The next call starts at once; the same caller again sees the case just filed.
    page.keyboard.type("13900000009")
    page.keyboard.press("Enter")
    page.wait_for_selector("table.hl-cases")
    assert "#1" in page.locator("table.hl-cases").inner_text()
    page.screenshot(path=str(ARTIFACTS / "hotline-1440-open-cases.png"), full_page=True)
    page.keyboard.type("还有楼道里堆满杂物")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#hl-receipt")
    assert "已登记工单 #2" in page.locator("#hl-receipt").inner_text()
    # An unregistered number: the place by an address search, Enter, then the words.
    page.keyboard.type("13812345678")
    page.keyboard.press("Enter")
    page.wait_for_selector("#hl-place-q")
    assert _focused(page) == "hl-place-q"
    page.keyboard.type("3号楼")
    page.keyboard.press("Enter")
    page.wait_for_selector("input[name=place]:checked")
    assert _focused(page) == "hl-words"
    page.screenshot(path=str(ARTIFACTS / "hotline-1440-unknown.png"), full_page=True)
    page.keyboard.type("三号楼门口的井盖丢了")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#hl-receipt")
    assert "高勇" in page.locator("#hl-receipt").inner_text()
    assert _focused(page) == "hl-phone"
    with site["engine"].connect() as conn:
        rows = conn.execute(sa.text("SELECT c.id, e.via, n.code FROM cases c JOIN case_event e"
                                    " ON e.case_id = c.id AND e.kind = 'opened'"
                                    " JOIN node n ON n.id = c.home_node_id ORDER BY c.id")).all()
    assert [tuple(r) for r in rows] == [(1, "phone", LIN1), (2, "phone", LIN1),
                                        (3, "phone", "3416020010010102001")]


def test_the_console_works_at_phone_width(site: dict[str, Any]) -> None:
    page = _operator(site, 390, 844)
    _call(page, "+86 139-0000-0009", "家门口下水道堵了", "hotline-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
