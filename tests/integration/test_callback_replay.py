"""Replayed and stale WeChat and WeCom callbacks are refused; WeChat's genuine retries are not.

The plain-mode signature covers token + timestamp + nonce only, so a query string read from an
access log signs any body: the app refuses a timestamp outside WECHAT_MAX_CLOCK_SKEW of its
clock, and a (timestamp, nonce) that already came with another body (real HTTP, FakeClock)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from core.clock import FakeClock
from core.container import build_container
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from tests.support.wechat import (
    DOC_AES_KEY,
    DOC_APP_ID,
    DOC_TOKEN,
    WECOM_AES_KEY,
    WECOM_CORP_ID,
    WECOM_TOKEN,
    fresh_nonce,
    sealed,
    sealed_json,
    stamp,
    xml_of,
)
from webhooks.app import create_app

BOT_TOKEN, BOT_AES = "bot-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@dataclass
class Site:
    http: httpx.Client
    engine: Engine
    clock: FakeClock
    wx: WeChatCrypto
    wc: WeComCrypto
    bot: WeComCrypto


@pytest.fixture
def site(engine: Engine, tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    settings = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"),
                        wechat_app_id=DOC_APP_ID, wechat_token=SecretStr(DOC_TOKEN),
                        wechat_encoding_aes_key=SecretStr(DOC_AES_KEY),
                        wecom_corp_id=WECOM_CORP_ID, wecom_agent_id="1",
                        wecom_token=SecretStr(WECOM_TOKEN),
                        wecom_encoding_aes_key=SecretStr(WECOM_AES_KEY),
                        wecom_bot_token=SecretStr(BOT_TOKEN),
                        wecom_bot_encoding_aes_key=SecretStr(BOT_AES))
    c = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=c, run_jobs=False)) as url, \
            httpx.Client(base_url=url) as http:
        yield Site(http, engine, clock, WeChatCrypto(DOC_TOKEN, DOC_AES_KEY, DOC_APP_ID),
                   WeComCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID),
                   WeComCrypto(BOT_TOKEN, BOT_AES, ""))


def plain_query(timestamp: str, nonce: str) -> dict[str, str]:
    """What an access log shows of a plain-mode callback: everything its signature covers."""
    sig = hashlib.sha1("".join(sorted([DOC_TOKEN, timestamp, nonce])).encode()).hexdigest()
    return {"signature": sig, "timestamp": timestamp, "nonce": nonce}


def message(sender: str, text: str, msg_id: int) -> bytes:
    return xml_of({"ToUserName": "gh_1", "FromUserName": sender, "CreateTime": 1_700_000_000,
                   "MsgType": "text", "Content": text, "MsgId": msg_id}).encode()


def updates(engine: Engine, platform: str = "wechat") -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT update_id FROM inbound_update WHERE platform"
                                         " = :p ORDER BY id"), {"p": platform}).scalars())


def test_a_plain_signature_from_an_access_log_does_not_sign_another_body(site: Site) -> None:
    query = plain_query(stamp(site.clock), fresh_nonce())
    genuine = site.http.post("/webhooks/wechat", params=query,
                             content=message("o_resident", "楼道灯坏了", 1001))
    assert genuine.status_code == 200 and genuine.text == "success"
    site.clock.advance(timedelta(seconds=30))
    forged = site.http.post("/webhooks/wechat", params=query,
                            content=message("o_attacker", "13900000001", 1002))
    assert forged.status_code == 403
    assert updates(site.engine) == ["1001"]


def test_a_genuine_retry_is_still_answered_success_and_handled_once(site: Site) -> None:
    load_demo(site.engine)
    resident = holder_of(site.engine, "resident", LIN1)
    with site.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'wechat', 'o_res', false)"),
                     {"p": resident.person_id})
    body = message("o_res", "路灯不亮了", 2001)
    first = plain_query(stamp(site.clock), fresh_nonce())
    # WeChat's retries come within seconds: with the same query, or signed afresh.
    site.clock.advance(timedelta(seconds=5))
    again = plain_query(stamp(site.clock), fresh_nonce())
    for query in (first, first, again):
        r = site.http.post("/webhooks/wechat", params=query, content=body)
        assert r.status_code == 200 and r.text == "success"
    assert updates(site.engine) == ["2001"]
    with site.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one() == 1


@pytest.mark.parametrize("skew", [timedelta(seconds=-301), timedelta(seconds=301),
                                  timedelta(days=-3)])
def test_a_stale_or_future_timestamp_is_refused(site: Site, skew: timedelta) -> None:
    when = str(int((site.clock.now() + skew).timestamp()))
    plain = site.http.post("/webhooks/wechat", params=plain_query(when, fresh_nonce()),
                           content=message("o1", "hi", 3001))
    assert plain.status_code == 403
    check = site.http.get("/webhooks/wechat",
                          params={**plain_query(when, fresh_nonce()), "echostr": "e1"})
    assert check.status_code == 403
    # Encrypted, signed at that time: as stale in AES mode.
    signer = FakeClock(site.clock.now() + skew)  # its clock is off by `skew`
    q, b = sealed(site.wx, message("o1", "hi", 3002).decode(), clock=signer)
    assert site.http.post("/webhooks/wechat", params=q, content=b).status_code == 403
    q, b = sealed(site.wc, xml_of({"ToUserName": WECOM_CORP_ID, "FromUserName": "u1",
                                   "CreateTime": 1, "MsgType": "text", "Content": "hi",
                                   "MsgId": 3003, "AgentID": 1}), clock=signer)
    assert site.http.post("/webhooks/wecom", params=q, content=b).status_code == 403
    q, b = sealed_json(site.bot, {"msgid": "b1", "from": {"userid": "u1"}, "msgtype": "text",
                                  "text": {"content": "hi"}}, clock=signer)
    assert site.http.post("/webhooks/wecom/bot", params=q, content=b).status_code == 403
    assert updates(site.engine) == [] and updates(site.engine, "wecom") == []


def test_within_the_skew_is_accepted(site: Site) -> None:
    when = str(int((site.clock.now() - timedelta(seconds=299)).timestamp()))
    r = site.http.post("/webhooks/wechat", params=plain_query(when, fresh_nonce()),
                       content=message("o1", "hi", 4001))
    assert r.status_code == 200 and r.text == "success"


def test_a_nonce_is_one_body_in_aes_mode_and_on_wecom(site: Site) -> None:
    nonce = fresh_nonce()
    q1, b1 = sealed(site.wx, message("o1", "一", 5001).decode(), nonce=nonce, clock=site.clock)
    q2, b2 = sealed(site.wx, message("o2", "二", 5002).decode(), nonce=nonce, clock=site.clock)
    assert site.http.post("/webhooks/wechat", params=q1, content=b1).text == "success"
    assert site.http.post("/webhooks/wechat", params=q2, content=b2).status_code == 403
    assert updates(site.engine) == ["5001"]

    def app_msg(msg_id: int) -> str:
        return xml_of({"ToUserName": WECOM_CORP_ID, "FromUserName": "u1", "CreateTime": 1,
                       "MsgType": "text", "Content": "hi", "MsgId": msg_id, "AgentID": 1})

    q1, b1 = sealed(site.wc, app_msg(6001), nonce=nonce, clock=site.clock)
    q2, b2 = sealed(site.wc, app_msg(6002), nonce=nonce, clock=site.clock)
    assert site.http.post("/webhooks/wecom", params=q1, content=b1).status_code == 200
    assert site.http.post("/webhooks/wecom", params=q2, content=b2).status_code == 403
    assert updates(site.engine, "wecom") == ["6001"]


def test_a_url_check_query_does_not_sign_a_callback(site: Site) -> None:
    query = plain_query(stamp(site.clock), fresh_nonce())
    ok = site.http.get("/webhooks/wechat", params={**query, "echostr": "e42"})
    assert ok.status_code == 200 and ok.text == "e42"
    r = site.http.post("/webhooks/wechat", params=query, content=message("o9", "hi", 7001))
    assert r.status_code == 403
    assert updates(site.engine) == []


def test_old_nonces_are_forgotten(site: Site) -> None:
    for _ in range(3):
        site.http.post("/webhooks/wechat", params=plain_query(stamp(site.clock), fresh_nonce()),
                       content=message("o1", "hi", 8001))
    site.clock.advance(timedelta(minutes=11))  # past twice the skew
    site.http.post("/webhooks/wechat", params=plain_query(stamp(site.clock), fresh_nonce()),
                   content=message("o1", "hi", 8002))
    with site.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM callback_nonce")).scalar_one() == 1
