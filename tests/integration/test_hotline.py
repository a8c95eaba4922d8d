"""The hotline console over real HTTP on both databases: an operator looks a caller up by the
number they call from, files their words as their case (source phone, the operator on the
opening event), the caller's chat gets the receipt or the page gives the words to read out;
numbers outside the operator's area and unregistered numbers."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import accounts, hotline
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.settings import Settings
from tests.support.demo_city import load_demo
from tests.support.server import serve
from webhooks.app import create_app

SECRETARY = "13900000006"  # 黄涛, 书记 of 幸福社区
TOWN_ADMIN = "13900000002"  # 张娟, admin of 花戏楼街道
ZHOU = "13900000009"  # 周军, 幸福社区1号楼101室; his 邻长 王芳
OUTSIDER = "13900000048"  # 何艳, 和谐社区 (another village of the same town)
LIN3 = "3416020010010102001"  # 幸福社区3号楼, 邻长 高勇


@pytest.fixture
def world(engine: Engine, tmp_path, clock: FakeClock) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    load_demo(engine)
    st = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    with serve(app) as url:
        yield {"engine": engine, "clock": clock, "url": url, "settings": st}


def person(engine: Engine, phone: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT id FROM person WHERE phone = :p"),
                                {"p": phone}).scalar_one())


def signed_in(w: dict[str, Any], phone: str) -> httpx.Client:
    with session_scope(w["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=person(w["engine"], phone),
                                           now=w["clock"].now(), ttl=timedelta(minutes=15))
    client = httpx.Client(base_url=w["url"], follow_redirects=False, timeout=30)
    assert client.get(f"/login/{token}").status_code == 303
    return client


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m is not None
    return m.group(1)


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def file(client: httpx.Client, **form: str) -> httpx.Response:
    token = csrf_of(client.get("/dashboard/hotline").text)
    return client.post("/dashboard/hotline", data={"csrf": token, **form})


def test_a_known_caller_shows_household_chain_and_open_cases(world: dict[str, Any]) -> None:
    with closing(signed_in(world, SECRETARY)) as op:
        first = file(op, phone=ZHOU, words="楼道灯坏了")
        assert first.status_code == 303
        shown = op.get("/dashboard/hotline", params={"phone": "+86 139-0000-0009"})
    assert shown.status_code == 200
    words = text_of(shown.text)
    assert "周军" in words and "幸福社区1号楼" in words and "13900000009" in words
    # The chain bottom up, each with a number to call.
    chain = words[words.index("包联干部"):]
    assert [chain.index(n) for n in ("王芳", "吴娜", "赵桂英", "黄涛")] == sorted(
        chain.index(n) for n in ("王芳", "吴娜", "赵桂英", "黄涛"))
    assert 'href="tel:13900000082"' in shown.text  # 王芳, the 邻长
    assert "楼道灯坏了" in words and "待受理" in words and "#" in words
    assert re.search(r'id="hl-words"[^>]*autofocus', shown.text)  # the words come next


def test_filing_routes_to_the_callers_neighbor_leader_with_the_operator_recorded(
        world: dict[str, Any]) -> None:
    eng = world["engine"]
    zhou, operator = person(eng, ZHOU), person(eng, SECRETARY)
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', '9009', false)"), {"p": zhou})
    with closing(signed_in(world, SECRETARY)) as op:
        done = file(op, phone="139 0000 0009", words="小区门口路灯不亮三天了")
        assert done.status_code == 303
        receipt = op.get(done.headers["location"])
    with eng.connect() as conn:
        case = conn.execute(sa.text(
            "SELECT c.id, c.resident_id, c.opened_by_id, c.holder_role, p.name FROM cases c"
            " JOIN person p ON p.id = c.holder_id")).one()
        ev = conn.execute(sa.text("SELECT actor_id, via, detail FROM case_event"
                                  " WHERE case_id = :c AND kind = 'opened'"),
                          {"c": case.id}).one()
        to_caller = conn.execute(sa.text("SELECT kind, text FROM outbox WHERE person_id = :p"),
                                 {"p": zhou}).all()
    assert (case.resident_id, case.opened_by_id, case.holder_role, case.name) == (
        zhou, operator, "neighbor_leader", "王芳")
    detail = ev.detail if isinstance(ev.detail, dict) else json.loads(ev.detail)
    assert (ev.actor_id, ev.via, detail["operator"], detail["operator_name"]) == (
        operator, "phone", operator, "黄涛")
    assert [k for k, _ in to_caller] == ["case_opened"]  # the receipt in the caller's chat
    assert f"#{case.id}" in to_caller[0][1] or str(case.id) in to_caller[0][1]
    words = text_of(receipt.text)
    assert f"已登记工单 #{case.id}" in words and "王芳" in words
    assert "回执已发到来电人的聊天" in words
    assert re.search(r"答复期限\s+\d{4}-\d\d-\d\d \d\d:\d\d", words)
    assert 'id="hl-read"' not in receipt.text
    # Back on the number field, empty, for the next call.
    assert re.search(r'id="hl-phone"[^>]*value=""[^>]*autofocus', receipt.text)


def test_a_caller_without_chat_gets_no_row_and_the_page_gives_words_to_read(
        world: dict[str, Any]) -> None:
    eng = world["engine"]
    with closing(signed_in(world, SECRETARY)) as op:
        done = file(op, phone=ZHOU, words="楼下有人烧垃圾")
        receipt = op.get(done.headers["location"]).text
    assert count(eng, "SELECT count(*) FROM outbox WHERE person_id = :p",
                 p=person(eng, ZHOU)) == 0
    read = re.search(r'id="hl-read">([^<]+)<', receipt)
    assert read is not None and "没有绑定聊天账号" in text_of(receipt)
    case_id = count(eng, 'SELECT id FROM cases')
    assert f"编号{case_id}号" in read.group(1) and "王芳" in read.group(1)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d前", read.group(1))
    # The 邻长's card still goes out (her chat may not exist either: a row to her person).
    assert count(eng, "SELECT count(*) FROM outbox WHERE person_id = :p",
                 p=person(eng, "13900000082")) == 1


def test_a_number_outside_the_operators_area_shows_nothing_and_cannot_be_filed(
        world: dict[str, Any]) -> None:
    eng = world["engine"]
    with closing(signed_in(world, SECRETARY)) as op:
        shown = op.get("/dashboard/hotline", params={"phone": OUTSIDER})
        refused = file(op, phone=OUTSIDER, words="家门口积水")
    for r in (shown, refused):
        assert "何艳" not in r.text and "和谐社区1号楼" not in r.text and "郭静" not in r.text
        assert "不在您的辖区" in text_of(r.text) or "辖区以外" in text_of(r.text)
    assert 'id="hl-file"' not in shown.text
    assert refused.status_code == 403 and "不能在这里代为登记" in text_of(refused.text)
    assert count(eng, 'SELECT count(*) FROM cases') == 0
    # The town's admin, whose area it is, files it.
    with closing(signed_in(world, TOWN_ADMIN)) as admin:
        assert "何艳" in admin.get("/dashboard/hotline", params={"phone": OUTSIDER}).text
        assert file(admin, phone=OUTSIDER, words="家门口积水").status_code == 303


def test_no_csrf_is_403_and_empty_words_store_nothing(world: dict[str, Any]) -> None:
    eng = world["engine"]
    with closing(signed_in(world, SECRETARY)) as op:
        forged = op.post("/dashboard/hotline", data={"phone": ZHOU, "words": "x"})
        assert forged.status_code == 403
        empty = file(op, phone=ZHOU, words="   ")
        bad_number = file(op, phone="12345", words="路灯坏了")
    assert empty.status_code == 422 and "请填写来电人反映的问题" in text_of(empty.text)
    assert bad_number.status_code == 422 and "11位手机号" in text_of(bad_number.text)
    assert "路灯坏了" in bad_number.text  # the words stay on screen
    assert count(eng, 'SELECT count(*) FROM cases') == 0
    assert count(eng, "SELECT count(*) FROM person WHERE phone = '12345'") == 0
    anonymous = httpx.post(f"{world['url']}/dashboard/hotline", data={"phone": ZHOU,
                                                                      "words": "x"})
    assert anonymous.status_code in (303, 403) and count(eng, 'SELECT count(*) FROM cases') == 0


def test_an_unregistered_number_is_filed_to_the_chosen_place(world: dict[str, Any]) -> None:
    eng = world["engine"]
    with closing(signed_in(world, SECRETARY)) as op:
        shown = op.get("/dashboard/hotline", params={"phone": "13812345678"})
        assert "此号码没有登记" in text_of(shown.text) and 'id="hl-place-q"' in shown.text
        found = op.get("/dashboard/hotline", params={"phone": "13812345678",
                                                     "place_q": "3号楼"})
        assert f'value="{LIN3}" checked' in found.text  # 幸福社区3号楼, not 和谐社区3号楼
        assert "和谐社区3号楼" not in found.text
        nowhere = file(op, phone="13812345678", words="井盖丢了", place="")
        assert nowhere.status_code == 422 and "没有登记住址" in text_of(nowhere.text)
        outside = file(op, phone="13812345678", words="井盖丢了",
                       place="3416020010020102001")
        assert outside.status_code == 403
        done = file(op, phone="138-1234-5678", words="井盖丢了", place=LIN3,
                    caller_name="李先生")
        assert done.status_code == 303
        receipt = text_of(op.get(done.headers["location"]).text)
        again = text_of(op.get("/dashboard/hotline", params={"phone": "13812345678"}).text)
    with eng.connect() as conn:
        case = conn.execute(sa.text(
            'SELECT c.id, n.code, p.name, r.name AS caller, r.phone FROM cases c'
            " JOIN node n ON n.id = c.home_node_id JOIN person p ON p.id = c.holder_id"
            " JOIN person r ON r.id = c.resident_id")).one()
        via = conn.execute(sa.text("SELECT via FROM case_event WHERE kind = 'opened'")).one()
    assert (case.code, case.name, case.caller, case.phone, via[0]) == (
        LIN3, "高勇", "李先生", "13812345678", "phone")
    assert "高勇" in receipt and "请在电话里读给对方听" in receipt
    assert f"#{case.id}" in again  # the next call from that number finds the case


def test_the_operators_own_office_takes_a_call_with_no_place(world: dict[str, Any]) -> None:
    with closing(signed_in(world, TOWN_ADMIN)) as op:
        shown = op.get("/dashboard/hotline", params={"phone": "13812340000"})
        office = re.search(r'name="place" value="(\d+)" checked', shown.text)
        assert office is not None and office.group(1) == "341602001"
        done = file(op, phone="13812340000", words="街道办门口占道经营", place=office.group(1))
        assert done.status_code == 303
    with world["engine"].connect() as conn:
        role = conn.execute(sa.text('SELECT holder_role FROM cases')).scalar_one()
    assert role == "admin"


def test_words_within_the_append_window_go_to_the_callers_fresh_case(
        world: dict[str, Any]) -> None:
    """The caller reported in chat minutes ago: the call adds to that case, and says so."""
    from bot.dispatch import process
    from bot.flows.types import Inbound

    eng = world["engine"]
    zhou = person(eng, ZHOU)
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', '9009', false)"), {"p": zhou})
    inbound = Inbound(platform="telegram", update_id="u1", chat_id="9009", sender_id="9009",
                      received_at=world["clock"].now(), text="楼道灯坏了")
    assert process(eng, inbound=inbound, payload={}, clock=world["clock"],
                   settings=world["settings"])
    world["clock"].advance(timedelta(minutes=3))
    with closing(signed_in(world, SECRETARY)) as op:
        done = file(op, phone=ZHOU, words="补充：是三楼的灯")
        assert "added=1" in done.headers["location"]
        receipt = text_of(op.get(done.headers["location"]).text)
    assert count(eng, 'SELECT count(*) FROM cases') == 1
    case_id = count(eng, 'SELECT id FROM cases')
    assert f"已补充到工单 #{case_id}" in receipt
    with eng.connect() as conn:
        ev = conn.execute(sa.text("SELECT actor_id, via, note FROM case_event"
                                  " WHERE kind = 'added'")).one()
    assert (ev.actor_id, ev.via, ev.note) == (zhou, "phone", "补充：是三楼的灯")


def test_the_12345_client_gets_the_hotline_case_only_when_it_exists_and_holds_it(
        engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """HOTLINE_OPEN311_CLIENT: a hotline case becomes that client's request (read back over
    Open311) when the client exists and its subtree holds the case; a wrong name is logged."""
    from core.hierarchy.queries import actor
    from core.open311 import keys

    load_demo(engine)
    with session_scope(engine) as s:
        keys.create_key(s, name="12345热线", scope_code="341602001", now=clock.now())
        keys.create_key(s, name="别的区", scope_code="341602001002", now=clock.now())

    def filed(client: str, phone: str) -> int:
        st = Settings(_env_file=None, hotline_open311_client=client)  # type: ignore[call-arg]
        with session_scope(engine) as s:
            got = hotline.file_call(s, clock=clock, settings=st,
                                    operator=actor(s, person(engine, TOWN_ADMIN)), phone=phone,
                                    words="楼道灯不亮", caller_name="")
        return count(engine, "SELECT count(*) FROM open311_request WHERE case_id = :c",
                     c=got.case_id)

    assert filed("12345热线", ZHOU) == 1
    clock.advance(timedelta(hours=1))  # past the append window: a case of its own
    assert filed("别的区", ZHOU) == 0  # that client's subtree (和谐社区) does not hold it
    assert filed("别的区", OUTSIDER) == 1  # a 和谐社区 caller's case it does
    with caplog.at_level("WARNING", logger="core.hotline"):
        clock.advance(timedelta(hours=1))
        assert filed("没有这个", ZHOU) == 0
    assert "names no Open311 client" in caplog.text
