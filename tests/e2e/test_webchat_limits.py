"""Guessing and flooding limits of the web chat over real HTTP: one-time phone codes limited
per number (across sessions), per client address and in all; one answer for any number; a
link to /join that cannot take over a chat someone is already signed in to."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.invites import invite_for
from core.hierarchy.queries import actor, node_by_code
from core.hierarchy.services import link_identity
from core.settings import Settings
from tests.support.demo_city import LIN1, TOWN, VACANT_LIN, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

BOUND = "13900000009"  # 周军: a resident we give a Telegram chat below
UNBOUND = "13900000010"  # 徐明: a resident with no chat account
UNKNOWN = "13812345678"  # nobody
OTHER = "13900000011"  # 孙华, another resident


class Browser:
    """One browser session of /chat: its cookie jar and CSRF token, from one address."""

    def __init__(self, base: str, opened: list[httpx.Client], source: str = "127.0.0.1") -> None:
        self.client = httpx.Client(base_url=base, timeout=20, follow_redirects=False,
                                   transport=httpx.HTTPTransport(local_address=source))
        opened.append(self.client)
        page = self.client.get("/chat")
        assert page.status_code == 200
        self.csrf = re.search(r'data-csrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]

    def post(self, path: str, body: dict[str, str]) -> httpx.Response:
        return self.client.post(path, content=json.dumps(body),
                                headers={"X-CSRF-Token": self.csrf})

    def ask(self, phone: str) -> httpx.Response:
        return self.post("/chat/phone", {"phone": phone})

    def guess(self, code: str) -> httpx.Response:
        return self.post("/chat/code", {"code": code})


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    with session_scope(engine) as s:
        pid = s.execute(sa.text("SELECT id FROM person WHERE phone = :p"),
                        {"p": BOUND}).scalar_one()
        link_identity(s, person_id=pid, platform="telegram", external_id="777001",
                      now=FakeClock().now(), proof="contact")
    return engine


@pytest.fixture
def app_for(city: Engine, db_url: str, tmp_path: Path, clock: FakeClock
            ) -> Iterator[Callable[..., str]]:
    """Serve the app with these settings; the base URL."""
    stack: list[Any] = []
    opened: list[httpx.Client] = []

    def start(**kw: Any) -> str:
        settings = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                            media_dir=str(tmp_path / "media"), **kw)
        container = build_container(settings, clock=clock, engine=city)
        ctx = serve(create_app(settings, container=container, run_jobs=False))
        stack.append(ctx)
        return ctx.__enter__()

    start.opened = opened  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for client in opened:
            client.close()
        while stack:
            stack.pop().__exit__(None, None, None)


def code_messages(engine: Engine) -> list[str]:
    """The code messages queued for the resident with a Telegram chat, oldest first."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT o.text FROM outbox o JOIN person p ON p.id = o.person_id"
            " WHERE o.kind = 'web_code' AND p.phone = :p ORDER BY o.id"), {"p": BOUND}).scalars())


def code_in(text: str) -> str:
    return re.search(r"\d{6}", text).group(0)  # type: ignore[union-attr]


def wrong_for(*codes: str) -> str:
    return next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in codes)


def test_one_answer_whoever_has_the_number(app_for: Callable[..., str]) -> None:
    base = app_for()
    opened = app_for.opened  # type: ignore[attr-defined]
    answers = [Browser(base, opened).ask(phone) for phone in (BOUND, UNBOUND, UNKNOWN)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].content == answers[2].content
    assert "如果这个号码已登记" in answers[0].json()["message"]
    assert "code" not in answers[0].json() and "sent" not in answers[0].json()


def test_many_sessions_queue_at_most_three_codes_an_hour_for_one_number(
        app_for: Callable[..., str], city: Engine, clock: FakeClock) -> None:
    base = app_for()
    opened = app_for.opened  # type: ignore[attr-defined]
    browsers = [Browser(base, opened) for _ in range(20)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: b.ask(BOUND), browsers))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 3 + [429] * 17, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert "太频繁" in refused.json()["error"] and int(refused.headers["retry-after"]) >= 60
    assert len(code_messages(city)) == 3
    # The limit is the number's: the same address may still ask for another number.
    assert Browser(base, opened).ask(OTHER).status_code == 200
    clock.advance(timedelta(minutes=61))
    assert Browser(base, opened).ask(BOUND).status_code == 200
    assert len(code_messages(city)) == 4


