"""The web chat over real HTTP: sessions and CSRF, duplicates, uploads, the event stream."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


@pytest.fixture
def web(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[str, Any]]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"), max_photo_bytes=200_000,
                        web_stream_seconds=2.5, web_keepalive_seconds=0.1)
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container, run_jobs=False)) as base:
        yield base, engine


OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


class Browser:
    """One browser session of the chat page: its cookie jar, CSRF token and pane."""

    def __init__(self, base: str, person_id: int | None = None) -> None:
        self.client = httpx.Client(base_url=base, timeout=10)
        OPEN.append(self.client)
        page = self.client.get("/chat" + (f"?as={person_id}" if person_id else ""))
        assert page.status_code == 200
        self.csrf = re.search(r'data-csrf="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        self.pane = f"p{person_id}" if person_id else ""

    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, "X-Chat-Pane": self.pane}

    def send(self, client_id: str, text: str = "", **files: tuple[str, bytes, str]
             ) -> httpx.Response:
        return self.client.post("/chat/send", data={"client_id": client_id, "text": text},
                                files=files or None, headers=self.headers())

    def press(self, action: dict[str, Any], client_id: str) -> httpx.Response:
        body = {"client_id": client_id, **{k: action.get(k) for k in
                                           ("action", "case_id", "version", "arg")}}
        return self.client.post("/chat/press", content=json.dumps(body),
                                headers=self.headers())

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        """Everything the stream sends in one bounded connection (web_stream_seconds)."""
        out = []
        with self.client.stream("GET", f"/chat/events?pane={self.pane}&after={after}") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    out.append(json.loads(line[6:]))
        return out


def count(engine: Any, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def resident_and_leader(engine: Any) -> tuple[int, int]:
    with engine.connect() as conn:
        rid = conn.execute(sa.text(
            "SELECT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE n.code = :c AND x.role = 'resident' ORDER BY x.id"), {"c": LIN1}).scalar()
    return int(rid), holder_of(engine, "neighbor_leader", LIN1).person_id


def test_report_with_photo_reaches_leader_and_answer_streams_back(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    rid, lid = resident_and_leader(engine)
    resident, leader = Browser(base, rid), Browser(base, lid)
    r = resident.send("msg-000001", "楼道灯坏了", photo=("a.jpg", jpeg(), "image/jpeg"))
    assert r.status_code == 200, r.text
    assert count(engine, "SELECT count(*) FROM cases") == 1
    card = next(m for m in leader.events() if m["options"].get("card"))
    assert "楼道灯坏了" in card["text"] and "工单#" in card["text"]
    accept = next(a for a in card["actions"] if a["action"] == "accept")
    assert leader.press(accept, "press-000001").status_code == 200
    mine = resident.events()
    photo = next(m for m in mine if m["dir"] == "inbound")["options"]["photo"]
    got = resident.client.get(f"/chat/media/{photo}?pane={resident.pane}")
    assert got.status_code == 200 and got.content[:2] == b"\xff\xd8"
    # The leader replies to the card: reply_to_text names the case.
    r = leader.client.post("/chat/send", headers=leader.headers(), data={
        "client_id": "msg-000002", "text": "明天上午来修", "reply_to_text": card["text"]})
    assert r.status_code == 200
    last = max(m["id"] for m in mine)
    assert any("明天上午来修" in m["text"] for m in resident.events(after=last))
    # The leader's card was edited to the new state (an edit line follows the card).
    assert any(m["edit_of"] == card["id"] for m in leader.events(after=card["id"]))
    # Strangers cannot fetch the photo.
    other = Browser(base)
    assert other.client.get(f"/chat/media/{photo}").status_code == 404


def test_duplicate_client_id_makes_one_case(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    rid, _ = resident_and_leader(engine)
    b = Browser(base, rid)
    first = b.send("dup-123456", "门口井盖松了")
    again = b.send("dup-123456", "门口井盖松了")
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert count(engine, "SELECT count(*) FROM cases") == 1
    assert count(engine, "SELECT count(*) FROM web_message WHERE direction = 'inbound'") == 1


def test_malformed_button_presses_are_refused_and_leave_no_trace(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    rid, _ = resident_and_leader(engine)
    b = Browser(base, rid)
    for n, action in enumerate([
        {"action": "accept", "case_id": 2**40, "version": 1},  # past the database's integers
        {"action": "accept", "case_id": -3, "version": 1},
        {"action": "accept", "case_id": 1, "version": 2**35},
        {"action": "x" * 500, "case_id": 1, "version": 1},
        {"action": "accept", "case_id": "一", "version": 1},
        {"action": "accept", "version": 1},
    ]):
        r = b.press(action, f"bad-press-{n:04d}")
        assert r.status_code == 400 and "按钮" in r.json()["error"], (action, r.text)
    assert count(engine, "SELECT count(*) FROM inbound_update") == 0
    assert count(engine, "SELECT count(*) FROM case_event") == 0


def test_forged_or_missing_csrf_is_refused(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    rid, _ = resident_and_leader(engine)
    b = Browser(base, rid)
    r = b.client.post("/chat/send", data={"client_id": "forged-0001", "text": "x"},
                      headers={"X-CSRF-Token": "forged", "X-Chat-Pane": b.pane})
    assert r.status_code == 403 and "刷新" in r.json()["error"]
    r = b.client.post("/chat/send", data={"client_id": "forged-0002", "text": "x"},
                      headers={"X-Chat-Pane": b.pane})
    assert r.status_code == 403
    anon = httpx.post(f"{base}/chat/send", data={"client_id": "forged-0003", "text": "x"})
    assert anon.status_code == 401
    assert count(engine, "SELECT count(*) FROM cases") == 0
    assert count(engine, "SELECT count(*) FROM inbound_update") == 0


def test_too_large_and_corrupt_photos_lose_nothing(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    rid, _ = resident_and_leader(engine)
    b = Browser(base, rid)
    big = b.send("big-000001", "垃圾桶满了", photo=("b.jpg", b"\xff\xd8" + b"0" * 300_000,
                                                    "image/jpeg"))
    assert big.status_code == 413 and "太大" in big.json()["error"]
    bad = b.send("bad-000001", "路灯不亮",
                 photo=("c.jpg", b"\xff\xd8\xff\xe0garbage", "image/jpeg"))
    assert bad.status_code == 422 and bad.json()["error"]
    # The words still opened (or joined) a case, and the refusals are in the chat.
    with engine.connect() as conn:
        texts = " ".join(conn.execute(sa.text("SELECT text FROM cases")).scalars())
        events = " ".join(conn.execute(sa.text("SELECT note FROM case_event WHERE note IS NOT NULL")
                                       ).scalars())
    assert "垃圾桶满了" in texts and "路灯不亮" in texts + events
    errors = [m for m in b.events() if m["options"].get("error")]
    assert len(errors) == 2


def test_stranger_is_told_how_to_join_and_demo_code_links_phone(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    rid, _ = resident_and_leader(engine)
    with engine.connect() as conn:
        phone = conn.execute(sa.text("SELECT phone FROM person WHERE id = :i"), {"i": rid}).scalar()
    b = Browser(base)
    assert b.send("str-000001", "我家门口路灯坏了").status_code == 200
    assert count(engine, "SELECT count(*) FROM cases") == 0
    ask = [m for m in b.events() if m["options"].get("request_contact")]
    assert ask
    r = b.client.post("/chat/phone", content=json.dumps({"phone": phone}), headers=b.headers())
    code = r.json()["code"]  # demo mode and no other chat: shown on screen
    wrong = b.client.post("/chat/code", content=json.dumps({"code": "000000" if code != "000000"
                                                            else "111111"}), headers=b.headers())
    assert wrong.status_code == 400 and "再试" in wrong.json()["error"]
    ok = b.client.post("/chat/code", content=json.dumps({"code": code}), headers=b.headers())
    assert ok.status_code == 200
    # Joined: the words sent as a stranger became a case.
    assert count(engine, "SELECT count(*) FROM cases") == 1


def test_event_stream_sends_keepalives_and_ends(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    rid, _ = resident_and_leader(engine)
    b = Browser(base, rid)
    lines = []
    with b.client.stream("GET", f"/chat/events?pane={b.pane}") as r:
        lines = list(r.iter_lines())
    assert any(line.startswith(": keep-alive") for line in lines)
    assert httpx.get(f"{base}/chat/events").status_code == 401


def test_demo_switcher_and_poster(web) -> None:  # type: ignore[no-untyped-def]
    base, _ = web
    page = httpx.get(f"{base}/demo")
    assert page.status_code == 200 and page.text.count("<iframe") >= 4
    assert httpx.get(f"{base}/", follow_redirects=False).headers["location"] == "/demo"
    poster = httpx.get(f"{base}/poster/jABC123")
    assert poster.status_code == 200 and "<svg" in poster.text and "/join/jABC123" in poster.text
