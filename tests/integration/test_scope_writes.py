"""Scope on every write (issue 11 §2), through chat (the dispatcher) and HTTP: a town admin's
/import, /assign and /bind reach only below them in their own town; a person with posts in two
towns is edited only from above both; passwords go only to 书记 and admins below the setter,
and /api/passwords answers an unknown number exactly as one that is not the caller's."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound, Media
from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.model import ChatBinding, Node, Person, Post
from core.media.store import MediaStore
from core.settings import Settings
from tests.casehelpers import open_case
from tests.citydata import CATEGORY_HEADER, MEMBER_HEADER, NODE_HEADER, dump
from tests.cityfactory import build_city
from tests.support.server import serve
from webhooks.app import create_app

_ids = itertools.count(1)
TOWN, DISTRICT, V1, N1, N2 = ("341602001", "341602", "341602001001",
                              "3416020010010101001", "3416020010010101002")
TOWN2, V9 = "341602002", "341602002001"


@pytest.fixture
def world(engine: Engine, tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    city = build_city(engine)
    with session_scope(engine) as s:
        district = s.get(Node, city.nodes["district"])
        assert district is not None
        parent = district
        for key, code, level, name in [("town2", TOWN2, "town", "古井镇"),
                                       ("v9", V9, "village", "古井村")]:
            node = Node(code=code, parent_id=parent.id, level=level, name=name, path="/")
            s.add(node)
            s.flush()
            node.path = f"{parent.path}{node.id}/"
            city.nodes[key] = node.id or 0
            parent = node
        for key, name, phone, role, node_key in [
            ("town2_admin", "古井镇管理员", "13800000001", "admin", "town2"),
            ("secretary9", "古井村书记", "13800000002", "secretary", "v9"),
            ("town_admin_b", "镇副管理员", "13800000003", "admin", "town"),
        ]:
            p = Person(name=name, phone=phone)
            s.add(p)
            s.flush()
            s.add(Post(person_id=p.id or 0, node_id=city.nodes[node_key], role=role))
            city.people[key] = p.id or 0
        for pid in city.people.values():
            s.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                              " unreachable) VALUES (:p, 'telegram', :e, false)"),
                      {"p": pid, "e": str(800_000 + pid)})
    st = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url="http://scope.test")
    yield {"engine": engine, "city": city, "clock": clock, "settings": st, "tmp": tmp_path}


def tg(w: dict[str, Any], who: str) -> str:
    return str(800_000 + w["city"][who])


def chat(w: dict[str, Any], who: str, *, chat_id: str | None = None,
         **fields: Any) -> list[dict[str, Any]]:
    """One message from `who`; what the bot sends back (text and document)."""
    uid = f"s{next(_ids)}"
    inbound = Inbound(platform="telegram", update_id=uid, chat_id=chat_id or tg(w, who),
                      sender_id=tg(w, who), received_at=w["clock"].now(),
                      chat_is_private=chat_id is None, message_id=uid, **fields)
    assert process(w["engine"], inbound=inbound, payload={"update_id": uid}, clock=w["clock"],
                   settings=w["settings"])
    with w["engine"].connect() as conn:
        rows = conn.execute(sa.text("SELECT text, options FROM outbox WHERE dedupe_key LIKE :k"
                                    " ORDER BY id"), {"k": f"in:telegram:{uid}:%"}).all()
    return [{"text": r.text, "options": r.options} for r in rows]


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def doc(w: dict[str, Any], name: str, data: bytes, suffix: str = ".csv") -> Media:
    ref = MediaStore(Path(w["settings"].media_dir)).put(data, suffix)
    mime = "text/csv" if suffix == ".csv" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Media(kind="document", file_unique_id=name, mime=mime, stored_ref=ref)


def chat_import(w: dict[str, Any], who: str, *files: Media) -> str:
    out = chat(w, who, command="import", media=tuple(files))
    return "\n".join(o["text"] for o in out)


def member(name: str, phone: str, role: str, node: str, tg_id: str = "") -> list[str]:
    return [name, phone, role, node, "", tg_id, "", ""]


def test_a_town_admins_import_of_district_admins_is_refused_by_row(
        world: dict[str, Any]) -> None:
    """The incident: a town admin's members file made two district admins (one of them a
    resident, who then exported the city); now every such row is refused and nothing changes."""
    w = world
    before = dump(w["engine"])
    members = doc(w, "members", csv_bytes(MEMBER_HEADER, [
        member("新书记", "13700000001", "secretary", V1),          # row 2: fine
        member("居民孙", "13900000009", "admin", DISTRICT),        # row 3: the resident, above
        member("外人", "13700000002", "admin", DISTRICT),          # row 4: above
        member("镇同事", "13700000003", "admin", TOWN),            # row 5: own node, same rank
        member("邻镇人", "13700000004", "resident", V9 + "x"),     # row 6: no such node
        member("邻镇书记", "13700000005", "secretary", V9),        # row 7: the other town
    ]))
    reply = chat_import(w, "town_admin", members)
    assert "导入失败，数据库未做任何改动" in reply, reply
    lines = [ln for ln in reply.splitlines() if ln.startswith("members.csv:")]
    assert [ln.split(":")[1] for ln in lines] == ["3", "4", "5", "6", "7"], reply
    assert lines[0] == f"members.csv:3: 管理员@{DISTRICT}不在您管理的范围内"
    assert lines[2] == (f"members.csv:5: 管理员@{TOWN}与您同级或高于您，"
                        "您只能任命或修改低于自己的职务")
    assert f"members.csv:7: 书记@{V9}不在您管理的范围内" in reply
    assert dump(w["engine"]) == before
    # The resident stays a resident: no dashboard, no /export.
    assert "只有管理员" in chat(w, "resident1", command="export")[0]["text"]


def test_a_town_admin_imports_below_their_rank_inside_their_town(world: dict[str, Any]) -> None:
    w = world
    nodes = doc(w, "nodes", csv_bytes(NODE_HEADER, [[V1 + "09", V1, "area", "新片"]]))
    members = doc(w, "members", csv_bytes(MEMBER_HEADER, [
        member("新书记", "13700000001", "secretary", V1),
        member("村管理员", "13700000006", "admin", V1),
        member("新片长", "13700000007", "area_leader", V1 + "09", "7770001"),
        member("环保员", "13700000008", "department", "341602001D03"),
    ]))
    reply = chat_import(w, "town_admin", nodes, members)
    assert reply.startswith("导入成功"), reply
    with w["engine"].connect() as conn:
        got = conn.execute(sa.text(
            "SELECT p.name, x.role, n.code FROM post x JOIN person p ON p.id = x.person_id"
            " JOIN node n ON n.id = x.node_id WHERE p.phone LIKE '137%' ORDER BY p.phone")).all()
    assert [tuple(r) for r in got] == [("新书记", "secretary", V1), ("村管理员", "admin", V1),
                                       ("新片长", "area_leader", V1 + "09"),
                                       ("环保员", "department", "341602001D03")]


def test_node_rows_reach_only_below_the_admins_own_node(world: dict[str, Any]) -> None:
    w = world
    before = dump(w["engine"])
    nodes = doc(w, "nodes", csv_bytes(NODE_HEADER, [
        [TOWN, DISTRICT, "town", "花戏楼街道"],              # row 2: unchanged: fine
        [V1, TOWN, "village", "东关社区"],                   # row 3: unchanged: fine
        [TOWN2, DISTRICT, "town", "我的古井镇"],             # row 4: a sibling town renamed
        ["341602001002", TOWN2, "village", "西关社区"],       # row 5: moved out of the town
        [V9 + "01", V9, "area", "外面的片"],                  # row 6: added in the other town
        [V1 + "08", V1, "area", "八片"],                     # row 7: added inside: fine
    ]))
    reply = chat_import(w, "town_admin", nodes)
    lines = [ln for ln in reply.splitlines() if ln.startswith("nodes.csv:")]
    assert [ln.split(":")[1] for ln in lines] == ["4", "5", "6"], reply
    assert "只能修改您管辖节点以下的节点" in lines[0]
    assert dump(w["engine"]) == before
    renamed = doc(w, "nodes", csv_bytes(NODE_HEADER, [[TOWN, DISTRICT, "town", "改名街道"]]))
    reply = chat_import(w, "town_admin", renamed)
    assert reply.splitlines()[1].startswith(f"nodes.csv:2: 节点 {TOWN}："), reply
    assert dump(w["engine"]) == before
    # The district admin may rename the town; the operator's console anything.
    assert chat_import(w, "district_admin", renamed).startswith("导入成功")


def test_chat_accounts_and_names_of_people_outside_reach_are_not_rebound(
        world: dict[str, Any]) -> None:
    w, city = world, world["city"]
    # 居民孙 also lives in the other town: her account and name are edited only from above.
    with session_scope(w["engine"]) as s:
        s.add(Post(person_id=city["resident1"], node_id=city.nodes["v9"], role="admin"))
    before = dump(w["engine"])
    members = doc(w, "members", csv_bytes(MEMBER_HEADER, [
        member("居民孙", "13900000009", "resident", N2, "6660001"),   # new account: refused
        member("古井书记改名", "13800000002", "resident", N2),        # an outsider renamed
        member("镇副管理员", "13800000003", "resident", N2, "6660003"),  # a co-admin's account
        member("居民周", "13900000010", "resident", N1, "6660004"),  # inside, below: fine
    ]))
    reply = chat_import(w, "town_admin", members)
    lines = [ln for ln in reply.splitlines() if ln.startswith("members.csv:")]
    assert [ln.split(":")[1] for ln in lines] == ["2", "3", "4"], reply
    assert ("13900000009 在您管辖范围外或与您同级及以上还有职务，您不能修改其姓名或聊天账号"
            in lines[0])
    assert "不能修改其姓名（" in lines[1]
    assert dump(w["engine"]) == before
    # A person who joined by chat without a phone is claimed only if reachable.
    with session_scope(w["engine"]) as s:
        p = Person(name="微信用户")
        s.add(p)
        s.flush()
        s.add(Post(person_id=p.id or 0, node_id=city.nodes["v9"], role="secretary"))
        s.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                          " unreachable) VALUES (:p, 'telegram', '6660009', false)"),
                  {"p": p.id})
    before = dump(w["engine"])
    claim = doc(w, "members", csv_bytes(MEMBER_HEADER, [
        member("冒名者", "13700000009", "resident", N2, "6660009")]))
    reply = chat_import(w, "town_admin", claim)
    assert "members.csv:2: " in reply and "不能修改其姓名或聊天账号" in reply, reply
    assert dump(w["engine"]) == before
    # The district admin reaches both towns.
    assert chat_import(w, "district_admin", members).startswith("导入成功")


def test_categories_are_changed_only_at_the_console(world: dict[str, Any]) -> None:
    w = world
    before = dump(w["engine"])
    cats = doc(w, "categories", csv_bytes(CATEGORY_HEADER, [["环境保护", "D03"],
                                                            ["新分类", "D09"]]))
    reply = chat_import(w, "town_admin", cats)
    assert "categories.csv:3: 分类 新分类：分类为全市共用" in reply, reply
    assert "categories.csv:2" not in reply
    assert dump(w["engine"]) == before


def test_a_town_admins_own_export_imports_back_unchanged(world: dict[str, Any]) -> None:
    w = world
    out = chat(w, "town_admin", command="export")
    options = out[0]["options"]
    ref = (options if isinstance(options, dict) else json.loads(options))["document"]
    data = MediaStore(Path(w["settings"].media_dir)).open(ref)
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    codes = [r[0] for r in book["nodes"].iter_rows(min_row=2, values_only=True)]
    assert TOWN in codes and TOWN2 not in codes and V9 not in codes and DISTRICT not in codes
    before = dump(w["engine"])
    reply = chat_import(w, "town_admin", doc(w, "town", data, ".xlsx"))
    assert reply.startswith("导入成功") and "nodes +0 ~0, people +0 ~0, posts +0 ~0" in reply, \
        reply
    assert dump(w["engine"]) == before


def test_assign_reaches_only_below_the_admins_rank(world: dict[str, Any]) -> None:
    w = world
    before = dump(w["engine"])
    for args in [("13900000009", "admin", TOWN),            # own node
                 ("13900000009", "admin", DISTRICT),        # above
                 ("13900000009", "secretary", V9),          # the other town
                 ("13900000009", "secretary", V1)]:         # already held by someone: fine
        out = chat(w, "town_admin", command="assign", args=args)
        if args[2] == V1:
            assert out[0]["text"].startswith("已任命"), out
        else:
            assert out[0]["text"].startswith("抱歉"), out
            assert dump(w["engine"]) == before
    out = chat(w, "district_admin", command="assign", args=("13900000010", "admin", TOWN))
    assert out[0]["text"].startswith("已任命"), out
    out = chat(w, "district_admin", command="assign", args=("13900000010", "admin", DISTRICT))
    assert out[0]["text"].startswith("抱歉"), out


def test_a_chat_bound_elsewhere_is_not_rebound_from_below(world: dict[str, Any]) -> None:
    w, city = world, world["city"]
    with session_scope(w["engine"]) as s:
        s.add(ChatBinding(platform="telegram", chat_id="-5001", node_id=city.nodes["town2"],
                          tier="town_secretary"))
    before = dump(w["engine"])
    out = chat(w, "town_admin", chat_id="-5001", command="bind", args=(V1,))
    assert out[0]["text"].startswith("抱歉") and "改绑" in out[0]["text"], out
    assert dump(w["engine"]) == before
    out = chat(w, "district_admin", chat_id="-5001", command="bind", args=(V1,))
    assert "绑定" in out[0]["text"] and not out[0]["text"].startswith("抱歉"), out


def _signed_in(w: dict[str, Any], url: str, who: str) -> tuple[httpx.Client, dict[str, str]]:
    with session_scope(w["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=w["city"][who], now=w["clock"].now(),
                                           ttl=timedelta(minutes=15))
    client = httpx.Client(base_url=url, timeout=30)
    assert client.get(f"/login/{token}").status_code == 303
    return client, {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}


def test_passwords_go_only_below_and_never_tell_who_exists(world: dict[str, Any]) -> None:
    w = world
    app = create_app(w["settings"], clock=w["clock"], run_jobs=False,
                     container=build_container(w["settings"], clock=w["clock"],
                                               engine=w["engine"]))

    def stored() -> list[Any]:
        with w["engine"].connect() as conn:
            return conn.execute(sa.text("SELECT person_id, hash FROM password_credential"
                                        " ORDER BY person_id")).all()

    with serve(app) as url:
        sec, sec_h = _signed_in(w, url, "secretary")
        town, town_h = _signed_in(w, url, "town_admin")
        try:
            def post(c: httpx.Client, h: dict[str, str], phone: str) -> httpx.Response:
                return c.post("/api/passwords", json={"phone": phone, "password": "pw-2026-ok"},
                              headers=h)

            before = stored()
            unknown = post(sec, sec_h, "13911119999")
            outside = post(sec, sec_h, "13800000002")     # the other town's 书记
            no_dash = post(sec, sec_h, "13900000009")     # a resident of his own village
            above = post(sec, sec_h, "13900000002")       # his town's admin
            answers = {(r.status_code, r.text) for r in (unknown, outside, no_dash, above)}
            assert len(answers) == 1 and unknown.status_code == 403, answers
            # A co-admin of the same town, and a 书记 who also administers the other town.
            with session_scope(w["engine"]) as s:
                s.add(Post(person_id=w["city"]["secretary2"], node_id=w["city"].nodes["town2"],
                           role="admin"))
            assert post(town, town_h, "13800000003").status_code == 403
            assert post(town, town_h, "13900000012").status_code == 403
            assert post(town, town_h, "13911119999").text == unknown.text
            assert stored() == before
            assert post(town, town_h, "13900000004").status_code == 200  # his 书记
            assert post(sec, sec_h, "13900000004").status_code == 200    # himself
            assert [r.person_id for r in stored()] == [w["city"]["secretary"]]
        finally:
            sec.close()
            town.close()


def test_a_merge_needs_both_cases_within_reach(world: dict[str, Any]) -> None:
    w = world
    app = create_app(w["settings"], clock=w["clock"], run_jobs=False,
                     container=build_container(w["settings"], clock=w["clock"],
                                               engine=w["engine"]))
    mine = open_case(w["engine"], w["clock"], w["city"], resident="resident1", text="路灯不亮")
    w["clock"].advance(timedelta(minutes=11))
    theirs = open_case(w["engine"], w["clock"], w["city"], resident="resident4", text="路灯不亮")

    def state(case_id: int) -> tuple[Any, ...]:
        with w["engine"].connect() as conn:
            return tuple(conn.execute(sa.text("SELECT state, version, merged_into_id FROM cases"
                                              " WHERE id = :c"), {"c": case_id}).one())

    with serve(app) as url:
        sec, sec_h = _signed_in(w, url, "secretary")        # 书记 of V1; theirs is in V2
        town, town_h = _signed_in(w, url, "town_admin")
        try:
            before = (state(mine), state(theirs))
            for a, b in ((mine, theirs), (theirs, mine)):
                r = sec.post(f"/api/cases/{a}/merge", headers=sec_h,
                             json={"version": state(a)[1], "into_case_id": b})
                assert r.status_code in (403, 404), r.text
            assert (state(mine), state(theirs)) == before
            r = town.post(f"/api/cases/{mine}/merge", headers=town_h,
                          json={"version": state(mine)[1], "into_case_id": theirs})
            assert r.status_code == 200, r.text
            assert state(mine)[0] == "merged" and state(mine)[2] == theirs
        finally:
            sec.close()
            town.close()
