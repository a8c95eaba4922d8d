"""Who may do what, tried exhaustively through the public interfaces: every role, inside and
outside the case's subtree, × every case action and admin command in chat (bot/dispatch), and ×
every dashboard action (/api). The expected table is written from the design's rules
(DESIGN.md, README "In chat" / "Dashboard"), not read from the code under test:

- a case is acted on (受理/答复/办结/转上级/驳回/合并) by its holder, anyone leading the holder's
  node from above (组长, 片长, 书记) and admins of its subtree; 吹哨 only by a 书记 or a town /
  district office; confirming, rating and reopening only by the resident who reported it;
- admin commands (/stats /find /assign /bind /unbind /import /export with a node) are for
  admins of that node's subtree; /cases /overdue /case /invite for leaders and admins;
- the dashboard is for 书记, town and district admins, each inside their own subtree;
- a post is given (/assign, or a row of a chat /import) only by an admin of a node at or above
  it, and only when it ranks below that admin (district admin > town admin > village admin /
  书记 > 片长 > 组长 > 邻长 > resident; a department as a village): a town admin appoints
  书记 and below in their town, never an admin on their own town or above;
- a dashboard password is set (/api/passwords) only for oneself or for a 书记 or admin below
  the setter, and every refusal is the same 403; exports cover only the caller's subtree.

A refusal is a polite reply (“抱歉…”) or 403/404, and leaves no trace: the case's state,
version and holder are unchanged and its only new event is the recorded refusal; a refused
command leaves the hierarchy tables as they were and sends nothing to anyone else."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound, Media, Press
from core import accounts
from core.cases import actions as case_actions
from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate, session_scope
from core.errors import PermissionDenied
from core.hierarchy.model import ChatBinding, Node, Person
from core.media.store import MediaStore
from core.settings import Settings
from tests.casehelpers import do, open_case, settings
from tests.citydata import MEMBER_HEADER, dump
from tests.cityfactory import City, add_person, build_city
from tests.support.server import serve
from webhooks.app import create_app

# role → (the person inside the case's subtree, one outside it)
ROLES = {
    "resident": ("resident1", "resident4"),
    "neighbor_leader": ("leader1", "leader3"),
    "group_leader": ("group_leader", "group_leader_v2"),
    "area_leader": ("area_leader", "area_leader_v2"),
    "secretary": ("secretary", "secretary2"),
    "town_admin": ("town_admin", "town2_admin"),
    "district_admin": ("district_admin", "district2_admin"),
}
LEADERS = {"neighbor_leader", "group_leader", "area_leader", "secretary"}
ADMINS = {"town_admin", "district_admin"}
ALL = set(ROLES)

# Who may, inside the subtree (outside it: nobody, except where OUTSIDE says otherwise).
CASE_RULES: dict[str, set[str]] = {
    "accept": LEADERS | ADMINS, "reply": LEADERS | ADMINS, "resolve": LEADERS | ADMINS,
    "escalate": LEADERS | ADMINS, "reject": LEADERS | ADMINS,
    "whistle": {"secretary"} | ADMINS,
    "confirm": {"resident"}, "not_fixed": {"resident"},
}
COMMAND_RULES: dict[str, set[str]] = {
    "stats": ADMINS, "find": ADMINS, "assign": ADMINS, "bind": ADMINS, "unbind": ADMINS,
    "import": ADMINS, "export": ADMINS,
    "cases": LEADERS | ADMINS, "overdue": LEADERS | ADMINS, "case": LEADERS | ADMINS,
    "invite": LEADERS | ADMINS,
}
# Commands without a node of the case's subtree act on the sender's own subtree: an admin
# elsewhere may run them (and sees only their own), a /cases elsewhere lists nothing of ours.
OUTSIDE: dict[str, set[str]] = {"import": ADMINS, "export": ADMINS, "find": ADMINS,
                                "cases": LEADERS | ADMINS, "overdue": LEADERS | ADMINS}
API_RULES: dict[str, set[str]] = {
    "accept": {"secretary"} | ADMINS, "reply": {"secretary"} | ADMINS,
    "resolve": {"secretary"} | ADMINS, "escalate": {"secretary"} | ADMINS,
    "reject": {"secretary"} | ADMINS, "whistle": {"secretary"} | ADMINS,
    "merge": {"secretary"} | ADMINS,
}
DASHBOARD_ROLES = {"secretary"} | ADMINS

_ids = itertools.count(1)


@dataclass
class World:
    engine: Engine
    city: City
    clock: FakeClock
    settings: Settings
    tg: dict[str, str] = field(default_factory=dict)  # person key → telegram id
    url: str = ""


def _extend(engine: Engine, city: City) -> None:
    """Leaders of V2, a second town and a second district, each with an admin."""
    add_person(engine, city, key="group_leader_v2", role="group_leader", node="g2")
    add_person(engine, city, key="area_leader_v2", role="area_leader", node="a2")
    with session_scope(engine) as s:
        district = s.get(Node, city.nodes["district"])
        assert district is not None
        town2 = Node(code="341602009", parent_id=district.id, level="town", name="二镇", path="/")
        district2 = Node(code="341603", parent_id=None, level="district", name="二区", path="/")
        s.add_all([town2, district2])
        s.flush()
        town2.path, district2.path = f"{district.path}{town2.id}/", f"/{district2.id}/"
        city.nodes.update({"town2": town2.id or 0, "district2": district2.id or 0})
    add_person(engine, city, key="town2_admin", role="admin", node="town2")
    add_person(engine, city, key="district2_admin", role="admin", node="district2")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    url = f"sqlite:///{tmp / 'matrix.db'}"
    engine = make_engine(url)
    migrate(engine)
    city = build_city(engine)
    _extend(engine, city)
    st = settings(database_url=url, media_dir=str(tmp / "media"), public_url="http://x.test")
    w = World(engine, city, FakeClock(), st)
    with engine.begin() as conn:
        for key, pid in city.people.items():
            w.tg[key] = str(900_000 + pid)
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'telegram', :e, false)"),
                         {"p": pid, "e": w.tg[key]})
    app = create_app(st, clock=w.clock, container=build_container(st, clock=w.clock,
                                                                  engine=engine),
                     run_jobs=False)
    with serve(app) as base:
        w.url = base
        yield w
    engine.dispose()


def people(role: str, inside: bool) -> str:
    return ROLES[role][0 if inside else 1]


def fresh_case(w: World, *, resolved: bool = False, clear: bool = True) -> int:
    w.clock.advance(timedelta(minutes=11))  # never appended to the previous test's case
    with w.engine.begin() as conn:
        if not clear:
            conn.execute(sa.text("SELECT 1"))
        else:  # earlier tests' cases out of the way of /cases listings
            conn.execute(sa.text("UPDATE cases SET state = 'closed', next_due_at = NULL"
                                 " WHERE state IN ('open', 'accepted', 'resolved')"))
    case_id = open_case(w.engine, w.clock, w.city, text="楼道垃圾堆积", category="环境保护")
    if resolved:
        do(w.engine, case_actions.resolve, clock=w.clock, case_id=case_id,
           person_id=w.city["leader1"], version=1)
    return case_id


def chat(w: World, who: str, *, chat_id: str | None = None, **fields: Any) -> list[str]:
    """One message from `who` in chat; the texts of everything it made the bot send."""
    uid = f"m{next(_ids)}"
    tg = w.tg[who]
    private = chat_id is None
    inbound = Inbound(platform="telegram", update_id=uid, chat_id=chat_id or tg, sender_id=tg,
                      received_at=w.clock.now(), chat_is_private=private, message_id=uid,
                      **fields)
    assert process(w.engine, inbound=inbound, payload={"update_id": uid}, clock=w.clock,
                   settings=w.settings)
    with w.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT text FROM outbox WHERE dedupe_key LIKE :k"
                                         " ORDER BY id"), {"k": f"in:telegram:{uid}:%"})
                    .scalars())


def case_state(w: World, case_id: int) -> tuple[Any, ...]:
    with w.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT state, version, holder_id FROM cases WHERE id = :c"),
                           {"c": case_id}).one()
        events = conn.execute(sa.text("SELECT kind FROM case_event WHERE case_id = :c"
                                      " AND kind <> 'refused' ORDER BY id"),
                              {"c": case_id}).scalars().all()
        others = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE case_id = :c"
                                      " AND address IS NULL"),
                              {"c": case_id}).scalar_one()
    return (*row, tuple(events), others)


def refusals(w: World, case_id: int) -> int:
    with w.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM case_event WHERE case_id = :c"
                                        " AND kind = 'refused'"), {"c": case_id}).scalar_one())


def refused(replies: list[str]) -> bool:
    return any(r.startswith(("抱歉", "Sorry")) for r in replies)


MATRIX = [(role, inside) for role in ROLES for inside in (True, False)]


def _ids_of(role: str, inside: bool) -> str:
    return f"{role}-{'inside' if inside else 'outside'}"


@pytest.mark.parametrize("action", list(CASE_RULES))
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_case_actions_in_chat(world: World, role: str, inside: bool, action: str) -> None:
    w, who = world, people(role, inside)
    case_id = fresh_case(w, resolved=action in ("confirm", "not_fixed"))
    before, version = case_state(w, case_id), case_state(w, case_id)[1]
    arg = "5" if action == "confirm" else None
    replies = chat(w, who, press=Press(action, case_id, version, arg=arg, query_id="q"))
    if action in ("reply", "escalate", "reject"):
        assert not refused(replies)  # the prompt for words comes first; the words act
        replies = chat(w, who, text="需要上级协调处理")
    allowed = inside and role in CASE_RULES[action]
    if allowed:
        assert not refused(replies), replies
        assert case_state(w, case_id)[1] > version, "the case did not move"
    else:
        assert refused(replies), replies
        assert case_state(w, case_id) == before
        assert refusals(w, case_id) == 1


def _command(w: World, name: str, inside: bool) -> tuple[dict[str, Any], str | None]:
    """The message that runs `name` on the case's subtree (or, for the outside test, the
    same message: the sender is the one outside)."""
    c = w.city
    code = {n: code for n, code in [("v1", "341602001001"), ("g1", "3416020010010101"),
                                    ("n1", "3416020010010101001"),
                                    ("n2", "3416020010010101002")]}
    if name == "stats":
        return {"command": "stats", "args": (code["v1"],)}, None
    if name == "find":
        return {"command": "find", "args": ("居民孙",)}, None
    if name == "assign":
        return {"command": "assign", "args": ("13900000010", "neighbor_leader", code["n2"])}, None
    if name == "bind":
        return {"command": "bind", "args": (code["g1"],)}, f"-77{next(_ids)}"
    if name == "unbind":
        chat_id = f"-88{next(_ids)}"
        with session_scope(w.engine) as s:
            s.add(ChatBinding(platform="telegram", chat_id=chat_id, node_id=c.nodes["g1"],
                              tier="group_neighbor"))
        return {"command": "unbind"}, chat_id
    if name == "invite":
        return {"command": "invite", "args": (code["n1"],)}, None
    return {"command": name}, None  # import, export, cases, overdue; case gets its id below


@pytest.mark.parametrize("command", list(COMMAND_RULES))
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_admin_and_leader_commands_in_chat(world: World, role: str, inside: bool,
                                           command: str) -> None:
    w, who = world, people(role, inside)
    case_id = fresh_case(w)
    fields, group = _command(w, command, inside)
    if command == "case":
        fields["args"] = (str(case_id),)
    tables, case = dump(w.engine), case_state(w, case_id)
    replies = chat(w, who, chat_id=group, **fields)
    allowed = role in (COMMAND_RULES[command] if inside else OUTSIDE.get(command, set()))
    if allowed:
        assert not refused(replies), replies
        if command == "cases":  # the listing shows the case inside, never outside
            assert any(f"#{case_id} " in r for r in replies) == inside, replies
        if command == "find":  # the person is found inside, never outside
            assert any("13900000009" in r for r in replies) == inside, replies
    else:
        assert refused(replies), replies
        assert dump(w.engine) == tables
        assert case_state(w, case_id) == case


def _signed_in(w: World, who: str) -> httpx.Client | None:
    with session_scope(w.engine) as s:
        try:
            token = accounts.issue_login_token(s, person_id=w.city[who], now=w.clock.now(),
                                               ttl=timedelta(minutes=15))
        except PermissionDenied:
            return None
    client = httpx.Client(base_url=w.url, timeout=30)
    assert client.get(f"/login/{token}").status_code == 303
    return client


@pytest.mark.parametrize("action", list(API_RULES))
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_dashboard_actions(world: World, role: str, inside: bool, action: str) -> None:
    w, who = world, people(role, inside)
    other = fresh_case(w) if action == "merge" else None
    case_id = fresh_case(w, clear=other is None)
    client = _signed_in(w, who)
    if client is None:
        assert role not in DASHBOARD_ROLES, f"{who} could not sign in"
        return  # no dashboard at all for them: nothing to try
    assert role in DASHBOARD_ROLES, f"{who} signed in to the dashboard"
    try:
        csrf = client.get("/api/me").json()["csrf_token"]
        before = case_state(w, case_id)
        body = {"version": before[1], "text": "请尽快处理", "into_case_id": other}
        r = client.post(f"/api/cases/{case_id}/{action}", json=body,
                        headers={"X-CSRF-Token": csrf})
    finally:
        client.close()
    if inside and role in API_RULES[action]:
        assert r.status_code == 200, r.text
        assert case_state(w, case_id)[1] > before[1]
    else:
        assert r.status_code in (403, 404), r.text
        assert case_state(w, case_id) == before


# The posts one may try to give, each on a node of the case's town: (role, node code).
TARGETS: dict[str, tuple[str, str]] = {
    "resident@n2": ("resident", "3416020010010101002"),
    "neighbor_leader@n2": ("neighbor_leader", "3416020010010101002"),
    "group_leader@g1": ("group_leader", "3416020010010101"),
    "area_leader@a1": ("area_leader", "34160200100101"),
    "secretary@v1": ("secretary", "341602001001"),
    "department@town": ("department", "341602001D03"),
    "admin@v1": ("admin", "341602001001"),
    "admin@town": ("admin", "341602001"),  # the town admin's own node
    "admin@district": ("admin", "341602"),  # above the town admin; the district admin's own
}
BELOW_TOWN = {"resident@n2", "neighbor_leader@n2", "group_leader@g1", "area_leader@a1",
              "secretary@v1", "department@town", "admin@v1"}
# Who may appoint what (by person); everybody else, inside or outside, nothing.
APPOINT: dict[str, set[str]] = {
    "town_admin": BELOW_TOWN,
    "district_admin": BELOW_TOWN | {"admin@town"},
}


def _candidate(w: World) -> tuple[int, str]:
    """A fresh person with a phone and no post yet (so no earlier cell's post is reused)."""
    n = next(_ids)
    phone = f"1370{n:07d}"
    with session_scope(w.engine) as s:
        p = Person(name=f"候选人{n}", phone=phone)
        s.add(p)
        s.flush()
        return p.id or 0, phone


def _forget(w: World, person_id: int) -> None:
    """Take an allowed cell's post back out, so later cells see the same city."""
    with w.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM post WHERE person_id = :p"), {"p": person_id})
        conn.execute(sa.text("DELETE FROM person WHERE id = :p"), {"p": person_id})


def _members_file(w: World, row: list[str]) -> Media:
    lines = [",".join(MEMBER_HEADER), ",".join(row)]
    ref = MediaStore(Path(w.settings.media_dir)).put(("\n".join(lines) + "\n").encode(), ".csv")
    return Media(kind="document", file_unique_id="members", mime="text/csv", stored_ref=ref)


@pytest.mark.parametrize("via", ["assign", "import"])
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_appointing_each_role_in_chat(world: World, role: str, inside: bool, target: str,
                                      via: str) -> None:
    w, who = world, people(role, inside)
    post_role, code = TARGETS[target]
    pid, phone = _candidate(w)
    tables = dump(w.engine)
    if via == "assign":
        replies = chat(w, who, command="assign", args=(phone, post_role, code))
    else:
        replies = chat(w, who, command="import", media=(_members_file(
            w, [f"候选人{pid}", phone, post_role, code, "", "", "", ""]),))
    try:
        if target in APPOINT.get(who, set()):
            assert replies and replies[-1].startswith(("已任命", "导入成功")), replies
            with w.engine.connect() as conn:
                assert conn.execute(sa.text(
                    "SELECT count(*) FROM post x JOIN node n ON n.id = x.node_id"
                    " WHERE x.person_id = :p AND x.role = :r AND n.code = :c"),
                    {"p": pid, "r": post_role, "c": code}).scalar_one() == 1
        else:
            assert refused(replies) or any(r.startswith("导入失败") for r in replies), replies
            if via == "import" and who in ("town_admin", "district_admin", "town2_admin",
                                           "district2_admin"):
                assert "members.csv:2: " in replies[-1], replies  # the refused row, located
            assert dump(w.engine) == tables
    finally:
        _forget(w, pid)


# person → the dashboard passwords they may set (themselves included); phones from citydata
PASSWORD_TARGETS = {"secretary": "13900000004", "secretary2": "13900000012",
                    "town_admin": "13900000002", "district_admin": "13900000001",
                    "resident1": "13900000009", "nobody": "13911112222"}
PASSWORDS: dict[str, set[str]] = {
    "secretary": {"secretary"}, "secretary2": {"secretary2"},
    "town_admin": {"town_admin", "secretary", "secretary2"},
    "district_admin": {"district_admin", "town_admin", "secretary", "secretary2"},
}


@pytest.mark.parametrize("target", list(PASSWORD_TARGETS))
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_setting_passwords_over_http(world: World, role: str, inside: bool,
                                     target: str) -> None:
    w, who = world, people(role, inside)
    client = _signed_in(w, who)
    if client is None:
        assert role not in DASHBOARD_ROLES, f"{who} could not sign in"
        anon = httpx.post(f"{w.url}/api/passwords", timeout=30,
                          json={"phone": PASSWORD_TARGETS[target], "password": "pw-12345678"})
        assert anon.status_code == 401
        return
    try:
        headers = {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}

        def post(phone: str) -> httpx.Response:
            return client.post("/api/passwords", headers=headers,
                               json={"phone": phone, "password": "pw-12345678"})

        with w.engine.connect() as conn:
            before = conn.execute(sa.text("SELECT * FROM password_credential ORDER BY 1")).all()
        r = post(PASSWORD_TARGETS[target])
        if target in PASSWORDS.get(who, set()):
            assert r.status_code == 200, r.text
            return
        # Refused, and told exactly what an unknown number is told.
        unknown = post("13911110000")
        assert r.status_code == 403 and (r.status_code, r.text) == (unknown.status_code,
                                                                    unknown.text), r.text
        with w.engine.connect() as conn:
            after = conn.execute(sa.text("SELECT * FROM password_credential ORDER BY 1")).all()
        assert after == before
    finally:
        client.close()


EXPORT_NODES = {"v1": "341602001001", "town": "341602001", "district": "341602"}
# person → the nodes whose figures they may download
EXPORTS: dict[str, set[str]] = {"secretary": {"v1"}, "town_admin": {"v1", "town"},
                                "district_admin": {"v1", "town", "district"}}


@pytest.mark.parametrize("node", list(EXPORT_NODES))
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_dashboard_exports_cover_only_the_callers_subtree(world: World, role: str,
                                                          inside: bool, node: str) -> None:
    w, who = world, people(role, inside)
    path = f"/api/export/figures.xlsx?node={EXPORT_NODES[node]}"
    client = _signed_in(w, who)
    if client is None:
        assert role not in DASHBOARD_ROLES
        assert httpx.get(w.url + path, timeout=30).status_code == 401
        return
    try:
        r = client.get(path)
    finally:
        client.close()
    if node in EXPORTS.get(who, set()):
        assert r.status_code == 200 and r.content.startswith(b"PK"), r.text
    else:
        assert r.status_code == 403, r.text


# Notices (issue 14): sent to a node's subtree by an admin of it, or by the 书记, 片长 or 组长
# of it or above it; here the case's 组 (g1). Nobody outside, and no 邻长 or resident.
NOTICE_NODE = "3416020010010101"
NOTICE_SENDERS = {"group_leader", "area_leader", "secretary"} | ADMINS


def _notice_rows(w: World) -> tuple[int, int]:
    with w.engine.connect() as conn:
        return (conn.execute(sa.text("SELECT count(*) FROM notice")).scalar_one(),
                conn.execute(sa.text("SELECT count(*) FROM outbox WHERE kind = 'notice'"))
                .scalar_one())


@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_notice_command_in_chat(world: World, role: str, inside: bool) -> None:
    w, who = world, people(role, inside)
    before = _notice_rows(w)
    replies = chat(w, who, command="notice", args=(NOTICE_NODE,))
    if inside and role in NOTICE_SENDERS:
        assert not refused(replies) and any("哪些人" in r for r in replies), replies
    else:
        assert refused(replies) and not any("繁忙" in r for r in replies), replies
    assert _notice_rows(w) == before  # the dialogue's first step sends nothing


@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_notice_over_http(world: World, role: str, inside: bool) -> None:
    w, who = world, people(role, inside)
    body = {"node_code": NOTICE_NODE, "audience": ["neighbor_leader"], "text": "周六大扫除",
            "confirm": False}
    before = _notice_rows(w)
    client = _signed_in(w, who)
    if client is None:
        assert role not in DASHBOARD_ROLES, f"{who} could not sign in"
        assert httpx.post(f"{w.url}/api/notices", json=body, timeout=30).status_code == 401
        assert _notice_rows(w) == before
        return
    try:
        headers = {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}
        r = client.post("/api/notices", json=body, headers=headers)
        if inside and role in NOTICE_SENDERS:
            assert r.status_code == 200, r.text
            got = client.get(f"/api/notices/{r.json()['id']}")
            assert got.status_code == 200 and got.json()["totals"]["recipients"] >= 1
        else:
            assert r.status_code == 403, r.text
            assert _notice_rows(w) == before
    finally:
        client.close()
# Campaigns (摸排): started or ended on the dashboard by a 书记 or an admin of the subtree; a
# household is marked in chat by the leaders above its 邻 and admins of it; nobody campaigns
# outside their subtree.
CAMPAIGN_API_RULES: dict[str, set[str]] = {"start": {"secretary"} | ADMINS,
                                           "close": {"secretary"} | ADMINS}
CAMPAIGN_MARKERS = LEADERS | ADMINS


def _campaign(w: World) -> tuple[int, int]:
    """A campaign over v1 with one household of n1: (campaign id, item id)."""
    from core.campaigns.services import start_campaign

    with session_scope(w.engine) as s:
        c = start_campaign(s, node_id=w.city.nodes["v1"], title="敲门行动", instructions="",
                           outcomes=None, deadline=w.clock.now() + timedelta(hours=8),
                           started_by=None, clock=w.clock,
                           households=[(w.city.nodes["n1"], f"一邻{next(_ids)}号")])
        item = s.execute(sa.text("SELECT id FROM campaign_item WHERE campaign_id = :c"),
                         {"c": c.id}).scalar_one()
        assert c.id is not None
        return c.id, int(item)


def _campaign_rows(w: World) -> tuple[int, int, int]:
    with w.engine.connect() as conn:
        return (conn.execute(sa.text("SELECT COUNT(*) FROM campaign")).scalar_one(),
                conn.execute(sa.text("SELECT COUNT(*) FROM campaign WHERE state = 'closed'")
                             ).scalar_one(),
                conn.execute(sa.text("SELECT COUNT(*) FROM campaign_item WHERE outcome"
                                     " IS NOT NULL")).scalar_one())


@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_campaign_marking_in_chat(world: World, role: str, inside: bool) -> None:
    from bot.flows.types import Press

    w = world
    _, item = _campaign(w)
    before = _campaign_rows(w)
    replies = chat(w, people(role, inside), press=Press("cmp_mark", item, 0, query_id="q"))
    with w.engine.connect() as conn:
        outcome = conn.execute(sa.text("SELECT outcome FROM campaign_item WHERE id = :i"),
                               {"i": item}).scalar()
    if inside and role in CAMPAIGN_MARKERS:
        assert outcome == 0 and not refused(replies), replies
    else:
        assert outcome is None and refused(replies), replies
        assert _campaign_rows(w) == before


@pytest.mark.parametrize("action", list(CAMPAIGN_API_RULES))
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_campaign_dashboard_actions(world: World, role: str, inside: bool, action: str) -> None:
    w, who = world, people(role, inside)
    with w.engine.begin() as conn:  # households: the residents' addresses
        conn.execute(sa.text("UPDATE post SET address = '东关' || id WHERE role = 'resident'"
                             " AND address IS NULL"))
    cid, _ = _campaign(w)
    client = _signed_in(w, who)
    if client is None:
        assert role not in DASHBOARD_ROLES, f"{who} could not sign in"
        return
    before = _campaign_rows(w)
    try:
        csrf = client.get("/api/me").json()["csrf_token"]
        if action == "start":
            r = client.post("/api/campaigns", headers={"X-CSRF-Token": csrf}, json={
                "node_code": "341602001001", "title": "人口核查",
                "deadline": (w.clock.now() + timedelta(hours=4)).isoformat()})
        else:
            r = client.post(f"/api/campaigns/{cid}/close", headers={"X-CSRF-Token": csrf})
        board = client.get(f"/api/campaigns/{cid}/progress",
                           params={"node": "341602001001"})
    finally:
        client.close()
    if inside and role in CAMPAIGN_API_RULES[action]:
        assert r.status_code == 200, r.text
        assert board.status_code == 200 and board.json()["node"]["total"] >= 1
    else:
        assert r.status_code in (403, 404), r.text
        assert _campaign_rows(w) == before
        assert board.status_code in (403, 404)


# 核查 (README "Category policies"): a resolution waiting for a check is approved or sent back
# by the verifier (the holder's superior: here the 片长, for a 组长's resolution), anyone
# leading the verifier's node from above and admins of the subtree; never by the one who
# solved it, the tiers below, the resident, or anyone outside.
VERIFY_RULES = {"area_leader", "secretary"} | ADMINS


def waiting_case(w: World) -> int:
    """A case escalated to the 组长 and resolved by them: it waits for the 片长's 核查."""
    case_id = fresh_case(w)
    do(w.engine, case_actions.escalate, clock=w.clock, case_id=case_id,
       person_id=w.city["leader1"], version=1, reason="需要组长协调")
    version = case_state(w, case_id)[1]
    do(w.engine, case_actions.resolve, clock=w.clock, case_id=case_id,
       person_id=w.city["group_leader"], version=version)
    with w.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT stage, holder_role FROM cases WHERE id = :c"),
                            {"c": case_id}).one() == ("verify", "area_leader")
    return case_id


