"""A campaign in the web chat, over real HTTP as the page speaks it: the 邻长 opens the list by
typing 摸排, marks households with one tap each, stops and comes back to where they were; the
组长 confirms a new person from their own chat; a press on another 邻's household and on a
closed campaign are refused in words."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.campaigns.services import close_campaign, start_campaign
from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate, write_session
from core.hierarchy.queries import node_by_code
from core.settings import Settings
from tests.e2e.test_webchat import Browser, _close_clients  # noqa: F401  (closes clients)
from tests.support.demo_city import GROUP1, LIN1, holder_of, load_demo
from tests.support.poll import poll
from tests.support.server import serve
from webhooks.app import create_app

IDS = itertools.count(300000)
LIN2 = GROUP1 + "002"


@pytest.fixture
def web(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[str, Any, FakeClock]]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    settings = Settings(_env_file=None, database_url=url, demo_mode=True,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"))
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container)) as base:
        yield base, engine, clock


class Chat:
    def __init__(self, base: str, engine: Any, person_id: int) -> None:
        self.b, self.engine, self.id = Browser(base, person_id), engine, person_id

    def say(self, text: str) -> None:
        r = self.b.send(f"m{next(IDS)}", text)
        assert r.status_code == 200, r.text

    def messages(self) -> list[tuple[int, str, list[dict[str, Any]]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, text, actions FROM web_message WHERE chat_id = :c ORDER BY id"),
                {"c": f"demo-{self.id}"}).all()
        return [(i, t or "", json.loads(a) if isinstance(a, str) else (a or []))
                for i, t, a in rows]

    def last(self, words: str) -> tuple[int, str, list[dict[str, Any]]]:
        def found() -> list[Any]:
            return [m for m in self.messages() if words in m[1]]
        return poll(found, timeout=20, what=f"{words!r} for {self.id}")[-1]  # type: ignore[no-any-return]

    def tap(self, words: str, label_part: str) -> None:
        """Press a button on the newest message with these words."""
        mid, _, actions = self.last(words)
        a = next(x for x in actions if label_part in x["label"])
        self.press(a, mid)

    def press(self, a: dict[str, Any], mid: int) -> None:
        body = {"client_id": f"p{next(IDS)}", "action": a["action"], "case_id": a["case_id"],
                "version": a["version"], "arg": a.get("arg"), "message_id": str(mid),
                "label": a["label"]}
        r = self.b.client.post("/chat/press", content=json.dumps(body), headers=self.b.headers())
        assert r.status_code == 200, r.text


def test_web_chat_checklist(web: tuple[str, Any, FakeClock]) -> None:
    base, engine, clock = web
    a = Chat(base, engine, holder_of(engine, "neighbor_leader", LIN1).person_id)
    b = Chat(base, engine, holder_of(engine, "neighbor_leader", LIN2).person_id)
    gl = Chat(base, engine, holder_of(engine, "group_leader", GROUP1).person_id)
    a.say("摸排")
    a.last("没有进行中的摸排任务")
    with write_session(engine) as s:
        c = start_campaign(s, node_id=node_by_code(s, GROUP1).id, title="人口核查",
                           instructions="", outcomes=None,
                           deadline=clock.now() + timedelta(hours=6), started_by=None,
                           clock=clock)
        cid = c.id
    a.last("您负责的3户")  # the notifier's message reached the web chat

    a.say("摸排")
    a.tap("已登记 0/3", "101室")
    a.tap("101室\n请选择结果", "已完成")
    a.tap("已登记 1/3", "202室")
    a.tap("202室\n请选择结果", "有新增人员")
    a.last("请发送新增人员的姓名和手机号")
    a.say("孙小美 13822223333")
    a.last("已登记新增人员 孙小美")
    # stops here; a note on a marked household is optional
    a.tap("已登记 2/3", "101室")
    a.tap("101室\n当前：已完成", "备注")
    a.say("老人独居，需关注")
    a.last("备注已保存")

    # B starts, another 邻's household is refused
    b.say("摸排")
    mid, _, page_b = b.last("已登记 0/3")
    a_page = a.last("已登记 2/3")[2]
    foreign = next(x for x in a_page if "303室" in x["label"])
    b.press(foreign, mid)
    b.last("不是您负责的邻")

    # A resumes where they left off
    shown = sum(1 for m in a.messages() if "已登记 2/3" in m[1])
    a.say("摸排")
    poll(lambda: sum(1 for m in a.messages() if "已登记 2/3" in m[1]) > shown, timeout=20,
         what="the checklist again")
    mid, _, actions = a.last("已登记 2/3")
    assert any(x["label"].startswith("○") and "303室" in x["label"] for x in actions)
    a.tap("已登记 2/3", "303室")
    a.tap("303室\n请选择结果", "不在家")
    a.last("全部3户已登记")

    # the 组长 confirms the new person in their chat
    gl.tap("孙小美", "确认")
    gl.last("已加入名册")
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT COUNT(*) FROM post x JOIN person p ON p.id = x.person_id"
            " WHERE p.phone = '13822223333' AND x.role = 'resident'")).scalar_one() == 1
        note = conn.execute(sa.text("SELECT note FROM campaign_item WHERE campaign_id = :c"
                                    " AND address = '幸福社区3号楼101室'"), {"c": cid}).scalar()
    assert note == "老人独居，需关注"

    with write_session(engine) as s:
        close_campaign(s, campaign_id=cid or 0, person_id=None, clock=clock)
    mid, _, page_b = b.last("已登记 0/3")
    b.press(next(x for x in page_b if "202室" in x["label"]), mid)
    b.last("已经结束")
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT COUNT(*) FROM campaign_item i JOIN node n ON n.id = i.node_id"
            " WHERE n.code = :c AND i.outcome IS NOT NULL"), {"c": LIN2}).scalar_one() == 0
