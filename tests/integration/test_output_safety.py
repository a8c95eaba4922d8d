"""Output that cannot be turned against its reader, over real HTTP: every answer carries the
security headers, our pages hold no inline script, style or event handler (the policy forbids
them), stored files are served as what they are inside a sandbox, the case page's banner says
only our own sentences, and a file shared by two cases opens for either case's viewers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import accounts
from core.campaigns import links
from core.campaigns.services import start_campaign
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.model import Node, Person, Post
from core.media.store import MediaStore
from core.settings import Settings
from tests.casehelpers import open_case
from tests.cityfactory import City, build_city
from tests.support.server import serve
from webhooks.app import create_app

TILES = "https://{s}.tiles.example:8443/{z}/{x}/{y}.png"
OGG_HTML = b"OggS\x00\x02" + b"<html><script>alert(document.cookie)</script></html>"


def _attach(engine: Engine, clock: FakeClock, case_id: int, ref: str, mime: str,
            kind: str = "photo") -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO case_attachment (case_id, kind, purpose, created_at, stored_ref,"
            " thumb_ref, mime, fetch_status) VALUES (:c, :k, 'report', :t, :r, :r, :m,"
            " 'stored')"), {"c": case_id, "k": kind, "t": clock.now(), "r": ref, "m": mime})


def _third_village(engine: Engine, city: City) -> int:
    """A village of the same town with its own 书记, who sees neither V1 nor V2."""
    with session_scope(engine) as s:
        town = s.get(Node, city.nodes["town"])
        assert town is not None
        v3 = Node(code="341602001003", parent_id=town.id, level="village", name="南关社区",
                  path="/")
        s.add(v3)
        s.flush()
        v3.path = f"{town.path}{v3.id}/"
        person = Person(name="书记老孔", phone="13900000099")
        s.add(person)
        s.flush()
        s.add(Post(person_id=person.id, node_id=v3.id, role="secretary"))
        assert person.id is not None
        return person.id


@pytest.fixture
def site(engine: Engine, db_url: str, tmp_path: Path,
         clock: FakeClock) -> Iterator[dict[str, Any]]:
    city = build_city(engine)
    outsider = _third_village(engine, city)
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url="http://dash.test",
                  demo_mode=True, tile_url=TILES)
    store = MediaStore(st.media_dir)
    case1 = open_case(engine, clock, city, text="路灯坏了")
    case2 = open_case(engine, clock, city, resident="resident4", text="西关的路灯也坏了")
    photo = store.put(b"\xff\xd8\xff\xe0same-photo", "jpg")
    _attach(engine, clock, case1, photo, "image/jpeg")  # the first row names V1's case
    _attach(engine, clock, case2, photo, "image/jpeg")
    ogg = store.put(OGG_HTML, "ogg")
    _attach(engine, clock, case1, ogg, "audio/ogg", kind="voice")
    page = store.put(b"<html><script>alert(1)</script></html>", "bin")
    _attach(engine, clock, case1, page, "text/html", kind="document")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO invite (code, node_id, created_at, uses, revoked)"
                             " VALUES ('jposter1234', :n, :t, 0, false)"),
                     {"n": city.nodes["n1"], "t": clock.now()})
    with session_scope(engine) as s:
        camp = start_campaign(s, node_id=city.nodes["n1"], title="敲门行动", instructions="",
                              outcomes=None, deadline=clock.now() + timedelta(hours=8),
                              started_by=None, clock=clock,
                              households=[(city.nodes["n1"], "1号楼101室")])
        key = links.signing_key(s, settings=st, now=clock.now())
        checklist = links.issue(key=key, campaign=camp, person_id=city.people["leader1"])
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    clients: list[httpx.Client] = []
    with serve(app) as url:
        try:
            yield {"engine": engine, "city": city, "clock": clock, "url": url,
                   "clients": clients, "case1": case1, "case2": case2, "photo": photo,
                   "ogg": ogg, "page": page, "outsider": outsider,
                   "checklist": checklist}
        finally:
            for client in clients:
                client.close()


def _client(site: dict[str, Any], person_id: int | None = None) -> httpx.Client:
    client = httpx.Client(base_url=site["url"], follow_redirects=False, timeout=30)
    site["clients"].append(client)
    if person_id is not None:
        with session_scope(site["engine"]) as s:
            token = accounts.issue_login_token(s, person_id=person_id, now=site["clock"].now(),
                                               ttl=timedelta(minutes=15))
        assert client.get(f"/login/{token}").status_code == 303
    return client


def _pages(site: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) of every kind of answer we give: pages, assets, API, media, errors."""
    case1, photo = site["case1"], site["photo"]
    return [("GET", "/dashboard"), ("GET", "/dashboard?node=341602001001"),
            ("GET", "/dashboard/cases"), ("GET", f"/dashboard/cases/{case1}"),
            ("GET", "/dashboard/figures"), ("GET", "/dashboard/static/dashboard.css"),
            ("GET", "/dashboard/static/geo.js"), ("GET", "/dashboard/static/leaflet/leaflet.js"),
            ("GET", "/api/me"), ("GET", "/api/cases"), ("GET", f"/media/{photo}"),
            ("GET", "/login"), ("GET", "/chat"), ("GET", "/chat/static/chat.js"),
            ("GET", "/chat/static/demo.js"), ("GET", "/demo"), ("GET", "/poster/jposter1234"),
            ("GET", "/healthz"), ("GET", "/openapi.json"), ("GET", "/no/such/page"),
            ("GET", f"/chat/media/{photo}"), ("POST", "/chat/send"),
            ("GET", "/dashboard/export/figures.xlsx"), ("GET", "/dashboard/hotline"),
            ("GET", "/dashboard/hotline?phone=13900000009"),
            ("GET", "/dashboard/hotline?phone=13812345678&place_q=1"),
            ("GET", "/dashboard/static/hotline.js"),
            ("GET", f"/checklist/{site['checklist']}"), ("GET", "/checklist/static/checklist.css"),
            ("GET", "/checklist/1.2.3.forgedforgedforgedforged")]


