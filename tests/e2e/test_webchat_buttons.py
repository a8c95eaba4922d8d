"""Every button kind pressed on the web chat over real HTTP, as the page sends it (`arg` from
the button's JSON, like chat.js): each press moves the case, the stars rate it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_webchat import Browser, _close_clients  # noqa: F401  (closes clients)
from tests.support.demo_city import AREA1, GROUP1, LIN1, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

IDS = itertools.count(100000)


@pytest.fixture
def web(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[str, Any]]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"))
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container, run_jobs=False)) as base:
        yield base, engine


class Person:
    def __init__(self, base: str, engine: Any, person_id: int) -> None:
        self.b, self.engine, self.id = Browser(base, person_id), engine, person_id

    def say(self, text: str) -> None:
        r = self.b.send(f"m{next(IDS)}", text)
        assert r.status_code == 200, r.text

    def press(self, label: str, *, case_id: int) -> None:
        """Press the newest button with this label on a message about the case."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, actions FROM web_message WHERE chat_id = :c ORDER BY id DESC"),
                {"c": f"demo-{self.id}"}).all()
        for mid, raw in rows:
            actions = json.loads(raw) if isinstance(raw, str) else (raw or [])
            for a in actions:
                if a["label"] == label and a["case_id"] == case_id:
                    body = {"client_id": f"p{next(IDS)}", "action": a["action"],
                            "case_id": a["case_id"], "version": a["version"],
                            "arg": a.get("arg"), "message_id": str(mid), "label": a["label"]}
                    r = self.b.client.post("/chat/press", content=json.dumps(body),
                                           headers=self.b.headers())
                    assert r.status_code == 200, r.text
                    return
        raise AssertionError(f"no button {label!r} for case #{case_id} at person {self.id}")


def case(engine: Any, case_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT state, rating, category_id, holder_role FROM cases WHERE id = :i"),
            {"i": case_id}).one()


def events(engine: Any, case_id: int) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT kind FROM case_event WHERE case_id = :i ORDER BY id"),
            {"i": case_id}).scalars())


def last_case(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one())


def test_every_button_kind_moves_the_case(web) -> None:  # type: ignore[no-untyped-def]
    base, engine = web
    with engine.connect() as conn:
        rid = int(conn.execute(sa.text(
            "SELECT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE n.code = :c AND x.role = 'resident' ORDER BY x.id"), {"c": LIN1}).scalar())
    resident = Person(base, engine, rid)
    lz = Person(base, engine, holder_of(engine, "neighbor_leader", LIN1).person_id)

    resident.say("门口有一堆东西挡着")
    one = last_case(engine)
    assert case(engine, one).category_id is None
    resident.press("安全隐患", case_id=one)  # category choice
    assert case(engine, one).category_id is not None
    lz.press("受理", case_id=one)
    assert case(engine, one).state == "accepted"
    lz.press("答复居民", case_id=one)
    lz.say("马上来看")
    assert "replied" in events(engine, one)
    lz.press("请居民补充", case_id=one)
    lz.say("请拍张照片")
    assert "asked_more" in events(engine, one)
    resident.press("补充情况", case_id=one)
    resident.say("东西是三楼邻居放的")
    assert events(engine, one).count("added") == 1
    lz.press("已解决", case_id=one)
    assert case(engine, one).state == "resolved"
    resident.press("没解决", case_id=one)
    assert case(engine, one).state != "resolved" and "reopened" in events(engine, one)
    lz.press("已解决", case_id=one)
    resident.press("★★", case_id=one)
    assert (case(engine, one).state, case(engine, one).rating) == ("closed", 2)

    # Within minutes a second message adds to the last case; "这是新问题" files it alone.
    resident.say("单元门口垃圾没人收")
    two = last_case(engine)
    resident.say("楼道里电线裸露")
    assert last_case(engine) == two
    resident.press("这是新问题", case_id=two)
    assert last_case(engine) == two + 1

    # Escalate up to the 书记, who may whistle it over to a department.
    zz = Person(base, engine, holder_of(engine, "group_leader", GROUP1).person_id)
    pz = Person(base, engine, holder_of(engine, "area_leader", AREA1).person_id)
    sj = Person(base, engine, holder_of(engine, "secretary", VILLAGE1).person_id)
    for who, role in ((lz, "group_leader"), (zz, "area_leader"), (pz, "secretary")):
        who.press("解决不了，转上级", case_id=two)
        who.say("需要上级协调")
        assert case(engine, two).holder_role == role
    sj.press("吹哨（转职能部门）", case_id=two)
    assert case(engine, two).holder_role == "department" and "whistled" in events(engine, two)
