"""In headless Chromium at a phone's width (390 px): a resident's chat, then a link to another
邻 clicked on another site. The chat is not replaced: a page asks first, and saying no keeps
everything; saying yes joins with the same identity and history."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.hierarchy.invites import invite_for
from core.hierarchy.queries import actor, node_by_code
from core.settings import Settings
from tests.e2e.test_webchat_browser import ARGS, ARTIFACTS, _chromium_or_skip
from tests.support.demo_city import LIN1, TOWN, VACANT_LIN, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

EVIL = "http://evil.test/"


def web_posts(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(int(a), str(b)) for a, b in conn.execute(sa.text(
            "SELECT i.person_id, n.code FROM chat_identity i JOIN post x"
            " ON x.person_id = i.person_id JOIN node n ON n.id = x.node_id"
            " WHERE i.platform = 'web' ORDER BY n.code"))]


def test_cross_site_join_link_asks_before_changing_a_chat(tmp_path: Path,
                                                          clock: FakeClock) -> None:
    exe = _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    with Session(engine) as s:
        by = actor(s, holder_of(engine, "admin", TOWN).person_id)
        first = invite_for(s, by=by, node=node_by_code(s, LIN1), now=clock.now()).code
        other = node_by_code(s, VACANT_LIN)
        second = invite_for(s, by=by, node=other, now=clock.now()).code
        s.commit()
    settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"))
    container = build_container(settings, clock=clock, engine=engine)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(create_app(settings, container=container, run_jobs=True)) as base, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            page.route(EVIL + "**", lambda route: route.fulfill(
                content_type="text/html; charset=utf-8",
                body=f'<a id="go" href="{base}/join/{second}">领红包</a>'))
            page.goto(f"{base}/join/{first}")  # a fresh browser joins in one step
            page.wait_for_url(f"{base}/chat")
            page.fill("#text", "楼道灯坏了，晚上看不见")
            page.click("#send")
            page.locator(".msg.inbound", has_text="楼道灯坏了").wait_for(timeout=10_000)
            before = web_posts(engine)
            assert [code for _, code in before] == [LIN1]

            page.goto(EVIL)
            page.click("#go")
            question = page.locator("#join-question")
            question.wait_for(timeout=10_000)
            assert f"要加入 {other.name} 吗" in question.inner_text()
            assert "您已作为 居民 登录" in question.inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            box = page.locator("#join-yes").bounding_box()
            assert box is not None and box["height"] >= 44 and box["x"] + box["width"] <= 390
            page.screenshot(path=str(ARTIFACTS / "webchat-join-confirm.png"))
            assert web_posts(engine) == before

            page.click("#join-no")  # no: the chat and its history are as they were
            page.locator(".msg.inbound", has_text="楼道灯坏了").wait_for(timeout=10_000)
            assert web_posts(engine) == before

            page.goto(EVIL)
            page.click("#go")
            page.click("#join-yes")
            page.wait_for_url(f"{base}/chat")
            page.locator(".msg.inbound", has_text="楼道灯坏了").wait_for(timeout=10_000)
            after = web_posts(engine)
            assert sorted(code for _, code in after) == sorted([LIN1, VACANT_LIN])
            assert {pid for pid, _ in after} == {pid for pid, _ in before}
        finally:
            browser.close()
