"""The WeCom app's and smart bot's callbacks: WeCom's documentation sample, forged and hostile
bodies, retries, template-card clicks (current and stale), quoted replies and the smart bot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.handlers.button_keys import encode
from core.cases import services
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.outbox import OutboxMessage
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from tests.support.wechat import (
    WECOM_AES_KEY,
    WECOM_CORP_ID,
    WECOM_ECHO,
    WECOM_MSG_BODY,
    WECOM_MSG_QUERY,
    WECOM_TOKEN,
    at,
    sealed,
    sealed_json,
    xml_of,
)
from webhooks.app import create_app

# WeCom's sample (token "123456", EncodingAESKey, CorpID wx49f0ab532d5d035a, the signed echostr
# and message) is the one of WeCom's "加解密方案说明" / WXBizMsgCrypt samples, as carried by
# wechatpy's own tests (wechatpy/wechatpy tests/test_crypto.py, test_check_signature_should_ok
# and test_decrypt_message): see tests/support/wechat.py.
BOT_TOKEN, BOT_AES_KEY = "bot-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
HOLDER, OUTSIDER = "lin1", "lin_other"
OTHER_LIN = "3416020010010101002"  # a 邻 under another 组长: its 邻长 has no say on LIN1's cases


@dataclass
class Env:
    http: httpx.Client
    engine: Engine
    app: WeComCrypto
    bot: WeComCrypto
    clock: FakeClock
    n: int = 0

    def leader(self, who: str, **fields: Any) -> httpx.Response:
        self.n += 1
        msg = {"ToUserName": WECOM_CORP_ID, "FromUserName": who, "CreateTime": 1_700_000_000
               + self.n, "AgentID": 1, **fields}
        query, body = sealed(self.app, xml_of(msg), nonce=str(self.n), clock=self.clock)
        return self.http.post("/webhooks/wecom", params=query, content=body)

    def in_group(self, who: str, text: str, quote: str | None = None) -> httpx.Response:
        self.n += 1
        data: dict[str, Any] = {"msgid": f"bm{self.n}", "aibotid": "bot1", "chatid": "grp1",
                                "chattype": "group", "from": {"userid": who},
                                "msgtype": "text", "text": {"content": f"@邻长助手 {text}"}}
        if quote is not None:
            data["quote"] = {"msgtype": "text", "text": {"content": quote}}
        query, body = sealed_json(self.bot, data, clock=self.clock)
        return self.http.post("/webhooks/wecom/bot", params=query, content=body)


@pytest.fixture
def env(engine: Engine, tmp_path: Path, clock: FakeClock) -> Iterator[Env]:
    settings = Settings(_env_file=None, database_url=str(engine.url),
                        wecom_corp_id=WECOM_CORP_ID, wecom_agent_id="1",
                        wecom_token=SecretStr(WECOM_TOKEN),
                        wecom_encoding_aes_key=SecretStr(WECOM_AES_KEY),
                        wecom_bot_token=SecretStr(BOT_TOKEN),
                        wecom_bot_encoding_aes_key=SecretStr(BOT_AES_KEY),
                        media_dir=str(tmp_path / "media"))
    c = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=c, run_jobs=False)) as url, \
            httpx.Client(base_url=url) as http:
        yield Env(http, engine, WeComCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID),
                  WeComCrypto(BOT_TOKEN, BOT_AES_KEY, ""), clock)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def case_row(engine: Engine, case_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT state, version FROM cases WHERE id = :i"),
                            {"i": case_id}).one()


def texts_to(engine: Engine, address: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT text FROM outbox WHERE address = :a"
                                         " ORDER BY id"), {"a": address}).scalars())


@pytest.fixture
def case_id(env: Env, clock: FakeClock) -> int:
    """The demo city, a case at LIN1's 邻长 (WeCom `lin1`) and another 邻长 on WeCom."""
    load_demo(env.engine)
    for role, node, uid in (("neighbor_leader", LIN1, HOLDER),
                            ("neighbor_leader", OTHER_LIN, OUTSIDER)):
        who = holder_of(env.engine, role, node)
        with env.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'wecom', :t, false)"),
                         {"p": who.person_id, "t": uid})
    resident = holder_of(env.engine, "resident", LIN1)
    with session_scope(env.engine) as s:
        case = services.open_case(s, clock=clock, settings=Settings(_env_file=None),
                                  resident_id=resident.person_id, text="楼道灯坏了")
        assert case.id is not None
        return case.id


# ---- the documentation sample, forged and hostile bodies (no city needed) --------------------

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database involved
def test_url_check_with_the_documentation_sample(env: Env) -> None:
    env.clock.set(at(WECOM_ECHO["timestamp"]))  # the sample is signed at its own time
    r = env.http.get("/webhooks/wecom", params=WECOM_ECHO)
    # The echostr of the sample decrypts to "5927782489442352469".
    assert r.status_code == 200 and r.text == "5927782489442352469"
    forged = env.http.get("/webhooks/wecom", params={**WECOM_ECHO, "nonce": "437374426"})
    assert forged.status_code == 403


