"""The whole story on WeChat and WeCom: the real app against fake WeChat and WeCom API servers.

A resident reports through the Official Account (text, photo, voice with speech recognition),
the 邻长 accepts by template-card button and answers by quoting #<case id> in the WeCom app,
the resident gets the answer as a customer-service message inside the 48-hour window and as a
template message outside it, and an unanswered case escalates to the 组长 in WeCom.
Deadlines run on the fake clock; only delivery is waited for, in bounded polls.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image
from pydantic import SecretStr
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.fakes.wechat_api import FakeWeChatApi
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.poll import poll
from tests.support.server import serve
from tests.support.wechat import (
    DOC_AES_KEY,
    DOC_APP_ID,
    DOC_TOKEN,
    WECOM_AES_KEY,
    WECOM_CORP_ID,
    WECOM_TOKEN,
    sealed,
    xml_of,
)
from webhooks.app import create_app

RESIDENT, LEADER, GROUP_LEADER = "o_resident", "lin1", "zu1"


def wait_for(what: Callable[[], Any], *, timeout: float = 8.0, why: str = "") -> Any:
    return poll(what, timeout=timeout, what=why or str(what))


class World:
    def __init__(self, url: str, oa: FakeWeChatApi, wecom: FakeWeChatApi, engine: Any,
                 clock: FakeClock) -> None:
        self.http = httpx.Client(base_url=url)
        self.oa, self.wecom, self.engine, self.clock = oa, wecom, engine, clock
        self.oa_crypto = WeChatCrypto(DOC_TOKEN, DOC_AES_KEY, DOC_APP_ID)
        self.wecom_crypto = WeComCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID)
        self.n = 0

    def _id(self) -> int:
        self.n += 1
        return 10_000 + self.n

    def resident(self, **fields: Any) -> None:
        """The resident sends something to the Official Account."""
        self.oa.user_wrote(RESIDENT)
        msg = {"ToUserName": "gh_1", "FromUserName": RESIDENT, "CreateTime": self._id(),
               "MsgId": self._id(), **fields}
        query, body = sealed(self.oa_crypto, xml_of(msg), clock=self.clock)
        r = self.http.post("/webhooks/wechat", params=query, content=body)
        assert r.status_code == 200 and r.text == "success"

    def leader(self, who: str, **fields: Any) -> None:
        """A leader does something in the WeCom app."""
        msg = {"ToUserName": WECOM_CORP_ID, "FromUserName": who, "CreateTime": self._id(),
               "AgentID": 1, **fields}
        query, body = sealed(self.wecom_crypto, xml_of(msg), clock=self.clock)
        assert self.http.post("/webhooks/wecom", params=query, content=body).status_code == 200

    def case_ids(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT id FROM cases ORDER BY id")).scalars())


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'wx.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    for role, code, uid in (("neighbor_leader", LIN1, LEADER),
                            ("group_leader", LIN1[:-3], GROUP_LEADER)):
        who = holder_of(engine, role, code)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'wecom', :t, false)"),
                         {"p": who.person_id, "t": uid})
    with FakeWeChatApi("oa", clock) as oa, FakeWeChatApi("wecom", clock) as wecom:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, database_url=url, media_dir=str(tmp_path / "media"),
            wechat_app_id=DOC_APP_ID, wechat_app_secret=SecretStr("s1"),
            wechat_token=SecretStr(DOC_TOKEN), wechat_encoding_aes_key=SecretStr(DOC_AES_KEY),
            wechat_api_base=oa.base_url, wechat_template_answer="TPL_ANSWER",
            wechat_template_confirm="TPL_CONFIRM",
            wecom_corp_id=WECOM_CORP_ID, wecom_agent_id="1", wecom_secret=SecretStr("s2"),
            wecom_token=SecretStr(WECOM_TOKEN),
            wecom_encoding_aes_key=SecretStr(WECOM_AES_KEY), wecom_api_base=wecom.base_url)
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container)) as base:
            w = World(base, oa, wecom, engine, clock)
            yield w
            w.http.close()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def test_report_accept_answer_in_and_out_of_window_and_escalate(world: World) -> None:
    w = world
    resident = holder_of(w.engine, "resident", LIN1)
    w.oa.media["photo-1"] = jpeg()
    w.oa.media["voice-1"] = b"#!AMR\n" + b"\x3c" * 320

    # A stranger reports, is asked to join, and types their phone number: WeChat proves
    # nothing, so their 邻长 is asked in WeCom and confirms with one tap; everything sent
    # before then becomes a case at the 邻长's WeCom.
    w.resident(MsgType="text", Content="楼道灯坏了三天了")
    wait_for(lambda: w.oa.sent_to(RESIDENT), why="how to join")
    w.resident(MsgType="text", Content=resident.phone)
    w.resident(MsgType="image", MediaId="photo-1", PicUrl="http://x")
    w.resident(MsgType="voice", MediaId="voice-1", Format="amr", Recognition="晚上一片漆黑")
    ask = wait_for(lambda: [m for m in w.wecom.sent_to(LEADER)
                            if m.msgtype == "template_card" and "想绑定微信" in m.text],
                   why="the 邻长 asked to confirm the resident")[0]
    yes = {b["text"]: b["key"] for b in ask.body["template_card"]["button_list"]}["是"]
    w.leader(LEADER, MsgType="event", Event="template_card_event", EventKey=yes,
             TaskId=ask.body["template_card"]["task_id"], CardType="button_interaction",
             ResponseCode="rc-0")
    card = wait_for(lambda: [m for m in w.wecom.sent_to(LEADER)
                             if m.msgtype == "template_card" and "楼道灯" in m.text],
                    why="the case card at the 邻长")[0]
    case_id = w.case_ids()[0]
    # One token each, shared by the sender and the fetcher (the fake clock has not moved).
    assert w.oa.tokens_issued == 1 and w.wecom.tokens_issued == 1
    keys = {b["text"]: b["key"] for b in card.body["template_card"]["button_list"]}
    assert "受理" in keys

    def fetched() -> bool:
        with w.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT kind, fetch_status, caption FROM"
                                        " case_attachment")).all()
        return len(rows) >= 2 and all(r.fetch_status == "stored" for r in rows)

    wait_for(fetched, why="photo and voice fetched by MediaId and stored")

    # The 邻长 accepts with the card button; the clicked card is updated.
    w.leader(LEADER, MsgType="event", Event="template_card_event", EventKey=keys["受理"],
             TaskId=card.body["template_card"]["task_id"], CardType="button_interaction",
             ResponseCode="rc-1")
    wait_for(lambda: any(u["response_code"] == "rc-1" for u in w.wecom.card_updates),
             why="the card updated")

    # WeChat allows 5 customer-service messages per message of the user, and several messages
    # at once allow 5, not more (客服消息下发规则): the replies to her messages, the receipt and
    # the welcome used those of her last one. She writes again, as people do.
    w.resident(MsgType="text", Content="好的，谢谢")
    # The 邻长 answers by quoting the case id: the resident gets it inside the 48 h window.
    w.leader(LEADER, MsgType="text", Content=f"#{case_id} 明天上午来换灯泡", MsgId=9001)
    wait_for(lambda: any("明天上午来换灯泡" in m.text and m.msgtype != "template"
                         for m in w.oa.sent_to(RESIDENT)), why="the answer inside the window")

    # A second problem goes unanswered past the 4-hour deadline: the 组长 gets it in WeCom.
    w.clock.advance(timedelta(minutes=15))
    w.resident(MsgType="text", Content="单元门口的垃圾三天没人收")
    wait_for(lambda: any("垃圾" in m.text for m in w.wecom.sent_to(LEADER)), why="second card")
    w.clock.advance(timedelta(hours=4, minutes=1))
    wait_for(lambda: any("垃圾" in m.text for m in w.wecom.sent_to(GROUP_LEADER)),
             why="escalation to the 组长")

    # Two days later the resident has not written: what the case's progress tells them now
    # goes as a template message (customer-service messages would be refused with 45015).
    before = len([m for m in w.oa.sent_to(RESIDENT) if m.msgtype == "template"])
    w.clock.advance(timedelta(hours=49))
    wait_for(lambda: len([m for m in w.oa.sent_to(RESIDENT) if m.msgtype == "template"])
             > before, why="a notice as a template outside the window")
    assert w.wecom.dropped == [], "WeCom's per-member limits were never exceeded"
