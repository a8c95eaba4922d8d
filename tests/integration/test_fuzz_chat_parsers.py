"""Bad input, tried systematically: hypothesis throws arbitrary and mutated Telegram updates,
WeChat / WeCom XML and WeCom smart-bot JSON at the parsers and at the whole inbound path
(signature → parse → store → flow), on a real database with the demo city.

What may come out: an Inbound, None ("noted, not acted on"), the parser's own Unparseable /
BadXml, or on the whole path a 200 / 400 / 403 answer. Never another exception, and never a
flow that blew up (bot/dispatch.py logs those as "inbound … failed" and answers "busy")."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.handlers.telegram.inbound import handle_body
from bot.handlers.telegram.parse import Unparseable as TgUnparseable
from bot.handlers.telegram.parse import parse_update
from bot.handlers.wechat import inbound as wechat_inbound
from bot.handlers.wechat.parse import Unparseable as WxUnparseable
from bot.handlers.wechat.parse import parse_fields
from bot.handlers.wecom import inbound as wecom_inbound
from bot.handlers.wecom.parse import Unparseable as WcUnparseable
from bot.handlers.wecom.parse import parse_app, parse_bot
from bot.handlers.xml_safe import BadXml, xml_fields
from core.clock import FakeClock
from core.container import Container, build_container
from core.settings import Settings
from tests.support.demo_city import LIN1, TOWN, holder_of, load_demo
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

NOW = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
_uid = itertools.count(10_000)

# ---- strategies -------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=30))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=16)
# Texts the flows react to: commands of every kind with odd arguments, case references, words.
COMMANDS = ["/start", "/help", "/my", "/cases", "/overdue", "/invite", "/stats", "/case", "/find",
            "/assign", "/bind", "/unbind", "/import", "/export", "/menu", "/login", "/lang",
            "/cancel", "/report", "/x@other_bot", "/"]
chat_texts = st.one_of(
    st.text(max_size=60),
    st.tuples(st.sampled_from(COMMANDS), st.lists(st.text(min_size=1, max_size=12).filter(
        lambda s: not any(c.isspace() for c in s)), max_size=3)).map(
        lambda t: " ".join([t[0], *t[1]])),
    st.sampled_from(["工单#1 好的", "#99999999999 x", "'; DROP TABLE cases; --", "%", "_",
                     "楼道灯坏了", "\u0000", "a" * 5000]),
)

TG_USER = {"id": 42, "is_bot": False, "first_name": "居民", "language_code": "zh"}
TG_ADMIN = {"id": 43, "is_bot": False, "first_name": "管理员"}
TG_MESSAGE: dict[str, Any] = {
    "message_id": 1, "date": 1_700_000_000, "chat": {"id": 42, "type": "private"},
    "from": TG_USER, "text": "楼道灯坏了",
    "reply_to_message": {"message_id": 2, "date": 1_700_000_000,
                         "chat": {"id": 42, "type": "private"}, "text": "工单#1"},
    "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}],
    "location": {"latitude": 33.8, "longitude": 115.7},
    "contact": {"phone_number": "13900000009", "first_name": "x", "user_id": 42},
}
TG_UPDATES: list[dict[str, Any]] = [
    {"update_id": 1, "message": TG_MESSAGE},
    {"update_id": 1, "message": {**TG_MESSAGE, "from": TG_ADMIN, "chat": {"id": 43,
                                                                          "type": "private"}}},
    {"update_id": 1, "message": {**TG_MESSAGE, "chat": {"id": -100, "type": "supergroup",
                                                        "title": "群"}}},
    {"update_id": 1, "callback_query": {
        "id": "q", "from": TG_USER, "chat_instance": "c", "data": "a:1:1",
        "message": {"message_id": 1, "date": 1_700_000_000, "chat": {"id": 42, "type": "private"},
                    "text": "x"}}},
    {"update_id": 1, "edited_message": TG_MESSAGE},
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(base: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(base)
    cur = out
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return out


TG_SPOTS = [(n, p) for n, u in enumerate(TG_UPDATES) for p in _paths(u) if p != ("update_id",)]


@st.composite
def mutated_updates(draw: st.DrawFn) -> Any:
    """A valid update with one to three places replaced by any JSON, or its text by chat text."""
    n, _ = draw(st.sampled_from(TG_SPOTS))
    update: Any = copy.deepcopy(TG_UPDATES[n])
    for _ in range(draw(st.integers(1, 3))):
        spots = [p for p in _paths(update) if p and p != ("update_id",)]
        if not spots:
            break
        path = draw(st.sampled_from(spots))
        value = draw(st.sampled_from(["", 0, None, [], {}, True, 1.5]) | json_values | chat_texts)
        update = _set(update, path, value)
    if isinstance(update, dict):
        update["update_id"] = next(_uid)
    return update


WX_KEYS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event",
           "EventKey", "MediaId", "Format", "Recognition", "Location_X", "Location_Y", "Label",
           "Title", "Description", "Url", "bizmsgmenuid", "TaskId", "ResponseCode", "AgentID"]
WX_TYPES = ["text", "image", "voice", "video", "shortvideo", "location", "link", "event", "file"]
WX_EVENTS = ["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW", "template_card_event", "LOCATION"]
xml_values = (st.text(max_size=30) | st.sampled_from(WX_TYPES + WX_EVENTS) | chat_texts
              | st.integers().map(str) | st.just("qrscene_ABC"))


@st.composite
def wx_fields(draw: st.DrawFn, sender: str) -> dict[str, Any]:
    f: dict[str, Any] = {"ToUserName": "gh_x", "FromUserName": sender, "CreateTime": 1_700_000_000,
                         "MsgType": draw(st.sampled_from(WX_TYPES)), "MsgId": next(_uid),
                         "Content": draw(chat_texts)}
    extra = draw(st.dictionaries(st.sampled_from(WX_KEYS), xml_values, max_size=6))
    f.update(extra)
    if draw(st.booleans()):
        f["MsgId"] = next(_uid)  # usually keep it unique, so retries do not hide the flow
    return f


def _xml_text(draw: st.DrawFn, fields: dict[str, Any]) -> str:
    """Usually well-formed XML of the fields; sometimes broken, nested or entity-laden."""
    body = xml_of(fields)
    how = draw(st.sampled_from(["plain", "plain", "cut", "nest", "doctype", "junk"]))
    if how == "cut":
        return body[: draw(st.integers(0, len(body)))]
    if how == "nest":
        return body.replace("<Content>", "<Content><a><b>x</b></a>", 1)
    if how == "doctype":
        return draw(st.sampled_from(HOSTILE_PREFIXES)) + body
    if how == "junk":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.text(max_size=20)) + body[at:]
    return body


HOSTILE_PREFIXES = [
    '<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
    '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">',
    '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE xml [<!ENTITY % p SYSTEM '
    '"http://127.0.0.1:9/x">%p;]>',
]
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
              for i in range(1, 10))
    + ']><xml><Content>&lol9;</Content><MsgType>text</MsgType><FromUserName>o</FromUserName>'
    '</xml>')


# ---- pure parsers -----------------------------------------------------------------------------


@FAST
@given(data=json_values)
def test_telegram_parser_on_arbitrary_json(data: Any) -> None:
    with contextlib.suppress(TgUnparseable):
        parse_update(data, now=NOW, bot_username="lz_bot")


@FAST
@given(update=mutated_updates())
def test_telegram_parser_on_mutated_updates(update: Any) -> None:
    with contextlib.suppress(TgUnparseable):
        parse_update(update, now=NOW, bot_username="lz_bot")


@FAST
@given(body=st.binary(max_size=400) | st.text(max_size=400).map(lambda s: f"<xml>{s}</xml>")
       | st.sampled_from([*HOSTILE_PREFIXES, BILLION_LAUGHS]).map(lambda p: p + "<xml/>"))
def test_xml_reader_on_arbitrary_text(body: bytes | str) -> None:
    try:
        got = xml_fields(body)
    except BadXml:
        return
    assert isinstance(got, dict)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, *(p + xml_of({"MsgType": "text"})
                                                   for p in HOSTILE_PREFIXES)])
def test_entity_tricks_never_reach_the_parser(body: str) -> None:
    with pytest.raises(BadXml):
        xml_fields(body)


@FAST
@given(data=st.data())
def test_wechat_and_wecom_parsers_on_mutated_xml(data: st.DataObject) -> None:
    fields = data.draw(wx_fields("oUser"))
    try:
        parsed = xml_fields(_xml_text(data.draw, fields))
    except BadXml:
        return
    for parse, unparseable in ((parse_fields, WxUnparseable), (parse_app, WcUnparseable)):
        with contextlib.suppress(unparseable):
            parse(parsed, now=NOW)


@FAST
@given(data=json_values, spot=st.sampled_from(["from", "text", "quote", "msgid", "chatid",
                                                "msgtype", "chattype", None]))
def test_wecom_bot_parser_on_arbitrary_json(data: Any, spot: str | None) -> None:
    base: dict[str, Any] = {"msgid": "m1", "chatid": "g", "chattype": "group",
                            "from": {"userid": "u"}, "msgtype": "text",
                            "text": {"content": "@bot #1 好"},
                            "quote": {"msgtype": "text", "text": {"content": "工单#1"}}}
    d = {**base, spot: data} if spot else (data if isinstance(data, dict) else base)
    with contextlib.suppress(WcUnparseable):
        parse_bot(d, now=NOW)


# ---- the whole inbound path, on a real database -----------------------------------------------


@dataclass
class World:
    c: Container
    engine: Engine
    wx: WeChatCrypto
    wc: WeComCrypto
    wc_bot: WeComCrypto


BOT_TOKEN, BOT_AES = "bot-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def world(engine: Engine, tmp_path: Path, clock: FakeClock) -> World:
    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    admin = holder_of(engine, "admin", TOWN)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    with engine.begin() as conn:
        for pid, platform, ext in [(resident.person_id, "telegram", "42"),
                                   (admin.person_id, "telegram", "43"),
                                   (resident.person_id, "wechat", "oUser"),
                                   (leader.person_id, "wecom", "lin1"),
                                   (admin.person_id, "wecom", "adm")]:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, :f, :e, false)"),
                         {"p": pid, "f": platform, "e": ext})
    st_ = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                   media_dir=str(tmp_path / "media"),
                   wechat_app_id=DOC_APP_ID, wechat_token=SecretStr(DOC_TOKEN),
                   wechat_encoding_aes_key=SecretStr(DOC_AES_KEY),
                   wecom_corp_id=WECOM_CORP_ID, wecom_agent_id="1",
                   wecom_token=SecretStr(WECOM_TOKEN),
                   wecom_encoding_aes_key=SecretStr(WECOM_AES_KEY),
                   wecom_bot_token=SecretStr(BOT_TOKEN),
                   wecom_bot_encoding_aes_key=SecretStr(BOT_AES))
    c = build_container(st_, clock=clock, engine=engine)
    return World(c, engine, WeChatCrypto(DOC_TOKEN, DOC_AES_KEY, DOC_APP_ID),
                 WeComCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID),
                 WeComCrypto(BOT_TOKEN, BOT_AES, ""))


@pytest.fixture
def clean(caplog: pytest.LogCaptureFixture) -> Iterator[Clean]:
    caplog.set_level(logging.WARNING)
    yield Clean(caplog)


@dataclass
class Clean:
    """Runs one example; afterwards no update may have made a flow fail (bot/dispatch.py logs
    those at ERROR, with the traceback)."""

    caplog: pytest.LogCaptureFixture

    def __enter__(self) -> None:
        self.caplog.clear()

    def __exit__(self, *exc: object) -> None:
        failed = [r.getMessage() + (f"\n{r.exc_text}" if r.exc_text else "")
                  for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert not failed, failed[:3]


def _wx_plain_query(world: World) -> dict[str, str]:
    ts, nonce = stamp(world.c.clock), fresh_nonce()
    sig = hashlib.sha1("".join(sorted([DOC_TOKEN, ts, nonce])).encode()).hexdigest()
    return {"signature": sig, "timestamp": ts, "nonce": nonce}


@SLOW
@given(update=mutated_updates() | json_values)
# Found by this test: a supergroup-migration check read fields before the body was parsed.
@example(update={"update_id": 7, "message": {"chat": True, "migrate_to_chat_id": True}})
@example(update={"update_id": 8, "message": {"chat": {"id": True}, "migrate_to_chat_id": 5}})
def test_telegram_bodies_end_to_end(world: World, clean: Clean, update: Any) -> None:
    body = json.dumps(update, ensure_ascii=False).encode()
    with clean:
        handle_body(world.c, body)


@SLOW
@given(data=st.data())
def test_wechat_callbacks_end_to_end(world: World, clean: Clean,
                                     data: st.DataObject) -> None:
    text = _xml_text(data.draw, data.draw(wx_fields("oUser")))
    if data.draw(st.booleans()):
        query, body = _wx_plain_query(world), text.encode()
    else:
        query, body = sealed(world.wx, text, nonce=str(next(_uid)), clock=world.c.clock)
    with clean:
        assert wechat_inbound.handle(world.c, query, body).status in (200, 400)


@SLOW
@given(data=st.data())
def test_wecom_app_callbacks_end_to_end(world: World, clean: Clean,
                                        data: st.DataObject) -> None:
    sender = data.draw(st.sampled_from(["lin1", "adm", "stranger"]))
    text = _xml_text(data.draw, data.draw(wx_fields(sender)))
    query, body = sealed(world.wc, text, nonce=str(next(_uid)), clock=world.c.clock)
    with clean:
        assert wecom_inbound.handle_app(world.c, query, body).status in (200, 400)


@SLOW
@given(payload=json_values, spot=st.sampled_from(["from", "text", "quote", "chatid", "msgtype",
                                                   None]))
def test_wecom_bot_callbacks_end_to_end(world: World, clean: Clean, payload: Any,
                                        spot: str | None) -> None:
    base: dict[str, Any] = {"msgid": f"m{next(_uid)}", "chatid": "grp", "chattype": "group",
                            "from": {"userid": "lin1"}, "msgtype": "text",
                            "text": {"content": "@bot #1 明天修"}}
    d = {**base, spot: payload} if spot else payload
    if not isinstance(d, dict):
        d = {"not": "an object", "value": d}
    query, body = sealed_json(world.wc_bot, d, clock=world.c.clock)
    with clean:
        assert wecom_inbound.handle_bot(world.c, query, body).status in (200, 400)
