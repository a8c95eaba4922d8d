"""Refusals read as sentences in the reader's language: core raises a key, the chat reply and
the HTTP body say it through bot/flows/texts.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound, Press
from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.settings import Settings
from tests.casehelpers import open_case
from tests.cityfactory import build_city
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

_ids = itertools.count(1)


# ---------------------------------------------------------------------------- chat

@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]


def send(engine: Engine, clock: FakeClock, settings: Settings, *, sender: str,
         **fields: Any) -> list[str]:
    """One message through the dispatcher; the texts of the replies it wrote."""
    uid = f"w{next(_ids)}"
    inbound = Inbound(platform="telegram", update_id=uid, chat_id=sender, sender_id=sender,
                      received_at=clock.now(), **fields)
    assert process(engine, inbound=inbound, payload={"update_id": uid}, clock=clock,
                   settings=settings)
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT text FROM outbox WHERE dedupe_key LIKE :k ORDER BY id"
        ), {"k": f"in:telegram:{uid}:%"}).scalars())


def link(engine: Engine, person_id: int, tg: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": person_id, "t": tg})


def a_case(engine: Engine, clock: FakeClock, settings: Settings) -> tuple[int, str]:
    """A resident's case of LIN1 accepted by its 邻长 (who is linked as "9001"); the id, and
    the 邻长's name."""
    resident, leader = holder_of(engine, "resident", LIN1), holder_of(engine,
                                                                      "neighbor_leader", LIN1)
    link(engine, resident.person_id, "5001")
    link(engine, leader.person_id, "9001")
    send(engine, clock, settings, sender="5001", text="楼道灯坏了三天了")
    with engine.connect() as conn:
        case_id = conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one()
        name = conn.execute(sa.text("SELECT name FROM person WHERE id = :p"),
                            {"p": leader.person_id}).scalar_one()
    send(engine, clock, settings, sender="9001", press=Press("accept", case_id, 1))
    return case_id, name


def test_chat_refusals_read_in_chinese(city: Engine, clock: FakeClock,
                                       settings: Settings) -> None:
    case_id, leader = a_case(city, clock, settings)
    # Not theirs to do: the resident presses the leader's button.
    said = send(city, clock, settings, sender="5001", press=Press("resolve", case_id, 2))
    assert said and set(said) == {f"抱歉，您不是工单#{case_id}的承办人或其上级，不能办结"}
    # ... and the case's history says so in words.
    admin = holder_of(city, "admin", "341602")
    link(city, admin.person_id, "7001")
    (history,) = send(city, clock, settings, sender="7001", command="case", args=(str(case_id),))
    assert f"：您不是工单#{case_id}的承办人或其上级，不能办结" in history
    # No such case.
    said = send(city, clock, settings, sender="9001", press=Press("accept", 99999, 1))
    assert set(said) == {"抱歉，没有工单#99999"}
    # A stale button: what changed, by whom, and the state now.
    said = send(city, clock, settings, sender="9001", press=Press("accept", case_id, 1))
    assert len(set(said)) == 1
    text = said[0]
    assert text.startswith(f"工单#{case_id}已有新变化：") and f" {leader}已受理，" in text
    assert text.endswith("现为「处理中」。此操作未执行，请按最新消息操作。")


def test_chat_refusals_read_in_english_after_lang_en(city: Engine, clock: FakeClock,
                                                     settings: Settings) -> None:
    case_id, leader = a_case(city, clock, settings)
    assert send(city, clock, settings, sender="5001", command="lang", args=("en",)) == [
        "Switched to English."]
    send(city, clock, settings, sender="9001", command="lang", args=("en",))

    said = send(city, clock, settings, sender="5001", press=Press("resolve", case_id, 2))
    assert said and set(said) == {f"Sorry. You are not the holder of case #{case_id} nor above "
                                  "them, so resolving it is not for you"}
    said = send(city, clock, settings, sender="9001", press=Press("accept", 99999, 1))
    assert set(said) == {"Sorry. There is no case #99999"}
    said = send(city, clock, settings, sender="9001", press=Press("accept", case_id, 1))
    assert len(set(said)) == 1
    text = said[0]
    assert text.startswith(f"Case #{case_id} has changed: {leader} accepted it at ")
    assert text.endswith("; it is now “in progress”. Nothing was done: please act on the "
                         "latest message.")
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in text.replace(leader, ""))


# ---------------------------------------------------------------------------- HTTP

@pytest.fixture
def site(engine: Engine, db_url: str, tmp_path: Path,
         clock: FakeClock) -> Iterator[dict[str, Any]]:
    city = build_city(engine)
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url="http://dash.test")
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    clients: list[httpx.Client] = []
    with serve(app) as url:
        try:
            yield {"engine": engine, "city": city, "clock": clock, "url": url, "clients": clients}
        finally:
            for client in clients:
                client.close()


def signed_in(site: dict[str, Any], person_id: int) -> httpx.Client:
    with session_scope(site["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=person_id, now=site["clock"].now(),
                                           ttl=timedelta(minutes=15))
    client = httpx.Client(base_url=site["url"], follow_redirects=False, timeout=30)
    site["clients"].append(client)
    assert client.get(f"/login/{token}").status_code == 303
    return client


def test_http_refusals_are_chinese_sentences_with_their_status(site: dict[str, Any]) -> None:
    city, clock = site["city"], site["clock"]
    case_id = open_case(site["engine"], clock, city)
    admin = signed_in(site, city["town_admin"])
    csrf = {"X-CSRF-Token": admin.get("/api/me").json()["csrf_token"]}
    r = admin.get("/api/cases/99999")
    assert (r.status_code, r.json()) == (404, {"detail": "没有工单#99999"})
    assert admin.post(f"/api/cases/{case_id}/accept", json={"version": 1},
                      headers=csrf).status_code == 200
    r = admin.post(f"/api/cases/{case_id}/accept", json={"version": 1}, headers=csrf)
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"工单#{case_id}已有新变化：")
    assert r.json()["detail"].endswith("现为「处理中」。此操作未执行，请按最新消息操作。")
    r = admin.post("/api/passwords", json={"phone": "13911112222", "password": "a long one"},
                   headers=csrf)
    assert (r.status_code, r.json()) == (
        403, {"detail": "您只能为自己管辖范围内、职务低于您的书记或管理员设置密码"})
    r = admin.get("/api/cases", params={"node": "no-such-node"})
    assert (r.status_code, r.json()) == (404, {"detail": "没有编码为 no-such-node 的节点"})
