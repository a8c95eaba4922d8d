"""Who looks after me (/mylz on Telegram and WeChat), the printable 邻长联系卡 and who may open
it, /case timelines in the deployment's time zone, and a closed case's holders ending at its
close on the dashboard case page."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound
from core.cases import actions, closing
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.settings import Settings
from tests.casehelpers import get, open_case
from tests.cityfactory import build_city
from tests.integration.test_dashboard import client_for
from tests.support.demo_city import AREA1, GROUP1, LIN1, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

_ids = itertools.count(1)


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(_env_file=None, media_dir=str(tmp_path / "media"),  # type: ignore[call-arg]
                    office_hours="工作日 8:30-17:30", **kw)


def link(engine: Engine, person_id: int, platform: str, external: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, :pl, :t, false)"),
                     {"p": person_id, "pl": platform, "t": external})


def say(engine: Engine, clock: FakeClock, settings: Settings, platform: str, sender: str,
        **fields: Any) -> str:
    """One inbound message through the dispatcher; the text of what it answered."""
    uid = str(next(_ids))
    inbound = Inbound(platform=platform, update_id=uid, chat_id=sender, sender_id=sender,
                      received_at=clock.now(), **fields)
    assert process(engine, inbound=inbound, payload={"update_id": uid}, clock=clock,
                   settings=settings)
    with engine.connect() as conn:
        return "\n".join(conn.execute(sa.text(
            "SELECT text FROM outbox WHERE dedupe_key LIKE :k ORDER BY id"),
            {"k": f"in:{platform}:{uid}:%"}).scalars())


@pytest.mark.parametrize(("platform", "fields"), [
    ("telegram", {"command": "mylz", "text": "/mylz"}),
    ("wechat", {"command": "mylz", "text": "/mylz"}),
    ("wechat", {"text": "我的邻长"}),
])
def test_mylz_names_the_leaders_with_their_numbers(city: Engine, clock: FakeClock,
                                                   tmp_path: Path, platform: str,
                                                   fields: dict[str, Any]) -> None:
    resident = holder_of(city, "resident", LIN1)
    link(city, resident.person_id, platform, "r1")
    text = say(city, clock, _settings(tmp_path), platform, "r1", **fields)
    for role, code in (("neighbor_leader", LIN1), ("group_leader", GROUP1),
                       ("area_leader", AREA1)):
        who = holder_of(city, role, code)
        assert who.name in text and who.phone in text, text
    assert "邻长：" in text and "组长：" in text and "片长：" in text
    assert "办公时间：工作日 8:30-17:30" in text
    assert "/mylz" in say(city, clock, _settings(tmp_path), platform, "r1", command="help",
                          text="/help")


def test_case_timeline_is_in_the_deployment_time_zone(city: Engine, clock: FakeClock,
                                                      tmp_path: Path) -> None:
    st = _settings(tmp_path, timezone="Asia/Shanghai")
    resident = holder_of(city, "resident", LIN1)
    secretary = holder_of(city, "secretary", VILLAGE1)
    link(city, resident.person_id, "telegram", "r1")
    link(city, secretary.person_id, "telegram", "s1")
    say(city, clock, st, "telegram", "r1", text="门口井盖松了")
    with city.connect() as conn:
        case_id = conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one()
    text = say(city, clock, st, "telegram", "s1", command="case", args=(str(case_id),),
               text=f"/case {case_id}")
    # The fake clock stands at 02:00 UTC: 10:00 in Shanghai.
    assert "11-23 10:00 受理登记" in text, text
    assert "02:00" not in text


@pytest.fixture
def app_url(city: Engine, clock: FakeClock, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    st = _settings(tmp_path, database_url="sqlite://")
    container = build_container(st, clock=clock, engine=city)
    with serve(create_app(st, clock=clock, container=container, run_jobs=False)) as url:
        yield url, st


def test_contact_card_page_for_the_invite_holder(city: Engine, clock: FakeClock,
                                                 app_url: tuple[str, Settings]) -> None:
    url, st = app_url
    lz = holder_of(city, "neighbor_leader", LIN1)
    link(city, lz.person_id, "telegram", "lz1")
    invite = say(city, clock, st, "telegram", "lz1", command="invite", text="/invite")
    card_link = re.search(r"/card/(j[A-Za-z0-9_-]+)", invite)
    assert card_link is not None, invite
    code = card_link.group(1)
    with httpx.Client(base_url=url) as http:
        page = http.get(f"/card/{code}")
        assert page.status_code == 200
        assert "邻长联系卡" in page.text and lz.name in page.text
        assert f'href="tel:{lz.phone}"' in page.text
        assert holder_of(city, "group_leader", GROUP1).name in page.text
        assert "办公时间：工作日 8:30-17:30" in page.text
        assert "<script src=" in page.text and "<style" not in page.text
        # Nobody without the 邻's invite gets a card: an unknown or revoked code shows nothing.
        assert http.get("/card/jNOSUCHCODE1").status_code == 404
        assert http.get("/card/..%2Fx").status_code == 404
        say(city, clock, st, "telegram", "lz1", command="revoke", args=(code,),
            text=f"/revoke {code}")
        gone = http.get(f"/card/{code}")
        assert gone.status_code == 404 and "联系卡" in gone.text


def test_closed_case_holder_ends_at_its_close(engine: Engine, db_url: str, tmp_path: Path,
                                              clock: FakeClock) -> None:
    from datetime import timedelta

    city = build_city(engine)
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url="http://dash.test")
    case_id = open_case(engine, clock, city)
    holder = get(engine, case_id).holder_id
    for fn in (actions.accept, actions.resolve):
        clock.advance(timedelta(hours=1))
        with session_scope(engine) as s:
            fn(s, clock=clock, case_id=case_id, person_id=holder,
               version=get(engine, case_id).version)
    clock.advance(timedelta(hours=1))
    with session_scope(engine) as s:
        closing.confirm(s, clock=clock, case_id=case_id, person_id=city["resident1"],
                        version=get(engine, case_id).version, rating=5)
    clock.advance(timedelta(days=3))
    container = build_container(st, clock=clock, engine=engine)
    app = create_app(st, clock=clock, container=container, run_jobs=False)
    with serve(app) as url:
        w = {"engine": engine, "clock": clock, "url": url, "clients": []}
        try:
            page = client_for(w, city["town_admin"]).get(f"/dashboard/cases/{case_id}").text
        finally:
            for c in w["clients"]:
                c.close()
    holders = page.split('<ul class="holders">')[1].split("</ul>")[0]
    assert "至今" not in holders
    assert "11-23 13:00" in holders, holders  # closed at 05:00 UTC, shown in Shanghai time
    assert "<dt>版本</dt>" not in page


def test_my_cases_cut_long_texts_with_an_ellipsis(city: Engine, clock: FakeClock,
                                                  tmp_path: Path) -> None:
    st = _settings(tmp_path)
    resident = holder_of(city, "resident", LIN1)
    link(city, resident.person_id, "telegram", "r1")
    long = "楼道里的灯已经坏了整整一个星期了晚上老人上下楼非常危险希望尽快派人来修理谢谢"
    say(city, clock, st, "telegram", "r1", text=long)
    text = say(city, clock, st, "telegram", "r1", command="my", text="/my")
    line = next(x for x in text.splitlines() if x.startswith("#"))
    assert line.endswith("…") and long not in line, line