@pytest.mark.parametrize("action", ["verify_ok", "send_back"])
@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_verify_actions_in_chat(world: World, role: str, inside: bool, action: str) -> None:
    w, who = world, people(role, inside)
    case_id = waiting_case(w)
    before, version = case_state(w, case_id), case_state(w, case_id)[1]
    replies = chat(w, who, press=Press(action, case_id, version, query_id="q"))
    if action == "send_back":
        assert not refused(replies)  # the prompt for the reason comes first; the words act
        replies = chat(w, who, text="照片看不出已整改")
    if inside and role in VERIFY_RULES:
        assert not refused(replies), replies
        assert case_state(w, case_id)[1] > version, "the case did not move"
    else:
        assert refused(replies), replies
        assert case_state(w, case_id) == before
        assert refusals(w, case_id) == 1


@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_the_policies_page_is_read_only_for_dashboard_users(world: World, role: str,
                                                            inside: bool) -> None:
    w, who = world, people(role, inside)
    client = _signed_in(w, who)
    if client is None:
        assert role not in DASHBOARD_ROLES
        r = httpx.get(w.url + "/dashboard/policies", timeout=30, follow_redirects=False)
        assert r.status_code in (303, 401), r.status_code
        return
    try:
        assert client.get("/dashboard/policies").status_code == 200
        # Read-only: nothing on it changes anything.
        assert client.post("/dashboard/policies", data={}).status_code == 405
    finally:
        client.close()