def test_the_documentation_message_is_decrypted_and_stored_once(env: Env) -> None:
    env.clock.set(at(WECOM_MSG_QUERY["timestamp"]))
    for _ in range(3):  # WeCom retries like WeChat
        r = env.http.post("/webhooks/wecom", params=WECOM_MSG_QUERY, content=WECOM_MSG_BODY)
        assert r.status_code == 200
    with env.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT update_id FROM inbound_update WHERE platform ="
                                    " 'wecom'")).scalars().all()
    # The sample decrypts to a text message "test" from "messense" in agent 1.
    assert rows == ["4363689963896700987"]


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><MsgType>text</MsgType><FromUserName>u1</FromUserName><Content>&lol3;</Content>
<MsgId>9</MsgId></xml>"""
XXE = """<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><MsgType>text</MsgType><FromUserName>u1</FromUserName><Content>&xxe;</Content>
<MsgId>10</MsgId></xml>"""




def test_forged_undecryptable_and_hostile_bodies_are_refused_and_store_nothing(env: Env
                                                                                ) -> None:
    env.clock.set(at(WECOM_MSG_QUERY["timestamp"]))
    for query in ({**WECOM_MSG_QUERY, "msg_signature": "0" * 40},
                  {**WECOM_MSG_QUERY, "timestamp": "1411525904"}):
        r = env.http.post("/webhooks/wecom", params=query, content=WECOM_MSG_BODY)
        assert r.status_code == 403
    # Signed correctly with our token, but encrypted for another corp; or cut short.
    other = WeComCrypto(WECOM_TOKEN, WECOM_AES_KEY, "ww0000000000000000")
    query, body = sealed(other, xml_of({"MsgType": "text", "FromUserName": "u1",
                                        "Content": "hi", "MsgId": 1}), clock=env.clock)
    assert env.http.post("/webhooks/wecom", params=query, content=body).status_code == 400
    assert env.http.post("/webhooks/wecom", params=WECOM_MSG_QUERY,
                         content=b"<xml><Encrypt>").status_code == 400
    q2, b2 = sealed_json(WeComCrypto(BOT_TOKEN, BOT_AES_KEY, "someone-else"), {"msgid": "1"},
                         clock=env.clock)
    assert env.http.post("/webhooks/wecom/bot", params=q2, content=b2).status_code == 400
    assert env.http.post("/webhooks/wecom/bot", params=q2, content=b"{not json").status_code \
        == 400
    for hostile in (BOMB, XXE):
        # As the envelope itself, and as the decrypted message inside a valid envelope.
        assert env.http.post("/webhooks/wecom", params=WECOM_MSG_QUERY,
                             content=hostile).status_code == 400
        query, sealed_body = sealed(env.app, hostile, clock=env.clock)
        assert env.http.post("/webhooks/wecom", params=query,
                             content=sealed_body).status_code == 400
    assert count(env.engine, "inbound_update") == 0 and count(env.engine, "outbox") == 0


# ---- acting on cases ---------------------------------------------------------------------------

def test_a_retried_quoted_reply_answers_the_case_once(env: Env, case_id: int) -> None:
    before = count(env.engine, "cases")
    for n in range(3):
        query, body = sealed(env.app, xml_of({
            "ToUserName": WECOM_CORP_ID, "FromUserName": HOLDER, "CreateTime": 1_700_000_000,
            "MsgType": "text", "Content": f"#{case_id} 明天上午来换灯泡", "MsgId": 4242,
            "AgentID": 1,
        }), nonce=f"r{n}", clock=env.clock)
        assert env.http.post("/webhooks/wecom", params=query, content=body).status_code == 200
    assert count(env.engine, "cases") == before
    with env.engine.connect() as conn:
        replies = conn.execute(sa.text("SELECT note FROM case_event WHERE case_id = :c AND"
                                       " kind = 'replied'"), {"c": case_id}).scalars().all()
    assert count(env.engine, "inbound_update") == 1
    assert len(replies) == 1 and "明天上午来换灯泡" in (replies[0] or "")


def test_a_card_click_accepts_and_a_stale_click_is_refused(env: Env, case_id: int) -> None:
    _, version = case_row(env.engine, case_id)
    click = {"MsgType": "event", "Event": "template_card_event", "CardType":
             "button_interaction", "TaskId": f"case{case_id}-r1"}
    assert env.leader(HOLDER, EventKey=encode("accept", case_id, version), ResponseCode="rc1",
                      **click).status_code == 200
    accepted = case_row(env.engine, case_id)
    assert accepted.state == "accepted" and accepted.version > version
    with env.engine.connect() as conn:
        options = conn.execute(sa.select(OutboxMessage.options).where(  # type: ignore[call-overload]
            OutboxMessage.address == HOLDER)).scalars().all()
    assert any((o or {}).get("answer_press") == "rc1" for o in options), \
        "the clicked card is answered through its ResponseCode"

    # The same card clicked again (its buttons carry the old version): refused, said so.
    said = len(texts_to(env.engine, HOLDER))
    assert env.leader(HOLDER, EventKey=encode("resolve", case_id, version), ResponseCode="rc2",
                      **click).status_code == 200
    assert case_row(env.engine, case_id) == accepted
    assert len(texts_to(env.engine, HOLDER)) > said, "the leader is told the card is stale"


def test_smart_bot_reply_by_the_holder_acts_and_an_outsider_is_refused(
        env: Env, case_id: int) -> None:
    quote = f"工单#{case_id}\n楼道灯坏了"
    assert env.in_group(OUTSIDER, "我来处理", quote=quote).status_code == 200
    assert case_row(env.engine, case_id).version == 1
    with env.engine.connect() as conn:
        n_replies = conn.execute(sa.text("SELECT count(*) FROM case_event WHERE case_id = :c"
                                         " AND kind = 'replied'"), {"c": case_id}).scalar_one()
    assert n_replies == 0
    assert texts_to(env.engine, "grp1"), "the outsider is told why nothing happened"

    assert env.in_group(HOLDER, "今晚就修", quote=quote).status_code == 200
    with env.engine.connect() as conn:
        replied = conn.execute(sa.text("SELECT note FROM case_event WHERE case_id = :c AND"
                                       " kind = 'replied'"), {"c": case_id}).scalars().all()
    assert any("今晚就修" in (t or "") for t in replied)
