"""One SMS reply (上行短信) from Tencent Cloud SMS's reply callback: authenticate, parse, store
and handle through the same path as a chat message (bot/dispatch.process, platform "sms",
the chat is the phone number).

Tencent's reply callback is a JSON object `{"extend", "mobile", "nationcode", "sign", "text",
"time"}` and carries no signature of its own; the URL configured in the SMS console holds our
secret (`SMS_CALLBACK_TOKEN`, `/webhooks/sms?token=…`), compared in constant time, and a
callback without it is refused before anything is read or stored. The answer is Tencent's
`{"result": 0, "errmsg": "OK"}` once the reply is stored (or was, a retry).

A number on file is the person's: the first reply binds an `sms` identity (a resident-only
proof: the carrier's word that the number sent it). "1" (optionally with stars, "1 4") and
"2" answer the "fixed?" text of the person's resolved case as the buttons would; "收到" or "1"
with no case waiting confirm a notice (bot/flows/notices.py). Anything else is a message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.dispatch import process, record_unparsed
from bot.flows.types import Inbound, Press
from core.cases.model import Case, State
from core.container import Container
from core.db import write_session
from core.hierarchy.model import Proof
from core.hierarchy.queries import person_by_phone
from core.hierarchy.services import link_identity

log = logging.getLogger(__name__)
PLATFORM = "sms"
MAX_BODY = 8192  # one reply is a few hundred bytes
TEXT_LIMIT = 500
FIXED = re.compile(r"^\s*([12])(?:\s*[ ,，]\s*([1-5]))?\s*$")
OK = {"result": 0, "errmsg": "OK"}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def authentic(c: Container, token: str) -> bool:
    """Whether the callback URL's token is ours (constant time; no token set: none is)."""
    want = c.settings.sms_callback_token
    return want is not None and hmac.compare_digest(
        want.get_secret_value().encode(), token.encode())


def parse(body: bytes) -> dict[str, Any]:
    """The reply's fields; ValueError when it is not Tencent's shape."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    mobile, text = data.get("mobile"), data.get("text")
    if not isinstance(mobile, str) or not re.fullmatch(r"\d{5,15}", mobile):
        raise ValueError("no mobile number")
    if not isinstance(text, str):
        raise ValueError("no text")
    if str(data.get("nationcode", "86")) != "86":
        raise ValueError("not a mainland number")
    return {"mobile": mobile, "text": text[:TEXT_LIMIT], "time": str(data.get("time", "")),
            "sign": str(data.get("sign", ""))[:50]}


def update_id(fields: dict[str, Any]) -> str:
    """Tencent sends no id: the number, its time and words are the reply's identity."""
    raw = f"{fields['mobile']}|{fields['time']}|{fields['text']}".encode()
    return "sms:" + hashlib.sha256(raw).hexdigest()[:40]


def fixed_press(c: Container, person_id: int, text: str) -> Press | None:
    """"1"/"2" (with optional stars) for the person's case waiting for "fixed?"."""
    m = FIXED.match(text)
    if m is None:
        return None
    cases: sa.Table = Case.__table__  # type: ignore[attr-defined]
    with write_session(c.engine) as s:
        row = s.execute(sa.select(cases.c.id, cases.c.version).where(
            cases.c.resident_id == person_id, cases.c.state == State.resolved.value)
            .order_by(cases.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    if m.group(1) == "2":
        return Press("not_fixed", int(row.id), int(row.version))
    # The template says so: "1" alone is fixed and satisfied (5), "1 3" gives the stars.
    return Press("confirm", int(row.id), int(row.version), arg=m.group(2) or "5")


def handle(c: Container, query: dict[str, str], body: bytes) -> Answer:
    """POST /webhooks/sms: the whole callback."""
    if not authentic(c, query.get("token", "")):
        log.warning("sms: callback without our token refused")
        return Answer(403, {"result": 1, "errmsg": "forbidden"})
    if len(body) > MAX_BODY:
        return Answer(413, {"result": 1, "errmsg": "too large"})
    now = c.clock.now()
    try:
        fields = parse(body)
    except ValueError as exc:  # json errors are ValueErrors too
        digest = hashlib.sha256(body).hexdigest()[:40]
        record_unparsed(c.engine, platform=PLATFORM, update_id=f"sms:bad:{digest}",
                        payload={"body": body[:2000].decode("utf-8", "replace")}, now=now,
                        error=f"unparsed: {exc}", counters=c.counters)
        return Answer(200, OK)
    phone = fields["mobile"]
    with write_session(c.engine) as s:
        person_id = person_by_phone(s, phone)
        if person_id is not None:
            link_identity(s, person_id=person_id, platform=PLATFORM, external_id=phone,
                          now=now, proof=Proof.sms)
    if person_id is None:
        record_unparsed(c.engine, platform=PLATFORM, update_id=update_id(fields),
                        payload=fields, now=now, error="ignored: a number not on file",
                        counters=c.counters)
        return Answer(200, OK)
    text = fields["text"].strip()
    inbound = inbound_of(fields, now=now, press=fixed_press(c, person_id, text))
    process(c.engine, inbound=inbound, payload=fields, clock=c.clock, settings=c.settings,
            counters=c.counters)
    return Answer(200, OK)


def inbound_of(fields: dict[str, Any], *, now: datetime, press: Press | None) -> Inbound:
    phone = fields["mobile"]
    return Inbound(platform=PLATFORM, update_id=update_id(fields), chat_id=phone,
                   sender_id=phone, received_at=now, text=None if press else fields["text"],
                   press=press)


__all__ = ["Answer", "authentic", "handle", "parse", "update_id"]
