"""The dashboard and its JSON API over the ASGI app: sign-in, subtree scoping across two towns,
the warning map, cases, actions, figures and XLSX exports."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatch import process
from bot.flows.types import Inbound
from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.model import Node, Person, Post
from core.media.store import MediaStore
from core.rollup.refresh import refresh
from core.settings import Settings
from tests.casehelpers import HOUR, advance_and_sweep, open_case
from tests.cityfactory import City, build_city
from tests.support.server import serve
from webhooks.app import create_app

_ids = itertools.count(1)


def _settings(tmp_path: Path, db_url: str, **kw: Any) -> Settings:
    return Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                    media_dir=str(tmp_path / "media"), public_url="http://dash.test",
                    warn_red_overdue=2, warn_orange_overdue=2, **kw)


class Town2:
    """A second town under the district, with its own admin, village and a resident's case."""

    def __init__(self, engine: Engine, city: City) -> None:
        with session_scope(engine) as s:
            district = s.get(Node, city.nodes["district"])
            assert district is not None
            ids = {}
            parent = district
            for key, code, level, name in [("town2", "341602002", "town", "古井镇"),
                                           ("v9", "341602002001", "village", "古井村")]:
                node = Node(code=code, parent_id=parent.id, level=level, name=name, path="/")
                s.add(node)
                s.flush()
                node.path = f"{parent.path}{node.id}/"
                ids[key] = node.id
                parent = node
            admin = Person(name="古井镇管理员", phone="13800000001")
            secretary = Person(name="古井村书记", phone="13800000002")
            s.add_all([admin, secretary])
            s.flush()
            s.add(Post(person_id=admin.id, node_id=ids["town2"], role="admin"))
            s.add(Post(person_id=secretary.id, node_id=ids["v9"], role="secretary"))
            self.admin, self.secretary = admin.id, secretary.id
        city.nodes.update(ids)


@pytest.fixture
def world(engine: Engine, db_url: str, tmp_path: Path,
          clock: FakeClock) -> Iterator[dict[str, Any]]:
    city = build_city(engine)
    town2 = Town2(engine, city)
    st = _settings(tmp_path, db_url)
    container = build_container(st, clock=clock, engine=engine)
    app = create_app(st, clock=clock, container=container, run_jobs=False)
    clients: list[httpx.Client] = []
    with serve(app) as url:
        try:
            yield {"engine": engine, "city": city, "town2": town2, "settings": st, "app": app,
                   "clock": clock, "url": url, "clients": clients}
        finally:
            for client in clients:
                client.close()


def browser(w: dict[str, Any]) -> httpx.Client:
    client = httpx.Client(base_url=w["url"], follow_redirects=False, timeout=30)
    w["clients"].append(client)
    return client


def client_for(w: dict[str, Any], person_id: int) -> httpx.Client:
    """A browser signed in through a one-time link."""
    with session_scope(w["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=person_id, now=w["clock"].now(),
                                           ttl=timedelta(minutes=15))
    client = browser(w)
    r = client.get(f"/login/{token}")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    return client


def csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}


