"""A WeChat Official Account callback (decrypted XML fields) → an Inbound."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.flows.types import Inbound, Media
from bot.handlers.button_keys import decode
from bot.handlers.callback_guard import check_bounds

PLATFORM = "wechat"
# Menu CLICK keys → the flows' commands (我要反映, 我的诉求, 帮助).
MENU_COMMANDS = {"report": "report", "my": "my", "help": "help"}
VOICE_MIME = {"amr": "audio/amr", "speex": "audio/speex"}


class Unparseable(ValueError):
    """Not a message we understand."""


def update_id(f: dict[str, Any]) -> str:
    """WeChat's retry key: MsgId for messages, sender + time + event for events."""
    if f.get("MsgId"):
        return str(f["MsgId"])
    return f"{f.get('FromUserName', '')}:{f.get('CreateTime', '')}:{f.get('Event', '')}"


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_fields(f: dict[str, Any], *, now: datetime) -> Inbound | None:
    """The Inbound of a message or event; None for events we note but do not act on."""
    kind = str(f.get("MsgType", "")).lower()
    sender = str(f.get("FromUserName", ""))
    if not kind or not sender:
        raise Unparseable("no MsgType or FromUserName")
    check_bounds(f, Unparseable)
    base: dict[str, Any] = {"platform": PLATFORM, "update_id": update_id(f), "chat_id": sender,
                            "sender_id": sender, "received_at": now, "language": "zh",
                            "message_id": str(f["MsgId"]) if f.get("MsgId") else None}
    if kind == "event":
        return _event(f, base)
    if kind == "text":
        text = str(f.get("Content", "")).strip()
        menu_id = f.get("bizmsgmenuid")
        if menu_id:
            # A tap on a customer-service message menu: WeChat sends the item's id back.
            press = decode(str(menu_id), message_id=base["message_id"])
            if press is not None:
                return Inbound(**base, press=press)
        if text.startswith("/") and len(text) > 1:
            head, *rest = text[1:].split()
            return Inbound(**base, command=head.lower()[:32], args=tuple(rest),
                           text=" ".join(rest) or None)
        return Inbound(**base, text=text or None)
    if kind == "image":
        return Inbound(**base, media=(Media("photo", str(f.get("MediaId")), mime="image/jpeg"),))
    if kind == "voice":
        fmt = str(f.get("Format", "amr")).lower()
        recognition = str(f.get("Recognition") or "").strip() or None
        return Inbound(**base, media=(Media("voice", str(f.get("MediaId")),
                                            mime=VOICE_MIME.get(fmt, f"audio/{fmt}"),
                                            recognition=recognition),))
    if kind in ("video", "shortvideo"):
        return Inbound(**base, media=(Media("video", str(f.get("MediaId")), mime="video/mp4"),))
    if kind == "location":
        loc = Media("location", latitude=_float(f.get("Location_X")),
                    longitude=_float(f.get("Location_Y")))
        return Inbound(**base, media=(loc,), text=str(f.get("Label") or "") or None)
    if kind == "link":
        text = " ".join(str(f.get(k) or "") for k in ("Title", "Description", "Url")).strip()
        return Inbound(**base, text=text or None)
    return None


def _event(f: dict[str, Any], base: dict[str, Any]) -> Inbound | None:
    event = str(f.get("Event", "")).lower()
    key = str(f.get("EventKey") or "")
    if event == "subscribe":
        # A QR code with a scene value carries the 邻's invite code: qrscene_<code>.
        code = key.removeprefix("qrscene_") if key.startswith("qrscene_") else ""
        return Inbound(**base, command="start", args=(code,) if code else (),
                       raw_event=event, event_key=key or None)
    if event == "scan" and key:
        return Inbound(**base, command="start", args=(key,), raw_event=event, event_key=key)
    if event == "click" and key in MENU_COMMANDS:
        return Inbound(**base, command=MENU_COMMANDS[key], raw_event=event, event_key=key)
    return None