# Stand-ins (README "Stand-ins"): a leader records their own absence (/away 3d) and ends it
# (/back); an admin does it for a leader whose post they could give (core/hierarchy/scope.py),
# i.e. admins of the leader's subtree; nobody else sets it for somebody else.
AWAY_SELF_RULES = LEADERS
AWAY_OTHER_RULES = ADMINS


def _absences(w: World) -> int:
    with w.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM away WHERE ended_at IS NULL"))
                   .scalar_one())


@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_away_for_oneself_in_chat(world: World, role: str, inside: bool) -> None:
    w, who = world, people(role, inside)
    fresh_case(w)
    replies = chat(w, who, command="away", args=("3d",))
    if role in AWAY_SELF_RULES:
        assert not refused(replies), replies
        assert _absences(w) == 1
        assert not refused(chat(w, who, command="back"))
    else:
        assert refused(replies), replies
    assert _absences(w) == 0


@pytest.mark.parametrize(("role", "inside"), MATRIX, ids=[_ids_of(*m) for m in MATRIX])
def test_away_for_someone_else_in_chat(world: World, role: str, inside: bool) -> None:
    w, who = world, people(role, inside)
    case_id = fresh_case(w)
    before = case_state(w, case_id)
    replies = chat(w, who, command="away", args=("13900000007", "3d"))  # 邻长小赵 (leader1)
    if (inside and role in AWAY_OTHER_RULES) or who == "leader1":  # leader1: their own
        assert not refused(replies), replies
        assert _absences(w) == 1
        assert not refused(chat(w, who, command="back", args=("13900000007",)))
    else:
        assert refused(replies), replies
        assert case_state(w, case_id) == before
    assert _absences(w) == 0
