"""The web chat: a 书记 sends a notice with /notice to the 邻长 of their village, each 邻长
sees it in their chat pane with a 收到 button; some press it, one presses twice, a 邻长 of
another village presses a copied button; the receipts on GET /api/notices/{id} follow. The
whole app over real HTTP, the sweep on the fake clock re-pings those who have not confirmed."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate, write_session
from core.settings import Settings
from tests.e2e.test_webchat import Browser, _close_clients  # noqa: F401  (closes clients)
from tests.support.demo_city import VILLAGE1, holder_of, load_demo
from tests.support.poll import poll
from tests.support.server import serve
from webhooks.app import create_app

IDS = itertools.count(300000)


@pytest.fixture
def web(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"))
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container)) as base:
        yield {"base": base, "engine": engine, "clock": clock}


class Pane:
    """One person's web chat pane: what they say and press, and what the bot showed them."""

    def __init__(self, base: str, engine: Any, person_id: int) -> None:
        self.b, self.engine, self.id = Browser(base, person_id), engine, person_id

    def say(self, text: str) -> None:
        assert self.b.send(f"m{next(IDS)}", text).status_code == 200

    def shown(self) -> list[tuple[int, str, list[dict[str, Any]]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, text, actions FROM web_message WHERE chat_id = :c ORDER BY id"),
                {"c": f"demo-{self.id}"}).all()
        return [(mid, text or "", json.loads(raw) if isinstance(raw, str) else (raw or []))
                for mid, text, raw in rows]

    def wait(self, words: str, *, count: int = 1) -> str:
        got = poll(lambda: [t for _m, t, _a in self.shown() if words in t][count - 1:],
                   timeout=20, what=f"{words!r} in pane {self.id}")
        return got[0]

    def button(self, label: str) -> dict[str, Any]:
        for mid, _t, actions in reversed(self.shown()):
            for a in actions:
                if a["label"] == label:
                    return {**a, "message_id": str(mid)}
        raise AssertionError(f"no button {label!r} in pane {self.id}")

    def press(self, a: dict[str, Any]) -> None:
        body = {"client_id": f"p{next(IDS)}", "action": a["action"], "case_id": a["case_id"],
                "version": a["version"], "arg": a.get("arg"), "message_id": a["message_id"],
                "label": a["label"]}
        r = self.b.client.post("/chat/press", content=json.dumps(body), headers=self.b.headers())
        assert r.status_code == 200, r.text


def test_web_chat_notice_with_receipts(web: dict[str, Any]) -> None:
    base, engine, clock = web["base"], web["engine"], web["clock"]
    with engine.connect() as conn:
        lz_ids = [int(x) for x in conn.execute(sa.text(
            "SELECT DISTINCT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE x.role = 'neighbor_leader' AND n.path LIKE"
            " (SELECT path FROM node WHERE code = :v) || '%' ORDER BY 1"),
            {"v": VILLAGE1}).scalars()]
        stranger = int(conn.execute(sa.text(
            "SELECT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE x.role = 'neighbor_leader' AND n.path NOT LIKE"
            " (SELECT path FROM node WHERE code = :v) || '%' ORDER BY 1"),
            {"v": VILLAGE1}).scalars().first())
    leaders = [Pane(base, engine, pid) for pid in lz_ids]
    other = Pane(base, engine, stranger)
    sec = Pane(base, engine, holder_of(engine, "secretary", VILLAGE1).person_id)

    sec.say("/notice")
    sec.wait("哪些人")
    sec.press(sec.button("邻长"))
    sec.wait("请发送通知内容")
    sec.say("周六上午统一清理楼道杂物")
    sec.wait("需要大家回复")
    sec.press(sec.button("需要"))
    sec.wait("截止时间")
    sec.press(sec.button("24小时内"))
    summary = sec.wait("确认发送吗")
    assert f"邻长{len(leaders)}" in summary
    sec.press(sec.button("发送"))
    sec.wait(f"共{len(leaders)}人")

    for p in leaders:
        assert "清理楼道杂物" in p.wait("【通知】")
    leaders[0].press(leaders[0].button("收到"))
    leaders[0].wait("已确认收到")
    leaders[0].press(leaders[0].button("收到"))
    leaders[0].wait("已确认过")
    leaders[1].say("收到")
    leaders[1].wait("已确认收到")
    # A 邻长 of another village presses a copy of the button: refused, nothing counted.
    copied = {**leaders[0].button("收到"), "message_id": "0"}
    other.press(copied)
    other.wait("不是发给您的")

    with write_session(engine) as s:
        token = accounts.issue_login_token(s, person_id=sec.id, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    with engine.connect() as conn:
        nid = int(conn.execute(sa.text("SELECT max(id) FROM notice")).scalar_one())
    with httpx.Client(base_url=base, timeout=30) as dash:
        assert dash.get(f"/login/{token}").status_code == 303

        def totals() -> dict[str, Any]:
            r = dash.get(f"/api/notices/{nid}")
            assert r.status_code == 200, r.text
            return dict(r.json()["totals"])
        got = poll(lambda: (t := totals())["delivered"] == len(leaders) and t,
                   timeout=20, what="every copy delivered")
        assert got["recipients"] == len(leaders) and got["confirmed"] == 2
        assert got["unreachable"] == 0
        kids = dash.get(f"/api/notices/{nid}").json()["children"]
        assert sum(k["recipients"] for k in kids) == len(leaders)
        page = dash.get(f"/dashboard/notices/{nid}")
        assert page.status_code == 200 and "回执" in page.text

    clock.advance(timedelta(hours=4, minutes=1))
    for p in leaders[2:]:
        p.wait("【提醒】")
    for p in leaders[:2]:
        assert not any("【提醒】" in t for _m, t, _a in p.shown())