def test_every_answer_carries_the_security_headers(site: dict[str, Any]) -> None:
    admin = _client(site, site["city"]["town_admin"])
    for method, path in [*_pages(site), ("GET", "/")]:
        r = admin.request(method, path)
        assert r.status_code < 500, (path, r.status_code)
        h = r.headers
        assert h.get("x-content-type-options") == "nosniff", path
        assert h.get("referrer-policy") == "same-origin", path
        csp = {d.split(" ", 1)[0]: d for d in h.get("content-security-policy", "").split("; ")}
        if path.startswith(("/media/", "/chat/media/")):
            assert "sandbox" in csp and csp["default-src"] == "default-src 'none'", path
            assert "script-src" not in csp, path
            continue
        assert csp["script-src"] == "script-src 'self'", path
        assert "unsafe" not in csp["style-src"] and csp["object-src"] == "object-src 'none'"
        assert csp["connect-src"] == "connect-src 'self'", path
        # The map's tile server, whatever subdomain Leaflet picks.
        assert csp["img-src"] == "img-src 'self' data: https://*.tiles.example:8443", path
        # Only the chat page may be framed, and only by our own /demo.
        framed = path == "/chat"
        assert csp["frame-ancestors"] == ("frame-ancestors 'self'" if framed
                                          else "frame-ancestors 'none'"), path
        assert h.get("x-frame-options") == ("SAMEORIGIN" if framed else "DENY"), path


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I)
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
STYLE = re.compile(r"<style|\sstyle\s*=", re.I)


def test_our_pages_hold_no_inline_script_style_or_handler(site: dict[str, Any]) -> None:
    admin = _client(site, site["city"]["town_admin"])
    html_pages = 0
    for method, path in _pages(site):
        r = admin.request(method, path)
        if not r.headers.get("content-type", "").startswith("text/html"):
            continue
        html_pages += 1
        for what in (INLINE_SCRIPT, HANDLER, STYLE):
            assert not what.search(r.text), (path, what.search(r.text))
    assert html_pages >= 9


