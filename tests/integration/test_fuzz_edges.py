"""Bad input at the edges that the other tests do not already cover: SQL metacharacters in
/find, a spreadsheet over the size limit sent for /import, a smart-bot callback delivered twice,
and a WeChat message replayed days later (there is no timestamp window: the MsgId is the key)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.dispatch import process
from bot.flows.types import Inbound
from bot.handlers.telegram.inbound import SHEET_LIMIT, handle_body
from bot.handlers.wechat import inbound as wechat_inbound
from bot.handlers.wecom import inbound as wecom_inbound
from core.clock import FakeClock
from core.container import Container, build_container
from core.settings import Settings
from tests.citydata import dump
from tests.support.demo_city import LIN1, TOWN, holder_of, load_demo
from tests.support.wechat import DOC_TOKEN, at, sealed_json, xml_of

BOT_TOKEN, BOT_AES = "bot-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def c(engine: Engine, tmp_path: Path, clock: FakeClock) -> Container:
    load_demo(engine)
    admin = holder_of(engine, "admin", TOWN)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        for pid, platform, ext in [(admin.person_id, "telegram", "43"),
                                   (leader.person_id, "wecom", "lin1"),
                                   (resident.person_id, "wechat", "oUser")]:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, :f, :e, false)"),
                         {"p": pid, "f": platform, "e": ext})
    st = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), telegram_bot_token=SecretStr("1:x"),
                  telegram_api_base="http://127.0.0.1:9",  # never called for a refused file
                  wechat_token=SecretStr(DOC_TOKEN),
                  wecom_bot_token=SecretStr(BOT_TOKEN),
                  wecom_bot_encoding_aes_key=SecretStr(BOT_AES))
    return build_container(st, clock=clock, engine=engine)


def replies(c: Container, platform: str, update_id: str) -> list[str]:
    with c.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT text FROM outbox WHERE dedupe_key LIKE :k"
                                         " ORDER BY id"),
                                 {"k": f"in:{platform}:{update_id}:%"}).scalars())


def count(c: Container, sql: str) -> int:
    with c.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


@pytest.mark.parametrize("query", ["'; DROP TABLE cases; --", "' OR '1'='1", "%", "_", "%%",
                                   "\\", "居民%", "_民"])
def test_find_takes_sql_metacharacters_as_plain_text(c: Container, query: str) -> None:
    tables = dump(c.engine)
    uid = f"find-{hashlib.md5(query.encode()).hexdigest()[:8]}"
    inbound = Inbound(platform="telegram", update_id=uid, chat_id="43", sender_id="43",
                      received_at=c.clock.now(), command="find", args=tuple(query.split()))
    assert process(c.engine, inbound=inbound, payload={}, clock=c.clock, settings=c.settings)
    got = replies(c, "telegram", uid)
    # Nobody's name contains these characters: the wildcards matched nothing.
    assert len(got) == 1 and "没有找到" in got[0], got
    assert count(c, "SELECT count(*) FROM cases") == 0  # the table is still there
    assert dump(c.engine) == tables


def test_an_oversized_spreadsheet_is_refused_politely_and_nothing_is_stored(
        c: Container) -> None:
    tables = dump(c.engine)
    start = {"update_id": 501, "message": {
        "message_id": 1, "date": 1_700_000_000, "text": "/import",
        "chat": {"id": 43, "type": "private"}, "from": {"id": 43, "is_bot": False,
                                                        "first_name": "管理员"}}}
    handle_body(c, json.dumps(start).encode())
    big = {"update_id": 502, "message": {
        "message_id": 2, "date": 1_700_000_000, "chat": {"id": 43, "type": "private"},
        "from": {"id": 43, "is_bot": False, "first_name": "管理员"},
        "document": {"file_id": "BIG", "file_unique_id": "u", "file_name": "members.csv",
                     "file_size": SHEET_LIMIT + 1}}}
    handle_body(c, json.dumps(big).encode())
    got = replies(c, "telegram", "502")
    assert got and got[0].startswith("抱歉") and "文件" in got[0], got
    assert dump(c.engine) == tables
    assert not any(Path(c.settings.media_dir).rglob("*.csv"))


def test_a_smart_bot_callback_delivered_twice_is_handled_once(c: Container) -> None:
    crypto = WeComCrypto(BOT_TOKEN, BOT_AES, "")
    data = {"msgid": "dup-1", "chatid": "grp", "chattype": "group", "from": {"userid": "lin1"},
            "msgtype": "text", "text": {"content": "@bot 大家好"}}
    for _ in range(2):
        query, body = sealed_json(crypto, data, clock=c.clock)
        assert wecom_inbound.handle_bot(c, query, body).status == 200
    assert count(c, "SELECT count(*) FROM inbound_update WHERE update_id = 'bot:dup-1'") == 1


def test_a_wechat_message_replayed_days_later_is_refused_and_handled_once(c: Container
                                                                         ) -> None:
    ts, nonce = "1700000000", "9"
    assert isinstance(c.clock, FakeClock)
    c.clock.set(at(ts))
    query = {"signature": hashlib.sha1("".join(sorted([DOC_TOKEN, ts, nonce])).encode())
             .hexdigest(), "timestamp": ts, "nonce": nonce}
    body = xml_of({"ToUserName": "gh", "FromUserName": "oUser", "CreateTime": 1_700_000_000,
                   "MsgType": "text", "Content": "路灯不亮了", "MsgId": 777001}).encode()
    assert wechat_inbound.handle(c, query, body).status == 200
    c.clock.advance(timedelta(days=3))
    assert wechat_inbound.handle(c, query, body).status == 403  # its timestamp is stale
    assert count(c, "SELECT count(*) FROM cases") == 1
    assert count(c, "SELECT count(*) FROM inbound_update WHERE platform = 'wechat'") == 1
