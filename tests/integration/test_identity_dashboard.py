"""Person invites on the dashboard: an admin makes, prints and revokes them, inside their
subtree only; the printed code then binds the 书记's WeChat account through the chat."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound
from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.settings import Settings
from tests.support.demo_city import load_demo
from tests.support.server import serve
from webhooks.app import create_app


@pytest.fixture
def world(engine: Engine, tmp_path, clock: FakeClock) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    load_demo(engine)
    st = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url="http://dash.test")
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


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf"\s+value="([^"]+)"', html)
    assert m is not None
    return m.group(1)


def test_a_town_admin_prints_an_invite_that_binds_a_secretary_on_wechat(
        world: dict[str, Any]) -> None:
    with closing(signed_in(world, "13900000002")) as admin:  # 张娟, town admin
        listing = admin.get("/dashboard/invites")
        assert listing.status_code == 200 and "暂无有效的个人邀请" in listing.text
        token = csrf_of(listing.text)
        refused = admin.post("/dashboard/invites", data={"phone": "13900000001",
                                                          "csrf": token})
        assert refused.status_code == 404 and "没有找到" in refused.json()["detail"]
        forged = admin.post("/dashboard/invites", data={"phone": "13900000006", "csrf": "x"})
        assert forged.status_code == 403
        made = admin.post("/dashboard/invites", data={"phone": "13900000006", "csrf": token})
        assert made.status_code == 303
        shown = admin.get(made.headers["location"])
        code = re.search(r"绑定 ([A-Z0-9]{4}-[A-Z0-9]{4})", shown.text)
        qr = re.search(r'<img src="(/invite-qr/j[a-z0-9]+)"', shown.text)
        assert code is not None and qr is not None and "黄涛" in shown.text
        assert admin.get(qr.group(1)).headers["content-type"].startswith("image/svg+xml")
        assert code.group(1) in admin.get("/dashboard/invites").text
    inbound = Inbound(platform="wechat", update_id="w1", chat_id="o_huang", sender_id="o_huang",
                      received_at=world["clock"].now(), text=f"绑定 {code.group(1)}")
    assert process(world["engine"], inbound=inbound, payload={}, clock=world["clock"],
                   settings=world["settings"])
    with world["engine"].connect() as conn:
        got = conn.execute(sa.text("SELECT person_id, proof FROM chat_identity WHERE"
                                   " external_id = 'o_huang'")).one()
    assert tuple(got) == (person(world["engine"], "13900000006"), "person_invite")


def test_revoking_on_the_dashboard_and_who_may_see_the_page(world: dict[str, Any]) -> None:
    with closing(signed_in(world, "13900000002")) as admin:
        token = csrf_of(admin.get("/dashboard/invites").text)
        where = admin.post("/dashboard/invites", data={"phone": "13900000044",
                                                        "csrf": token}).headers["location"]
        page = admin.get(where).text
        revoke_url = re.search(r'action="(/dashboard/invites/\d+/revoke)"', page)
        assert revoke_url is not None
        assert admin.post(revoke_url.group(1), data={"csrf": token}).status_code == 303
        assert "已作废" in admin.get(where).text
    with world["engine"].connect() as conn:
        assert conn.execute(sa.text("SELECT revoked FROM invite")).scalar_one() in (True, 1)
    with closing(signed_in(world, "13900000006")) as secretary:  # a 书记, no admin post
        assert secretary.get("/dashboard/invites").status_code == 403
        assert secretary.get(where).status_code == 403


def wechat(w: dict[str, Any], openid: str, text: str, n: int) -> None:
    inbound = Inbound(platform="wechat", update_id=f"wx{n}", chat_id=openid, sender_id=openid,
                      received_at=w["clock"].now(), text=text)
    assert process(w["engine"], inbound=inbound, payload={}, clock=w["clock"],
                   settings=w["settings"])


def test_a_town_admin_confirms_a_typed_resident_number_on_the_dashboard(
        world: dict[str, Any]) -> None:
    wechat(world, "o_zhou", "小区门口路灯不亮", 1)
    wechat(world, "o_zhou", "13900000009", 2)  # 周军
    with closing(signed_in(world, "13900000002")) as admin:
        listing = admin.get("/dashboard/invites").text
        assert "周军（幸福社区1号楼）想绑定微信" in listing
        yes = re.search(r'action="(/dashboard/bind-requests/\d+/yes)"', listing)
        assert yes is not None
        assert admin.post(yes.group(1), data={"csrf": "x"}).status_code == 403
        assert admin.post(yes.group(1), data={"csrf": csrf_of(listing)}).status_code == 303
        assert "待确认的居民绑定" not in admin.get("/dashboard/invites").text
        again = admin.post(yes.group(1), data={"csrf": csrf_of(listing)})
        assert again.status_code == 409
    with world["engine"].connect() as conn:
        got = conn.execute(sa.text("SELECT person_id, proof FROM chat_identity WHERE"
                                   " external_id = 'o_zhou'")).one()
        case = conn.execute(sa.text("SELECT text FROM cases")).scalar_one()
        told = conn.execute(sa.text("SELECT text FROM outbox WHERE address = 'o_zhou'"
                                    " ORDER BY id")).scalars().all()
    assert tuple(got) == (person(world["engine"], "13900000009"), "resident_confirmed")
    assert case == "小区门口路灯不亮"
    assert any("已转给邻长" in x for x in told)