def test_stored_files_are_served_as_what_they_are_inside_a_sandbox(
        site: dict[str, Any]) -> None:
    admin = _client(site, site["city"]["town_admin"])
    # An OggS-headed web page stored as a voice note: audio, never sniffed into a page.
    r = admin.get(f"/media/{site['ogg']}")
    assert r.status_code == 200 and r.content == OGG_HTML
    assert r.headers["content-type"] == "audio/ogg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    # A file recorded as HTML is a download, not a page of ours.
    r = admin.get(f"/media/{site['page']}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == "attachment"


def test_the_case_banner_says_only_our_own_sentences(site: dict[str, Any]) -> None:
    sec = _client(site, site["city"]["secretary"])
    case1 = site["case1"]
    for crafted in ({"msg": "<script>alert(1)</script>"}, {"msg": "任意文字：请拨打 110"},
                    {"ok": "任意文字：已完成"}, {"msg": "conflict<b>"}):
        page = sec.get(f"/dashboard/cases/{case1}", params=crafted).text
        assert 'class="error"' not in page and 'class="ok"' not in page, crafted
        assert "任意文字" not in page and "alert(1)" not in page, crafted
    # Our own redirects carry a key; the page turns it into the sentence.
    token = sec.get("/api/me").json()["csrf_token"]
    done = sec.post(f"/dashboard/cases/{case1}/accept", data={"version": "1", "csrf": token})
    assert done.headers["location"] == f"/dashboard/cases/{case1}?ok=accept"
    assert '<p class="ok">受理：已完成</p>' in sec.get(done.headers["location"]).text
    stale = sec.post(f"/dashboard/cases/{case1}/reply",
                     data={"version": "1", "csrf": token, "text": "马上处理"})
    assert stale.headers["location"] == f"/dashboard/cases/{case1}?msg=stale_action"
    shown = sec.get(stale.headers["location"]).text
    assert '<p class="error">这个工单刚有了新的变化' in shown


def test_a_file_of_two_cases_opens_for_either_cases_viewers(site: dict[str, Any]) -> None:
    city, photo = site["city"], site["photo"]
    first, second = _client(site, city["secretary"]), _client(site, city["secretary2"])
    outsider = _client(site, site["outsider"])
    assert first.get(f"/media/{photo}").status_code == 200
    r = second.get(f"/media/{photo}")  # his own case's photo, though V1's row comes first
    assert r.status_code == 200 and r.content == b"\xff\xd8\xff\xe0same-photo"
    assert f'src="/media/{photo}"' in second.get(f"/dashboard/cases/{site['case2']}").text
    assert outsider.get(f"/media/{photo}").status_code == 404
    assert outsider.get(f"/media/{site['ogg']}").status_code == 404
    assert second.get(f"/media/{site['ogg']}").status_code == 404  # only V1's case has it


def test_a_web_chat_photo_is_served_as_a_picture_inside_a_sandbox(site: dict[str, Any]) -> None:
    import io
    import json

    from PIL import Image

    resident = site["city"]["resident1"]
    chat = _client(site)
    page = chat.get(f"/chat?as={resident}")
    token = re.search(r'data-csrf="([^"]+)"', page.text)
    assert token is not None
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG")
    sent = chat.post("/chat/send", data={"client_id": "msg-out-0001", "text": "路灯坏了"},
                     files={"photo": ("a.jpg", buf.getvalue(), "image/jpeg")},
                     headers={"X-CSRF-Token": token.group(1), "X-Chat-Pane": f"p{resident}"})
    assert sent.status_code == 200, sent.text
    with site["engine"].connect() as conn:
        rows = conn.execute(sa.text("SELECT options FROM web_message")).scalars().all()
    options = [o if isinstance(o, dict) else json.loads(o or "{}") for o in rows]
    ref = next(o["photo"] for o in options if o and o.get("photo"))
    r = chat.get(f"/chat/media/{ref}", params={"pane": f"p{resident}"})
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
