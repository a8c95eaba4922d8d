"""The web chat as an elderly resident meets it, in headless Chromium at 390×844: the greeting
with their 邻长's number, rating a resolved case, words that survive a failing network, the log
that stays at the newest message, and a page readable without emoji fonts."""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_webchat_browser import ARGS, ARTIFACTS, _chromium_or_skip
from tests.support.demo_city import GROUP1, LIN1, holder_of, load_demo
from tests.support.poll import poll
from tests.support.server import serve
from webhooks.app import create_app

PHONE = {"width": 390, "height": 844}


class World:
    def __init__(self, base: str, engine: Any, browser: Any, resident: int, leader: int) -> None:
        self.base, self.engine, self.browser = base, engine, browser
        self.resident, self.leader = resident, leader

    def page(self, person_id: int) -> Any:
        page = self.browser.new_context(viewport=PHONE).new_page()
        errors: list[str] = []
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
        page.goto(f"{self.base}/chat?as={person_id}")
        page.errors = errors
        return page

    def case(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT id, state, rating, close_reason FROM cases ORDER BY id DESC")).first()


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    exe = _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    rid = holder_of(engine, "resident", LIN1).person_id
    lid = holder_of(engine, "neighbor_leader", LIN1).person_id
    settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"), office_hours="工作日 8:30-17:30")
    container = build_container(settings, clock=clock, engine=engine)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(create_app(settings, container=container, run_jobs=True)) as base, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            yield World(base, engine, browser, rid, lid)
        finally:
            browser.close()


def _texts(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_report_resolve_and_rate_from_the_page(world: World, tmp_path: Path) -> None:
    resident, leader = world.page(world.resident), world.page(world.leader)
    resident.fill("#text", "门口有一堆东西挡着")  # no category word: the bot asks for one
    resident.click("#send")
    resident.locator(".msg.outbound", has_text="请选一个类别").wait_for(timeout=10_000)
    outs = _texts(resident, ".msg.outbound:not(.greeting)")
    receipt = next(i for i, t in enumerate(outs) if t.startswith("已收到"))
    question = next(i for i, t in enumerate(outs) if "请选一个类别" in t)
    assert receipt < question, outs
    card = leader.locator(".msg.card", has_text="挡着")
    card.wait_for(timeout=10_000)
    # 回复这条 is the leader's tool on a card; the resident adds with 补充情况 instead.
    assert card.locator("button.reply").count() == 1
    assert resident.locator("button.reply").count() == 0
    card.get_by_role("button", name="受理", exact=True).click()
    # An open case's card already offers 已解决; the accepted card is the one without 受理.
    card.get_by_role("button", name="受理", exact=True).wait_for(state="detached",
                                                                timeout=10_000)
    leader.locator(".msg.card button", has_text="已解决").first.click()
    stars = resident.locator(".msg .actions button", has_text="★★★★★").last
    stars.wait_for(timeout=10_000)
    resident.screenshot(path=str(ARTIFACTS / "webchat-rate.png"))
    stars.click()
    poll(lambda: world.case().state == "closed", timeout=10, what="the rated case closing")
    case = world.case()
    assert (case.rating, case.close_reason) == (5, "rated")
    # The press shows as the label the resident pressed, and the thanks comes once.
    resident.locator(".msg.inbound", has_text="★★★★★").wait_for(timeout=10_000)
    resident.locator(".msg.outbound", has_text="感谢您的评价").wait_for(timeout=10_000)
    assert "（按下了按钮）" not in resident.inner_text("#log")
    assert len(_texts(resident, ".msg.outbound:has-text('感谢您的评价')")) == 1
    assert "评价请选择1到5星" not in resident.inner_text("#log")
    assert resident.errors == []


def test_words_wait_and_are_resent_with_the_same_client_id(world: World) -> None:
    page = world.page(world.resident)
    failed: list[str] = []
    bodies: list[bytes] = []

    def flaky(route: Any) -> None:
        bodies.append(route.request.post_data_buffer or b"")
        if len(failed) < 4:  # the first send and its three automatic retries are lost
            failed.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/chat/send", flaky)
    page.fill("#text", "楼下水管漏水了，请来看看")
    page.click("#send")
    waiting = page.locator(".msg.inbound.unsent", has_text="水管漏水")
    waiting.wait_for(timeout=20_000)
    assert "未发送，点此重试" in waiting.inner_text()
    page.screenshot(path=str(ARTIFACTS / "webchat-unsent.png"))
    # A reload keeps the words too (localStorage), waiting for the tap.
    page.reload()
    waiting = page.locator(".msg.inbound.unsent", has_text="水管漏水")
    waiting.wait_for(timeout=10_000)
    waiting.locator(".status").click()
    page.locator(".msg.outbound", has_text="已收到").wait_for(timeout=10_000)
    assert page.locator(".msg.unsent").count() == 0
    ids = {re.search(rb'name="client_id"\r\n\r\n([0-9a-z]+)', b).group(1)  # type: ignore[union-attr]
           for b in bodies}
    assert len(ids) == 1, ids
    with world.engine.connect() as conn:
        n = conn.execute(sa.text(
            "SELECT count(*) FROM cases WHERE text LIKE '%水管漏水%'")).scalar()
    assert n == 1
    assert page.locator(".msg.inbound", has_text="水管漏水").count() == 1


def test_empty_send_gets_a_hint_and_log_follows_images(world: World, tmp_path: Path) -> None:
    page = world.page(world.resident)
    page.click("#send")
    assert "请先写几句话" in page.inner_text("#notice")
    for n in range(6):
        page.fill("#text", f"第{n}条：楼道灯坏了")
        page.click("#send")
        page.locator(".msg.inbound", has_text=f"第{n}条").wait_for(timeout=10_000)
    photo = tmp_path / "tall.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (300, 900), (20, 120, 200)).save(buf, "JPEG")
    photo.write_bytes(buf.getvalue())
    page.set_input_files("#photo", str(photo))
    page.click("#send")
    img = page.locator(".msg.inbound img").last
    img.wait_for(timeout=10_000)
    page.wait_for_function("() => [...document.querySelectorAll('.msg img')]"
                           ".every(i => i.complete && i.naturalHeight > 0)")
    page.locator(".msg.outbound", has_text="补充").last.wait_for(timeout=10_000)
    gap = page.evaluate("() => { const l = document.getElementById('log');"
                        " return l.scrollHeight - l.scrollTop - l.clientHeight; }")
    assert gap < 5, gap
    page.screenshot(path=str(ARTIFACTS / "webchat-photo-scrolled.png"))


def test_greeting_card_size_control_and_no_tofu(world: World) -> None:
    page = world.page(world.resident)
    lz = holder_of(world.engine, "neighbor_leader", LIN1)
    zz = holder_of(world.engine, "group_leader", GROUP1)
    greeting = page.locator("#greeting")
    greeting.wait_for(timeout=10_000)
    text = greeting.inner_text()
    assert lz.name in text and zz.name in text and "片长" in text and "工作日 8:30-17:30" in text
    assert page.locator(f'#greeting a[href="tel:{lz.phone}"]').count() == 1
    assert page.get_attribute("#text", "placeholder") == "请描述您遇到的问题…"
    # Voice is the first thing to press.
    first = page.locator("#composer button, #composer label").first
    assert "录音" in first.inner_text()
    page.fill("#text", "楼下着火了，冒烟")
    page.click("#send")
    page.locator(".msg.outbound", has_text="119").wait_for(timeout=10_000)
    assert page.locator('.msg a[href="tel:119"]').count() >= 1
    assert page.locator('.msg a[href="tel:110"]').count() >= 1
    assert page.locator('.msg a[href="tel:120"]').count() >= 1
    page.screenshot(path=str(ARTIFACTS / "webchat-greeting.png"))
    before = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    page.click("#bigger")
    after = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    assert after > before
    page.reload()
    page.locator("#greeting").wait_for(timeout=10_000)
    assert page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)") == after
    page.screenshot(path=str(ARTIFACTS / "webchat-bigger.png"))
    small = []
    for el in page.locator("button:visible, label.tool:visible, a.tel:visible").all():
        box = el.bounding_box()
        if box and min(box["width"], box["height"]) < 44:
            small.append((el.inner_text(), box))
    assert small == []
    rendered = page.evaluate("() => document.body.innerText")
    emoji = [ch for ch in rendered if ord(ch) >= 0x1F000 or ord(ch) == 0xFE0F
             or (unicodedata.category(ch) == "So" and ch not in "★☆")]
    assert emoji == [], emoji


def test_leaders_placeholder_and_errors_as_sentences(world: World) -> None:
    page = world.page(world.leader)
    assert page.get_attribute("#text", "placeholder") == "回复居民或输入命令…"
    resident = world.page(world.resident)
    resident.fill("#text", "门口井盖松了")
    resident.click("#send")
    card = page.locator(".msg.card", has_text="井盖")
    card.wait_for(timeout=10_000)
    # A server that answers with a framework's JSON error still reads as a sentence.
    page.route("**/chat/press", lambda route: route.fulfill(
        status=404, content_type="application/json", body='{"detail":"没有工单#5"}'))
    card.get_by_role("button", name="受理", exact=True).click()
    page.wait_for_function("() => !document.getElementById('notice').hidden")
    shown = page.inner_text("#notice")
    assert shown == "没有工单#5" and "{" not in shown


def test_printable_contact_card(world: World) -> None:
    leader = world.page(world.leader)
    leader.fill("#text", "/invite")
    leader.click("#send")
    msg = leader.locator(".msg.outbound", has_text="/card/")
    msg.wait_for(timeout=10_000)
    path = re.search(r"/card/j[A-Za-z0-9_-]+", msg.inner_text())
    assert path is not None
    violations: list[str] = []
    leader.on("console", lambda m: violations.append(m.text)
              if "Content Security Policy" in m.text else None)
    leader.goto(world.base + path.group(0))
    lz = holder_of(world.engine, "neighbor_leader", LIN1)
    assert leader.locator(f'a[href="tel:{lz.phone}"]').count() == 1
    assert "工作日 8:30-17:30" in leader.inner_text("body")
    leader.screenshot(path=str(ARTIFACTS / "contact-card.png"), full_page=True)
    assert violations == []
