"""WeCom callbacks → Inbound: the self-built app's XML (messages, template-card button
clicks) and the smart bot's JSON (group messages with `chatid`, `from.userid`, `quote`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.flows.types import Inbound, Media
from bot.handlers.button_keys import decode
from bot.handlers.callback_guard import check_bounds

PLATFORM = "wecom"
# "#12 明天来修" or "工单#12 明天来修": the leader names the case they answer.
QUOTED = re.compile(r"^\s*(?:工单)?#(\d{1,9})(?!\d)[\s:：,，]*(.*)$", re.S)
MENTION = re.compile(r"^\s*@\S+\s*")


class Unparseable(ValueError):
    """Not a callback we understand."""


def update_id(f: dict[str, Any]) -> str:
    """MsgId for messages; sender + time + what for events (a click has no MsgId)."""
    if f.get("MsgId"):
        return str(f["MsgId"])
    return (f"{f.get('FromUserName', '')}:{f.get('CreateTime', '')}:{f.get('Event', '')}:"
            f"{f.get('TaskId', '')}:{f.get('EventKey', '')}")[:120]


def quoted(text: str) -> tuple[str | None, str]:
    """(the quoted case reference, the rest) of a text that starts with #<case id>."""
    m = QUOTED.match(text)
    if m is None:
        return None, text
    return f"工单#{m.group(1)}", m.group(2).strip()


def _text_fields(text: str) -> dict[str, Any]:
    text = text.strip()
    if text.startswith("/") and len(text) > 1:
        words = text[1:].split()
        return {"command": words[0].lower()[:32], "args": tuple(words[1:]),
                "text": " ".join(words[1:]) or None}
    ref, rest = quoted(text)
    return {"reply_to_text": ref, "text": rest or None}


def parse_app(f: dict[str, Any], *, now: datetime) -> Inbound | None:
    """The app's callback (decrypted XML fields) → Inbound; None for events we only note."""
    kind = str(f.get("MsgType", "")).lower()
    sender = str(f.get("FromUserName", ""))
    if not kind or not sender:
        raise Unparseable("no MsgType or FromUserName")
    try:
        check_bounds(f)
    except ValueError as exc:
        raise Unparseable(str(exc)) from None
    base: dict[str, Any] = {"platform": PLATFORM, "update_id": update_id(f), "chat_id": sender,
                            "sender_id": sender, "received_at": now, "language": "zh",
                            "message_id": str(f["MsgId"]) if f.get("MsgId") else None}
    if kind == "event":
        event = str(f.get("Event", "")).lower()
        if event == "template_card_event":
            # ResponseCode lets us update the clicked card once (within 72 h).
            press = decode(str(f.get("EventKey", "")), query_id=str(f.get("ResponseCode") or "")
                           or None, message_id=str(f.get("TaskId") or "") or None)
            return Inbound(**base, press=press, raw_event=event) if press else None
        if event == "click":
            key = str(f.get("EventKey", ""))
            return Inbound(**base, command=key[:32], raw_event=event, event_key=key)
        return None
    if kind == "text":
        return Inbound(**base, **_text_fields(str(f.get("Content", ""))))
    if kind == "image":
        return Inbound(**base, media=(Media("photo", str(f.get("MediaId")), mime="image/jpeg"),))
    if kind == "voice":
        return Inbound(**base, media=(Media("voice", str(f.get("MediaId")), mime="audio/amr"),))
    if kind == "video":
        return Inbound(**base, media=(Media("video", str(f.get("MediaId")), mime="video/mp4"),))
    if kind == "location":
        try:
            lat, lon = float(f.get("Location_X", "")), float(f.get("Location_Y", ""))
        except (TypeError, ValueError):
            return None
        return Inbound(**base, media=(Media("location", latitude=lat, longitude=lon),))
    return None


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object field, or an empty one when the sender put anything else there."""
    return value if isinstance(value, dict) else {}


def parse_bot(d: dict[str, Any], *, now: datetime) -> Inbound | None:
    """A smart bot's JSON callback (someone @-mentioned the bot in a group) → Inbound."""
    sender = _obj(d.get("from")).get("userid")
    if not d.get("msgid") or not sender or isinstance(sender, dict | list):
        raise Unparseable("no msgid or from.userid")
    if len(str(sender)) > 64 or len(str(d["msgid"])) > 64 or len(str(d.get("chatid"))) > 64:
        raise Unparseable("msgid, chatid or from.userid is not a short text")
    if d.get("msgtype") != "text":
        return None
    text = MENTION.sub("", str(_obj(d.get("text")).get("content", "")))
    fields = _text_fields(text)
    quote = _obj(d.get("quote"))
    if quote.get("msgtype") == "text" and not fields.get("reply_to_text"):
        fields["reply_to_text"] = str(_obj(quote.get("text")).get("content", "")) or None
    chat_id = str(d.get("chatid") or sender)
    return Inbound(platform=PLATFORM, update_id=f"bot:{d['msgid']}", chat_id=chat_id,
                   sender_id=str(sender), received_at=now, language="zh",
                   chat_is_private=d.get("chattype", "group") == "single",
                   message_id=str(d["msgid"]), **fields)
