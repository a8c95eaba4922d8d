"""The Official Account's callback with WeChat's own documentation sample, forged and hostile
bodies, retries, and the parser's reading of every message kind."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from wechatpy.crypto import WeChatCrypto

from bot.handlers.wechat.parse import parse_fields
from core.clock import FakeClock
from core.container import build_container
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from tests.support.wechat import (
    DOC_AES_KEY,
    DOC_APP_ID,
    DOC_BODY,
    DOC_MSG_SIGNATURE,
    DOC_NONCE,
    DOC_TIMESTAMP,
    DOC_TOKEN,
    at,
    fresh_nonce,
    sealed,
    xml_of,
)
from webhooks.app import create_app

DOC_QUERY = {"signature": "x", "timestamp": DOC_TIMESTAMP, "nonce": DOC_NONCE,
             "encrypt_type": "aes", "msg_signature": DOC_MSG_SIGNATURE}
NOW = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def plain_signature(timestamp: str = DOC_TIMESTAMP, nonce: str | None = None
                    ) -> dict[str, str]:
    nonce = nonce or fresh_nonce()
    sig = hashlib.sha1("".join(sorted([DOC_TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": sig, "timestamp": timestamp, "nonce": nonce}


@pytest.fixture
def client(engine: Engine, tmp_path, clock: FakeClock) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                        wechat_app_id=DOC_APP_ID, wechat_token=SecretStr(DOC_TOKEN),
                        wechat_encoding_aes_key=SecretStr(DOC_AES_KEY),
                        media_dir=str(tmp_path / "media"))
    clock.set(at(DOC_TIMESTAMP))  # the sample's signatures are fresh at their own time
    c = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=c, run_jobs=False)) as url, \
            httpx.Client(base_url=url) as http:
        yield http


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_the_documentation_sample_is_read_and_a_retry_is_one_update(client, engine) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):  # WeChat retries a slow answer three times with the same MsgId
        r = client.post("/webhooks/wechat", params=DOC_QUERY, content=DOC_BODY)
        assert r.status_code == 200 and r.text == "success"
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT update_id FROM inbound_update WHERE platform ="
                                    " 'wechat'")).scalars().all()
        said = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE address ="
                                    " 'oyORnuP8q7ou2gfYjqLzSIWZf0rs'")).scalar_one()
    assert rows == ["6054768590064713728"]
    assert said == 1, "the stranger is told how to join once"


@pytest.mark.parametrize("query", [
    {**DOC_QUERY, "msg_signature": "0" * 40},
    {**DOC_QUERY, "nonce": "1320562133"},
])
def test_a_forged_signature_is_refused_and_changes_nothing(client, engine, query) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/webhooks/wechat", params=query, content=DOC_BODY)
    assert r.status_code == 403
    assert count(engine, "inbound_update") == 0 and count(engine, "outbox") == 0


def test_an_undecryptable_body_is_refused(client, engine, clock) -> None:  # type: ignore[no-untyped-def]
    # Signed correctly, but encrypted for another AppID.
    other = WeChatCrypto(DOC_TOKEN, DOC_AES_KEY, "wx0000000000000000")
    query, body = sealed(other, xml_of({"MsgType": "text", "FromUserName": "o1",
                                        "Content": "hi", "MsgId": 1}), clock=clock)
    assert client.post("/webhooks/wechat", params=query, content=body).status_code == 400
    assert client.post("/webhooks/wechat", params=DOC_QUERY, content=b"<xml><Enc").status_code \
        == 400
    assert count(engine, "inbound_update") == 0


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><MsgType>text</MsgType><FromUserName>o1</FromUserName><Content>&lol3;</Content>
<MsgId>9</MsgId></xml>"""
XXE = """<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><MsgType>text</MsgType><FromUserName>o1</FromUserName><Content>&xxe;</Content>
<MsgId>10</MsgId></xml>"""