def test_login_link_is_single_use_expires_and_is_only_for_leaders(
        world: dict[str, Any]) -> None:
    w, city = world, world["city"]
    with session_scope(w["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=city["town_admin"],
                                           now=w["clock"].now(), ttl=timedelta(minutes=15))
        late = accounts.issue_login_token(s, person_id=city["secretary"],
                                          now=w["clock"].now(), ttl=timedelta(minutes=15))
        with pytest.raises(accounts.PermissionDenied):
            accounts.issue_login_token(s, person_id=city["resident1"], now=w["clock"].now(),
                                       ttl=timedelta(minutes=15))
    anon = browser(w)
    assert anon.get("/dashboard").headers["location"] == "/login"
    assert anon.get("/api/map").status_code == 401
    first = anon.get(f"/login/{token}")
    assert first.status_code == 303 and "lz_dash" in first.cookies
    again = browser(w).get(f"/login/{token}")
    assert again.status_code == 403 and "/login" in again.text
    w["clock"].advance(timedelta(minutes=16))
    assert browser(w).get(f"/login/{late}").status_code == 403
    assert anon.get("/api/me").json()["name"] == "镇管理员"


def test_password_set_by_admin_then_form_sign_in(world: dict[str, Any]) -> None:
    w, city = world, world["city"]
    admin = client_for(w, city["town_admin"])
    r = admin.post("/api/passwords", json={"phone": "13900000004", "password": "shuji-2026"})
    assert r.status_code == 422 or r.status_code == 403  # no CSRF header: refused
    r = admin.post("/api/passwords", json={"phone": "13900000004", "password": "shuji-2026"},
                   headers=csrf(admin))
    assert r.status_code == 200, r.text
    # The other town's admin may not set passwords for this town's 书记.
    other = client_for(w, w["town2"].admin)
    r = other.post("/api/passwords", json={"phone": "13900000004", "password": "x" * 9},
                   headers=csrf(other))
    assert r.status_code == 403
    b = browser(w)
    bad = b.post("/login", data={"phone": "13900000004", "password": "wrong-one"})
    assert bad.status_code == 403 and "不正确" in bad.text
    ok = b.post("/login", data={"phone": "13900000004", "password": "shuji-2026"})
    assert ok.status_code == 303
    assert b.get("/api/me").json()["scopes"][0]["code"] == "341602001001"
    me = b.get("/api/me").json()
    out = b.post("/logout", data={"csrf": me["csrf_token"]})
    assert out.status_code == 303 and b.get("/api/me").status_code == 401


def test_password_guessing_is_slowed_down_per_phone_and_per_address(
        world: dict[str, Any]) -> None:
    w, city, clock = world, world["city"], world["clock"]
    admin = client_for(w, city["town_admin"])
    assert admin.post("/api/passwords", json={"phone": "13900000004", "password": "shuji-2026"},
                      headers=csrf(admin)).status_code == 200
    b = browser(w)
    for i in range(5):
        r = b.post("/login", data={"phone": "13900000004", "password": f"guess-{i}"})
        assert r.status_code == 403
    # The sixth try is refused unchecked, even with the right password, and says for how long.
    r = b.post("/login", data={"phone": "13900000004", "password": "shuji-2026"})
    assert r.status_code == 429 and "尝试次数过多" in r.text
    assert 60 <= int(r.headers["retry-after"]) <= 15 * 60 + 1
    assert b.get("/api/me").status_code == 401
    with Session(w["engine"]) as s:
        stored = s.execute(sa.text("SELECT key_hash FROM login_failure")).scalars().all()
    assert stored and not any("13900000004" in k or "127.0.0.1" in k for k in stored)
    clock.advance(timedelta(minutes=16))
    assert b.post("/login", data={"phone": "13900000004",
                                  "password": "shuji-2026"}).status_code == 303
    # One address trying many phone numbers is stopped too (30 failures in the window).
    other = browser(w)
    for i in range(30):
        assert other.post("/login", data={"phone": f"1380000{i:04d}",
                                          "password": "x" * 8}).status_code == 403
    assert other.post("/login", data={"phone": "13900000004",
                                      "password": "shuji-2026"}).status_code == 429
    # Guessing login links counts against the address as well.
    assert other.get("/login/not-a-real-token").status_code == 429


def test_every_page_and_call_stays_inside_the_viewers_subtree(world: dict[str, Any]) -> None:
    w, city, clock = world, world["city"], world["clock"]
    case_id = open_case(w["engine"], clock, city)  # in town 1, village V1
    town1, town2 = client_for(w, city["town_admin"]), client_for(w, w["town2"].admin)
    sec2 = client_for(w, city["secretary2"])  # 书记 of V2, same town as the case
    assert town1.get(f"/api/cases/{case_id}").status_code == 200
    for c in (town2, sec2):
        assert c.get(f"/api/cases/{case_id}").status_code == 404
        assert c.get(f"/dashboard/cases/{case_id}").status_code == 404
        assert c.get("/api/map", params={"node": "341602001001"}).status_code == 403
        assert c.get("/dashboard", params={"node": "341602001001"}).status_code == 403
        assert c.get("/api/cases", params={"node": "341602001001"}).status_code == 403
        assert c.get("/api/figures", params={"node": "341602001001"}).status_code == 403
        r = c.post(f"/api/cases/{case_id}/accept", json={"version": 1}, headers=csrf(c))
        assert r.status_code == 404
    assert town2.get("/api/map", params={"node": "341602001"}).status_code == 403
    assert town2.get("/api/cases").json()["items"] == []
    assert sec2.get("/api/cases").json()["items"] == []
    # The district admin sees both towns.
    district = client_for(w, city["district_admin"])
    got = district.get("/api/map")
    assert got.status_code == 200, got.text
    codes = {t["node"]["code"] for t in got.json()["tiles"]}
    assert codes == {"341602001", "341602002"}


def test_map_turns_the_village_red_once_its_cases_go_overdue(world: dict[str, Any]) -> None:
    w, city, clock = world, world["city"], world["clock"]
    for i in range(3):
        open_case(w["engine"], clock, city, text=f"路灯坏了{i}")
    town = client_for(w, city["town_admin"])
    before = town.get("/api/map").json()
    assert before["node"]["code"] == "341602001"
    v1 = next(t for t in before["tiles"] if t["node"]["code"] == "341602001001")
    assert (v1["level"], v1["unresolved"], v1["overdue"]) == ("green", 3, 0)
    # Each tile holds its own children's colours: the village shows its 片.
    assert [(m["node"]["code"], m["level"], m["unresolved"]) for m in v1["inside"]] == [
        ("34160200100101", "green", 3)]
    assert before["thresholds"]["overdue"] == [1, 2, 2]
    # Nobody answers: the sweep escalates up to the top of the chain, then they are overdue.
    advance_and_sweep(w["engine"], clock, 30 * HOUR, step=HOUR)
    # At the top of the chain the sweep renews the deadline on every pass (core/cases/sweep.py
    # _overdue_at_top), so a case counts as overdue between its deadline and the next pass:
    # look at the map after the deadline, before the sweep catches up.
    clock.advance(5 * HOUR)
    assert town.get("/api/map").status_code == 401  # the 12 h session ran out meanwhile
    town = client_for(w, city["town_admin"])
    after = town.get("/api/map").json()
    v1 = next(t for t in after["tiles"] if t["node"]["code"] == "341602001001")
    v2 = next(t for t in after["tiles"] if t["node"]["code"] == "341602001002")
    assert (v1["level"], v1["overdue"], v2["level"]) == ("red", 3, "green"), after
    page = town.get("/dashboard").text
    assert 'data-code="341602001001" data-level="red"' in page and "图例" in page
    assert [(m["node"]["code"], m["level"], m["overdue"]) for m in v1["inside"]] == [
        ("34160200100101", "red", 3)]
    assert '<i class="mini red" data-code="34160200100101"' in page
    assert '<i class="mini green" data-code="34160200100201"' in page  # v2's 片: nothing late
    # The district's map: each town tile shows its villages.
    district = client_for(w, city["district_admin"]).get("/api/map").json()
    t1 = next(t for t in district["tiles"] if t["node"]["code"] == "341602001")
    assert [(m["node"]["code"], m["level"]) for m in t1["inside"]] == [
        ("341602001001", "red"), ("341602001002", "green")]
    # Drill down: village → area, with breadcrumbs back up.
    down = town.get("/dashboard", params={"node": "341602001001"}).text
    assert 'data-code="34160200100101"' in down and 'href="/dashboard?node=341602001"' in down
    api = town.get("/api/map", params={"node": "34160200100101"}).json()
    assert [b["code"] for b in api["breadcrumbs"]] == ["341602001", "341602001001",
                                                       "34160200100101"]


def test_timeline_says_why_the_sweep_escalated(world: dict[str, Any]) -> None:
    """The sweep records which deadline passed, not a sentence; the dashboard words it."""
    w, city, clock = world, world["city"], world["clock"]
    case_id = open_case(w["engine"], clock, city, text="楼道灯不亮")
    advance_and_sweep(w["engine"], clock, 30 * HOUR, step=HOUR)
    town = client_for(w, city["town_admin"])
    page = town.get(f"/dashboard/cases/{case_id}").text
    assert "转交上级：超时未答复，自动转上级" in page, page
    notes = [e["note"] for e in town.get(f"/api/cases/{case_id}").json()["events"]
             if e["kind"] == "escalated"]
    assert notes and all(n and n.startswith("超时未答复，自动转上级") for n in notes), notes


def test_cases_list_filters_paginates_and_acts_with_versions(world: dict[str, Any]) -> None:
    w, city, clock = world, world["city"], world["clock"]
    ids = []
    for i in range(5):
        ids.append(open_case(w["engine"], clock, city, text=f"问题{i}"))
        clock.advance(timedelta(minutes=1))
    ids.append(open_case(w["engine"], clock, city, resident="resident4", text="西关的问题"))
    sec = client_for(w, city["secretary"])  # 书记 of V1: sees V1's five
    page1 = sec.get("/api/cases", params={"limit": 2}).json()
    assert [c["id"] for c in page1["items"]] == ids[4:2:-1]
    page2 = sec.get("/api/cases", params={"limit": 2, "before": page1["next_before"]}).json()
    page3 = sec.get("/api/cases", params={"limit": 2, "before": page2["next_before"]}).json()
    assert [c["id"] for c in page2["items"] + page3["items"]] == ids[2::-1]
    assert page3["next_before"] is None
    assert sec.get("/api/cases", params={"state": "closed"}).json()["items"] == []
    assert len(sec.get("/api/cases", params={"state": "open"}).json()["items"]) == 5
    html = sec.get("/dashboard/cases", params={"overdue": 1}).text
    assert "没有符合条件的工单" in html
    # Act from the case page: a form post with the version the page showed.
    page = sec.get(f"/dashboard/cases/{ids[0]}").text
    assert "处理记录" in page and 'name="version" value="1"' in page
    form = {"version": "1", "csrf": sec.get("/api/me").json()["csrf_token"]}
    r = sec.post(f"/dashboard/cases/{ids[0]}/accept", data=form)
    assert r.status_code == 303 and "ok=" in r.headers["location"]
    stale = sec.post(f"/dashboard/cases/{ids[0]}/reply", data={**form, "text": "马上处理"})
    assert "msg=" in stale.headers["location"]
    shown = sec.get(stale.headers["location"]).text
    assert 'class="error"' in shown
    no_csrf = sec.post(f"/dashboard/cases/{ids[0]}/accept", data={"version": "2"})
    assert no_csrf.status_code == 403
    # The API: reply with the current version, then a stale one is a 409.
    detail = sec.get(f"/api/cases/{ids[0]}").json()
    assert detail["state"] == "accepted" and detail["may_act"]
    r = sec.post(f"/api/cases/{ids[0]}/reply", headers=csrf(sec),
                 json={"version": detail["version"], "text": "明天上午清理"})
    assert r.status_code == 200 and r.json()["events"][-1]["kind"] == "replied"
    r = sec.post(f"/api/cases/{ids[0]}/reply", headers=csrf(sec),
                 json={"version": 1, "text": "旧页面上的答复"})
    assert r.status_code == 409
    held = r_holders(sec, ids[0])
    assert [(h["name"], h["role"]) for h in held] == [("邻长小赵", "neighbor_leader"),
                                                      ("书记老王", "secretary")]


def r_holders(client: httpx.Client, case_id: int) -> list[dict[str, Any]]:
    return client.get(f"/api/cases/{case_id}").json()["holders"]  # type: ignore[no-any-return]


def test_figures_ranking_and_xlsx_exports(world: dict[str, Any], tmp_path: Path) -> None:
    from openpyxl import load_workbook

    w, city, clock = world, world["city"], world["clock"]
    for i in range(3):
        open_case(w["engine"], clock, city, text=f"问题{i}")
    town = client_for(w, city["town_admin"])
    # A town's figures come from the daily rollups, as of their last refresh.
    f = town.get("/api/figures").json()
    assert (f["received"], f["from_rollup"], f["as_of"]) == (0, True, None)
    assert "尚未汇总" in town.get("/dashboard/figures").text
    refresh(w["engine"], clock=clock, tz=ZoneInfo("Asia/Shanghai"))
    f = town.get("/api/figures").json()
    assert f["from_rollup"] and f["as_of"] is not None
    # The default range is the last 30 days: its weeks, Monday to Sunday.
    assert f["received"] == 3 and f["closed"] == 0 and len(f["weeks"]) in (5, 6)
    assert "数据截至" in town.get("/dashboard/figures").text
    village = client_for(w, city["secretary"]).get("/api/figures").json()
    assert (village["received"], village["from_rollup"]) == (3, False)
    assert f["weeks"][-1]["received"] == 3
    rk = town.get("/api/ranking").json()
    assert rk["level"] == "village" and rk["min_cases"] == 10
    assert rk["ranked"] == [] and {x["node"]["code"] for x in rk["too_few"]} == {
        "341602001001", "341602001002"}
    assert "考核排名" in town.get("/dashboard/figures").text
    for kind, sheet in (("figures", "概况"), ("weekly", "周趋势"), ("ranking", "考核排名")):
        r = town.get(f"/dashboard/export/{kind}.xlsx")
        assert r.status_code == 200 and r.headers["content-type"].endswith("sheet")
        wb = load_workbook(io.BytesIO(r.content))
        assert sheet in wb.sheetnames
        assert town.get(f"/api/export/{kind}.xlsx").status_code == 200
    summary = load_workbook(io.BytesIO(town.get("/dashboard/export/figures.xlsx").content))["概况"]
    assert [summary.cell(5, 1).value, summary.cell(5, 2).value] == ["收到", 3]


def test_media_is_served_only_inside_the_subtree(world: dict[str, Any]) -> None:
    w, city, clock = world, world["city"], world["clock"]
    case_id = open_case(w["engine"], clock, city)
    store = MediaStore(w["settings"].media_dir)
    ref = store.put(b"\xff\xd8\xff\xe0fake-jpeg", "jpg")
    with Session(w["engine"]) as s, s.begin():
        s.execute(sa.text(
            "INSERT INTO case_attachment (case_id, kind, purpose, created_at, stored_ref,"
            " thumb_ref, mime, fetch_status) VALUES (:c, 'photo', 'report', :t, :r, :r,"
            " 'image/jpeg', 'stored')"), {"c": case_id, "t": clock.now(), "r": ref})
    town1, town2 = client_for(w, city["town_admin"]), client_for(w, w["town2"].admin)
    assert town1.get(f"/media/{ref}").content == b"\xff\xd8\xff\xe0fake-jpeg"
    assert f'src="/media/{ref}"' in town1.get(f"/dashboard/cases/{case_id}").text
    assert town2.get(f"/media/{ref}").status_code == 404
    assert browser(w).get(f"/media/{ref}").status_code == 303


def test_openapi_describes_the_api(world: dict[str, Any]) -> None:
    doc = browser(world).get("/openapi.json").json()
    for path in ("/api/me", "/api/map", "/api/cases", "/api/cases/{case_id}", "/api/figures",
                 "/api/ranking", "/api/passwords", "/api/cases/{case_id}/{action}"):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    assert {"MapOut", "TileOut", "CaseOut", "FiguresOut", "RankingOut"} <= set(schemas)
    assert "/dashboard" not in doc["paths"]


def test_bot_login_command_sends_a_one_time_link(world: dict[str, Any]) -> None:
    w, city = world, world["city"]
    with w["engine"].begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', '7001', false)"),
                     {"p": city["secretary"]})
    uid = str(next(_ids)) + "login"
    inbound = Inbound(platform="telegram", update_id=uid, chat_id="7001", sender_id="7001",
                      received_at=w["clock"].now(), command="login")
    assert process(w["engine"], inbound=inbound, payload={"update_id": uid}, clock=w["clock"],
                   settings=w["settings"])
    with w["engine"].connect() as conn:
        text = conn.execute(sa.text("SELECT text FROM outbox WHERE dedupe_key LIKE :k"),
                            {"k": f"in:telegram:{uid}:%"}).scalar_one()
    link = next(x for x in text.split() if x.startswith("http://dash.test/login/"))
    b = browser(w)
    assert b.get(link.removeprefix("http://dash.test")).status_code == 303
    assert b.get("/api/me").json()["name"] == "书记老王"
    json.dumps(text)
