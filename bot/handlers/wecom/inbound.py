"""WeCom callbacks (sync: a worker thread): the app's encrypted XML and the smart bot's
encrypted JSON. Bad signature → 403, undecryptable → 400; nothing is stored for either."""

from __future__ import annotations

import logging
from typing import Any

from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.enterprise.parser import parse_message
from wechatpy.exceptions import InvalidSignatureException

from bot.dispatch import process, record_unparsed
from bot.handlers.callback_guard import Answer, admitted
from bot.handlers.jsonsafe import loads
from bot.handlers.wecom.parse import PLATFORM, Unparseable, parse_app, parse_bot, update_id
from bot.handlers.xml_safe import BadXml, xml_fields
from core.callback_nonces import digest_of, stale
from core.container import Container

log = logging.getLogger(__name__)
BOT_PLATFORM = "wecom_bot"  # its nonces are its own: another token signs them


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def app_crypto(c: Container) -> WeChatCrypto:
    s = c.settings
    return WeChatCrypto(_secret(s.wecom_token), _secret(s.wecom_encoding_aes_key), s.wecom_corp_id)


def bot_crypto(c: Container) -> WeChatCrypto:
    # An internal smart bot's ReceiveId is the empty string, not the corp id.
    s = c.settings
    return WeChatCrypto(_secret(s.wecom_bot_token), _secret(s.wecom_bot_encoding_aes_key), "")


def verify_url(c: Container, crypto: WeChatCrypto, query: dict[str, str], *,
               platform: str = PLATFORM) -> Answer:
    """GET: the URL check; the echo is encrypted and must be answered decrypted."""
    try:
        echo = crypto.check_signature(query.get("msg_signature", ""), query.get("timestamp", ""),
                                      query.get("nonce", ""), query.get("echostr", ""))
    except InvalidSignatureException:
        log.warning("wecom: bad signature on the URL check")
        return Answer(403, "")
    except Exception as exc:
        log.warning("wecom: undecryptable echostr: %s", exc)
        return Answer(400, "")
    refused = admitted(c, platform=platform, query=query,
                       digest=digest_of("GET", query.get("echostr", "")))
    if refused is not None:
        return refused
    return Answer(200, echo.decode() if isinstance(echo, bytes) else str(echo))


def _open(c: Container, crypto: WeChatCrypto, query: dict[str, str], encrypted: str,
          *, platform: str, body: bytes) -> str | Answer:
    try:
        plain = crypto.decrypt_message({"Encrypt": encrypted}, query.get("msg_signature", ""),
                                       query.get("timestamp", ""), query.get("nonce", ""))
    except InvalidSignatureException:
        log.warning("wecom: bad msg_signature")
        return Answer(403, "")
    except Exception as exc:  # wrong corp id, padding, base64
        log.warning("wecom: undecryptable message: %s: %s", type(exc).__name__, exc)
        return Answer(400, "")
    refused = admitted(c, platform=platform, query=query, digest=digest_of("POST", body))
    if refused is not None:
        return refused
    return plain.decode() if isinstance(plain, bytes) else str(plain)


def handle_app(c: Container, query: dict[str, str], body: bytes) -> Answer:
    """POST from the self-built app: messages and template-card clicks."""
    try:
        envelope = xml_fields(body)
    except BadXml as exc:
        log.warning("wecom: refused body: %s", exc)
        return Answer(400, "")
    plain = _open(c, app_crypto(c), query, str(envelope.get("Encrypt", "")),
                  platform=PLATFORM, body=body)
    if isinstance(plain, Answer):
        return plain
    try:
        fields = xml_fields(plain)
        parse_message(plain)  # screened above; wechatpy's reading must agree
    except Exception as exc:
        log.warning("wecom: decrypted body refused: %s", exc)
        return Answer(400, "")
    now = c.clock.now()
    try:
        inbound = parse_app(fields, now=now)
    except Unparseable as exc:
        record_unparsed(c.engine, platform=PLATFORM, update_id=update_id(fields), payload=fields,
                        now=now, error=str(exc), counters=c.counters)
        return Answer(200, "")
    if inbound is None:
        record_unparsed(c.engine, platform=PLATFORM, update_id=update_id(fields), payload=fields,
                        now=now, error="ignored: not a message we act on",
                        counters=c.counters)
        return Answer(200, "")
    process(c.engine, inbound=inbound, payload=fields, clock=c.clock, settings=c.settings,
            counters=c.counters)
    return Answer(200, "")


def handle_bot(c: Container, query: dict[str, str], body: bytes) -> Answer:
    """POST from a group's smart bot: `{"encrypt": …}` around the JSON message."""
    if not all(query.get(k) for k in ("msg_signature", "timestamp", "nonce")):
        log.warning("wecom bot: unsigned callback refused")
        return Answer(403, "")
    why = stale(timestamp=query["timestamp"], now=c.clock.now(),
                skew=c.settings.wechat_max_clock_skew)
    if why is not None:  # refused before its body is even parsed
        log.warning("wecom bot: callback refused: %s", why)
        return Answer(403, "")
    try:
        envelope = loads(body)
        encrypted = str(envelope["encrypt"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("wecom bot: refused body: %s", exc)
        return Answer(400, "")
    plain = _open(c, bot_crypto(c), query, encrypted, platform=BOT_PLATFORM, body=body)
    if isinstance(plain, Answer):
        return plain
    try:
        data = loads(plain)
        assert isinstance(data, dict)
    except (ValueError, AssertionError):
        return Answer(400, "")
    now = c.clock.now()
    try:
        inbound = parse_bot(data, now=now)
    except Unparseable as exc:
        log.warning("wecom bot: %s", exc)
        return Answer(200, "")
    if inbound is None:
        record_unparsed(c.engine, platform=PLATFORM, update_id=f"bot:{data.get('msgid')}",
                        payload=data, now=now, error="ignored: not a message we act on",
                        counters=c.counters)
        return Answer(200, "")
    process(c.engine, inbound=inbound, payload=data, clock=c.clock, settings=c.settings,
            counters=c.counters)
    return Answer(200, "")