@pytest.mark.parametrize("body", [BOMB, XXE])
def test_entity_tricks_are_refused_plain_and_encrypted(client, engine, clock, body) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/webhooks/wechat", params=plain_signature(), content=body)
    assert r.status_code == 400
    query, sealed_body = sealed(WeChatCrypto(DOC_TOKEN, DOC_AES_KEY, DOC_APP_ID), body,
                                clock=clock)
    assert client.post("/webhooks/wechat", params=query, content=sealed_body).status_code == 400
    assert count(engine, "inbound_update") == 0


def test_url_check(client) -> None:  # type: ignore[no-untyped-def]
    ok = client.get("/webhooks/wechat", params={**plain_signature(nonce="6"), "echostr": "e42"})
    assert ok.status_code == 200 and ok.text == "e42"
    bad = client.get("/webhooks/wechat", params={**plain_signature(nonce="6"), "nonce": "7",
                                                  "echostr": "e42"})
    assert bad.status_code == 403


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_resident_retried_three_times_makes_one_case(client, engine, clock) -> None:  # type: ignore[no-untyped-def]
    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'wechat', 'o_res', false)"),
                     {"p": resident.person_id})
    crypto = WeChatCrypto(DOC_TOKEN, DOC_AES_KEY, DOC_APP_ID)
    msg = xml_of({"ToUserName": "gh", "FromUserName": "o_res", "CreateTime": 1700000000,
                  "MsgType": "text", "Content": "路灯不亮了", "MsgId": 777})
    for n in range(3):
        query, body = sealed(crypto, msg, nonce=str(n), clock=clock)
        assert client.post("/webhooks/wechat", params=query, content=body).text == "success"
    assert count(engine, "cases") == 1
    with engine.connect() as conn:
        seen = conn.execute(sa.text("SELECT last_seen_at FROM chat_identity WHERE"
                                    " external_id = 'o_res'")).scalar_one()
    assert seen is not None, "the 48-hour window opens"


def test_parser_reads_every_kind() -> None:
    def p(**f):  # type: ignore[no-untyped-def]
        return parse_fields({"FromUserName": "o1", "CreateTime": "1", **f}, now=NOW)

    sub = p(MsgType="event", Event="subscribe", EventKey="qrscene_j4AB")
    assert sub.command == "start" and sub.args == ("j4AB",)
    assert p(MsgType="event", Event="subscribe").args == ()
    assert p(MsgType="event", Event="CLICK", EventKey="my").command == "my"
    assert p(MsgType="event", Event="CLICK", EventKey="report").command == "report"
    assert p(MsgType="event", Event="VIEW", EventKey="http://x") is None
    voice = p(MsgType="voice", MediaId="v1", Format="speex", Recognition="垃圾没人收", MsgId="5")
    assert voice.media[0].recognition == "垃圾没人收" and voice.media[0].mime == "audio/speex"
    assert voice.update_id == "5"
    img = p(MsgType="image", MediaId="m1", PicUrl="http://x", MsgId="6")
    assert img.media[0].kind == "photo" and img.media[0].file_ref == "m1"
    loc = p(MsgType="location", Location_X="33.8", Location_Y="115.7", Label="亳州", MsgId="7")
    assert loc.media[0].latitude == 33.8 and loc.text == "亳州"
    press = p(MsgType="text", Content="满意", bizmsgmenuid="confirm:12:3:5", MsgId="8")
    assert press.press is not None and (press.press.case_id, press.press.arg) == (12, "5")
    assert p(MsgType="text", Content="/menu", MsgId="9").command == "menu"
    assert p(MsgType="video", MediaId="x", MsgId="10").media[0].kind == "video"
    assert "http://u" in (p(MsgType="link", Title="t", Url="http://u", MsgId="11").text or "")
    # Events have no MsgId: the retry key is sender + time + event.
    assert sub.update_id == "o1:1:subscribe"