def test_wrong_codes_count_per_number_across_sessions(
        app_for: Callable[..., str], city: Engine, clock: FakeClock) -> None:
    base = app_for()
    opened = app_for.opened  # type: ignore[attr-defined]
    s1, s2, s3 = (Browser(base, opened) for _ in range(3))
    for b in (s1, s2, s3):
        assert b.ask(BOUND).status_code == 200
    sent = [code_in(t) for t in code_messages(city)]
    right, wrong = sent[2], wrong_for(*sent)
    tries = [s1.guess(wrong), s1.guess(wrong), s2.guess(wrong), s2.guess(wrong)]
    assert [t.status_code for t in tries] == [400] * 4
    assert "再试1次" in tries[-1].json()["error"]
    fifth = s3.guess(wrong)
    assert fifth.status_code == 429 and "过多" in fifth.json()["error"]
    # The number's codes are dead, the right one too, and no new one goes out for a while.
    late = s3.guess(right)
    assert late.status_code == 429 and "过多" in late.json()["error"]
    fresh = Browser(base, opened)
    assert fresh.ask(BOUND).status_code == 429
    assert len(code_messages(city)) == 3
    with city.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM chat_identity WHERE platform = 'web'")).scalar_one() == 0
    # An hour later the resident can confirm their number.
    clock.advance(timedelta(minutes=61))
    assert fresh.ask(BOUND).status_code == 200
    ok = fresh.guess(code_in(code_messages(city)[-1]))
    assert ok.status_code == 200, ok.text


def test_codes_are_limited_per_address_and_overall(
        app_for: Callable[..., str], city: Engine) -> None:
    base = app_for(web_codes_per_client=2, web_codes_total=3, web_code_wrong_per_client=2)
    opened = app_for.opened  # type: ignore[attr-defined]
    here = [Browser(base, opened) for _ in range(3)]
    assert [b.ask(p).status_code for b, p in zip(here, (UNBOUND, UNKNOWN, OTHER), strict=True)
            ] == [200, 200, 429]
    # Another address has its own budget, until the deployment's total is spent.
    there = [Browser(base, opened, source="127.0.0.2") for _ in range(2)]
    assert there[0].ask(OTHER).status_code == 200
    last = there[1].ask(BOUND)
    assert last.status_code == 429 and "太频繁" in last.json()["error"]
    # Wrong codes are counted per address too, whatever number they are for.
    assert here[0].guess("000000").status_code == 400
    assert here[1].guess("000000").status_code == 400
    assert here[1].guess("111111").status_code == 429


def join_codes(engine: Engine) -> tuple[str, str, str]:
    """Invite codes of two 邻s, and the second one's name."""
    admin = holder_of(engine, "admin", TOWN).person_id
    now = FakeClock().now()
    with Session(engine) as s:
        by = actor(s, admin)
        first = invite_for(s, by=by, node=node_by_code(s, LIN1), now=now).code
        second_node = node_by_code(s, VACANT_LIN)
        second = invite_for(s, by=by, node=second_node, now=now).code
        s.commit()
    return first, second, second_node.name


def chat_state(engine: Engine) -> tuple[list[tuple[int, str]], list[str], int]:
    """(person, 邻 code) of every resident post of web chat people, their web chats, and
    how many lines those chats have."""
    with engine.connect() as conn:
        posts = [(int(a), str(b)) for a, b in conn.execute(sa.text(
            "SELECT i.person_id, n.code FROM chat_identity i JOIN post x"
            " ON x.person_id = i.person_id JOIN node n ON n.id = x.node_id"
            " WHERE i.platform = 'web' ORDER BY n.code"))]
        chats = list(conn.execute(sa.text(
            "SELECT external_id FROM chat_identity WHERE platform = 'web'")).scalars())
        lines = int(conn.execute(sa.text("SELECT count(*) FROM web_message")).scalar_one())
    return posts, chats, lines


def test_join_link_from_another_site_keeps_a_signed_in_chat_until_confirmed(
        app_for: Callable[..., str], city: Engine) -> None:
    base = app_for()
    opened = app_for.opened  # type: ignore[attr-defined]
    first, second, second_name = join_codes(city)
    b = httpx.Client(base_url=base, timeout=20, follow_redirects=False)
    opened.append(b)
    # A fresh browser joins in one step, then reports.
    r = b.get(f"/join/{first}")
    assert r.status_code == 303 and r.headers["location"] == "/chat"
    csrf = re.search(r'data-csrf="([^"]+)"', b.get("/chat").text).group(1)  # type: ignore[union-attr]
    assert b.post("/chat/send", data={"client_id": "msg-000001", "text": "楼道灯坏了"},
                  headers={"X-CSRF-Token": csrf}).status_code == 200
    before = chat_state(city)
    assert [code for _, code in before[0]] == [LIN1] and before[2] >= 2
    cookie = b.cookies.get("lz_chat")
    # A link on another site: a page that asks, and nothing changes.
    page = b.get(f"/join/{second}", headers={"Sec-Fetch-Site": "cross-site",
                                             "Referer": "https://evil.example/"})
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert f"您已作为 <strong>居民</strong> 登录。要加入 {second_name} 吗？" in page.text
    assert chat_state(city) == before and b.cookies.get("lz_chat") == cookie
    # A form from another site cannot confirm it: it has no CSRF token.
    forged = b.post(f"/join/{second}", data={"csrf": "forged"})
    assert forged.status_code == 403 and chat_state(city) == before
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    done = b.post(f"/join/{second}", data={"csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/chat"
    posts, chats, lines = chat_state(city)
    assert chats == before[1] and sorted(code for _, code in posts) == sorted([LIN1, VACANT_LIN])
    assert len({pid for pid, _ in posts}) == 1 and lines > before[2]
