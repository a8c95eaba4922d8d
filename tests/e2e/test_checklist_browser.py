"""A 邻长's checklist page in a real headless Chromium at 390 px, as a phone opens the link of
a WeCom card: two households marked with one tap each stay marked after a reload, the marked
ones move below the ones not yet done, tap targets are large, nothing scrolls sideways and
the page breaks no policy. Screenshots in test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.flows.campaign import checklist_url
from bot.flows.context import Ctx
from bot.flows.types import Inbound
from core.campaigns.services import start_campaign
from core.clock import FakeClock
from core.container import build_container
from core.db import write_session
from core.hierarchy.queries import actor, node_by_code
from core.settings import Settings
from tests.e2e.test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM, _chromium_or_skip
from tests.e2e.test_output_browser import WATCH
from tests.support.demo_city import GROUP1, LIN1, holder_of, load_demo
from tests.support.server import free_port, serve
from webhooks.app import create_app


@pytest.fixture
def site(sqlite_engine: Engine, sqlite_url: str, tmp_path: Path,
         clock: FakeClock) -> Iterator[dict[str, Any]]:
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    engine = sqlite_engine
    load_demo(engine)
    port = free_port()
    st = Settings(_env_file=None, database_url=sqlite_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url=f"http://127.0.0.1:{port}")
    leader = holder_of(engine, "neighbor_leader", LIN1)
    with write_session(engine) as s:
        c = start_campaign(s, node_id=node_by_code(s, GROUP1).id, title="敲门行动·人口核查",
                           instructions="请逐户核对常住人口，不在家的晚上再去一次。",
                           outcomes=None, deadline=clock.now() + timedelta(hours=8),
                           started_by=None, clock=clock)
        # The very link the flow puts on the WeCom card.
        ctx = Ctx(session=s, clock=clock, settings=st, actor=actor(s, leader.person_id),
                  inbound=Inbound(platform="wecom", update_id="1", chat_id="u", sender_id="u",
                                  received_at=clock.now()))
        link = checklist_url(ctx, c)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app, port=port), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield {"browser": browser, "link": link}
        finally:
            browser.close()


def test_two_households_marked_on_a_phone_stay_marked(site: dict[str, Any]) -> None:
    page = site["browser"].new_page(viewport={"width": 390, "height": 844}, locale="zh-CN",
                                    device_scale_factor=2)
    page.add_init_script(WATCH)
    page.goto(site["link"])
    assert page.locator(".progress").inner_text() == "已登记 0/3 户"
    page.screenshot(path=str(ARTIFACTS / "checklist-phone-start.png"), full_page=True)
    for button in page.locator("button.outcome, summary").all():
        box = button.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 44
    first = page.locator("section.hh").first
    assert "幸福社区3号楼101室" in first.inner_text()
    first.get_by_role("button", name="已完成").click()
    page.wait_for_load_state()
    assert "已保存：幸福社区3号楼101室 — 已完成" in page.locator("#flash").inner_text()
    # the next one not yet done is now first: a note, then 不在家
    nxt = page.locator("section.hh").first
    assert "幸福社区3号楼202室" in nxt.inner_text()
    nxt.locator("textarea").fill("晚上七点再来")
    nxt.get_by_role("button", name="不在家").click()
    page.wait_for_load_state()
    page.reload()
    assert page.locator(".progress").inner_text() == "已登记 2/3 户"
    done = page.locator("section.hh.done")
    assert done.count() == 2
    assert "当前：已完成" in done.nth(0).inner_text()
    assert "当前：不在家" in done.nth(1).inner_text() and "晚上七点再来" in done.nth(1).inner_text()
    assert page.locator("section.hh:not(.done)").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("window.__csp") == []
    page.screenshot(path=str(ARTIFACTS / "checklist-phone-marked.png"), full_page=True)
    page.locator("section.hh:not(.done) details.newcomer summary").click()
    page.screenshot(path=str(ARTIFACTS / "checklist-phone-newcomer.png"), full_page=True)
    page.close()
