"""One Official Account callback: verify, decrypt, parse, store and handle (sync: a worker
thread). WeChat waits 5 s and then retries three times, so the answer is always the plain
`success` at once; everything we have to say goes out later as customer-service messages."""

from __future__ import annotations

import logging
from typing import Any

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

from bot.dispatch import process, record_unparsed
from bot.handlers.callback_guard import Answer, admitted
from bot.handlers.wechat.parse import PLATFORM, Unparseable, parse_fields, update_id
from bot.handlers.xml_safe import BadXml, xml_fields
from core.callback_nonces import digest_of
from core.container import Container
from core.db import write_session
from core.wecom_limits import touch_identity

log = logging.getLogger(__name__)


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def verify_url(c: Container, query: dict[str, str]) -> Answer:
    """GET: WeChat's URL check (signature over token, timestamp, nonce; echo `echostr`)."""
    try:
        check_signature(_secret(c.settings.wechat_token), query.get("signature", ""),
                        query.get("timestamp", ""), query.get("nonce", ""))
    except InvalidSignatureException:
        log.warning("wechat: bad signature on the URL check")
        return Answer(403, "")
    refused = admitted(c, platform=PLATFORM, query=query,
                       digest=digest_of("GET", query.get("echostr", "")))
    return refused or Answer(200, query.get("echostr", ""))


def decrypt(c: Container, query: dict[str, str], body: bytes) -> dict[str, Any] | Answer:
    """The message's fields, or the refusal (403 signature, 400 anything undecryptable)."""
    s = c.settings
    try:
        envelope = xml_fields(body)
    except BadXml as exc:
        log.warning("wechat: refused body: %s", exc)
        return Answer(400, "")
    if query.get("encrypt_type", "raw") == "aes" or "Encrypt" in envelope:
        crypto = WeChatCrypto(_secret(s.wechat_token), _secret(s.wechat_encoding_aes_key),
                              s.wechat_app_id)
        try:
            plain = crypto.decrypt_message({"Encrypt": envelope.get("Encrypt", "")},
                                           query.get("msg_signature", ""),
                                           query.get("timestamp", ""), query.get("nonce", ""))
        except InvalidSignatureException:
            log.warning("wechat: bad msg_signature")
            return Answer(403, "")
        except Exception as exc:  # a wrong AppID, padding or base64: not ours to read
            log.warning("wechat: undecryptable message: %s: %s", type(exc).__name__, exc)
            return Answer(400, "")
        refused = admitted(c, platform=PLATFORM, query=query, digest=digest_of("POST", body))
        if refused is not None:
            return refused
        try:
            fields = xml_fields(plain)
            parse_message(plain)  # wechatpy's reading of the (screened) message must agree
        except Exception as exc:
            log.warning("wechat: decrypted body refused: %s", exc)
            return Answer(400, "")
        return fields
    try:
        check_signature(_secret(s.wechat_token), query.get("signature", ""),
                        query.get("timestamp", ""), query.get("nonce", ""))
    except InvalidSignatureException:
        log.warning("wechat: bad signature")
        return Answer(403, "")
    # The plain signature does not cover the body: only the nonce ties this body to it.
    return admitted(c, platform=PLATFORM, query=query, digest=digest_of("POST", body)) \
        or envelope


def handle(c: Container, query: dict[str, str], body: bytes) -> Answer:
    """POST: the whole callback; `success` once stored (or a retry of something stored)."""
    got = decrypt(c, query, body)
    if isinstance(got, Answer):
        return got
    now = c.clock.now()
    uid = update_id(got)
    try:
        inbound = parse_fields(got, now=now)
    except Unparseable as exc:
        record_unparsed(c.engine, platform=PLATFORM, update_id=uid, payload=got, now=now,
                        error=str(exc), counters=c.counters)
        return Answer(200)
    if inbound is None:
        record_unparsed(c.engine, platform=PLATFORM, update_id=uid, payload=got, now=now,
                        error="ignored: not a message we act on", counters=c.counters)
        return Answer(200)
    # A typed phone number is not a proof on WeChat: the flows treat it as typed (join.py).
    fresh = process(c.engine, inbound=inbound, payload=got, clock=c.clock, settings=c.settings,
                    counters=c.counters)
    if fresh and inbound.raw_event is None:
        # Only a message opens the 48-hour quota of 5; an event's 3-in-a-minute is read from
        # the update log (core.wecom_limits.last_event).
        with write_session(c.engine) as s:
            touch_identity(s, platform=PLATFORM, external_id=inbound.sender_id, now=now)
    elif not fresh:
        log.info("wechat: retry of %s ignored", uid)
    return Answer(200)
