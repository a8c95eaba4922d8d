"""A Telegram update (JSON) → an Inbound, with python-telegram-bot doing the parsing."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from telegram import Message, Update

from bot.flows.types import Inbound, Media
from bot.handlers.telegram.callback import CallbackError, decode


class Unparseable(ValueError):
    """Not an update we understand (or not an update at all)."""


def parse_update(data: Any, *, now: datetime, bot_username: str | None = None) -> Inbound | None:
    """The Inbound of an update; None for updates we take note of but do not act on."""
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise Unparseable("not a Telegram update (no integer update_id)")
    try:
        update = Update.de_json(data, None)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise Unparseable(f"malformed update: {type(exc).__name__}: {exc}") from None
    if update is None:
        raise Unparseable("empty update")
    try:
        inbound = _interpret(update, now, bot_username)
        return None if inbound is None else _typed(inbound)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        # python-telegram-bot builds objects without checking field types: a `text` that is a
        # number or a `chat` that is null only shows up here. Not an update Telegram sends.
        raise Unparseable(f"malformed update: {type(exc).__name__}: {exc}") from None


def _interpret(update: Update, now: datetime, bot_username: str | None) -> Inbound | None:
    uid = str(update.update_id)
    if update.callback_query is not None:
        q = update.callback_query
        msg = q.message if isinstance(q.message, Message) else None
        if msg is None or q.data is None:
            return None
        _check_ids(msg.chat.id, q.from_user.id, msg.message_id)
        try:
            press = decode(q.data, query_id=q.id, message_id=str(msg.message_id))
        except CallbackError:
            return None
        return Inbound(
            platform="telegram", update_id=uid, chat_id=str(msg.chat.id),
            sender_id=str(q.from_user.id), sender_name=q.from_user.full_name,
            language=q.from_user.language_code, received_at=now,
            chat_is_private=msg.chat.type == "private", chat_title=msg.chat.title,
            message_id=str(msg.message_id), press=press,
        )
    msg = update.message
    if msg is None or msg.from_user is None or msg.from_user.is_bot:
        return None  # edits, channel posts, membership changes: noted, not acted on
    return _from_message(msg, uid, now, bot_username)


def _typed(i: Inbound) -> Inbound:
    """The Inbound, once every field has the type (and a size) Telegram's own would have."""
    for name in ("sender_name", "language", "chat_title", "text", "reply_to_text", "album_id",
                 "contact_phone"):
        value = getattr(i, name)
        if value is not None and (not isinstance(value, str) or len(value) > 10_000):
            raise ValueError(f"{name} is not text")
    if len(i.chat_title or "") > 255 or len(i.language or "") > 35:
        raise ValueError("a chat title or language code longer than Telegram allows")
    for m in i.media:
        for ref, limit in ((m.file_ref, 200), (m.file_unique_id, 200), (m.mime, 100)):
            if ref is not None and (not isinstance(ref, str) or len(ref) > limit):
                raise ValueError("a file id or MIME type that Telegram would not send")
        for number in (m.size, m.latitude, m.longitude):
            if number is not None and (isinstance(number, bool)
                                       or not isinstance(number, int | float)
                                       or not math.isfinite(number)):
                raise ValueError("a file size or coordinate that is not a number")
    return i


def _check_ids(*ids: object) -> None:
    """Chat, user and message ids are integers in every update Telegram sends; anything else
    (an empty string, a float) would leave a reply without an address."""
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError(f"ids are not integers: {ids!r}")


def _from_message(msg: Message, uid: str, now: datetime, bot_username: str | None) -> Inbound:
    user = msg.from_user
    assert user is not None
    _check_ids(msg.chat.id, user.id, msg.message_id)
    text = msg.text or msg.caption
    command: str | None = None
    args: tuple[str, ...] = ()
    if text and text.startswith("/"):
        head, *rest = text.split()
        name, _, target = head[1:].partition("@")
        # A command addressed to another bot in a group is not ours.
        if not target or bot_username is None or target.lower() == bot_username.lower():
            command, args = name.lower()[:32], tuple(rest)
            text = " ".join(rest) or None
    media: list[Media] = []
    if msg.photo:
        best = msg.photo[-1]  # Telegram lists sizes smallest first
        media.append(Media("photo", best.file_id, best.file_unique_id, "image/jpeg",
                           best.file_size))
    for kind, obj in (("voice", msg.voice), ("audio", msg.audio), ("video", msg.video),
                      ("video", msg.video_note), ("document", msg.document)):
        if obj is not None:
            media.append(Media(kind, obj.file_id, obj.file_unique_id,
                               getattr(obj, "mime_type", None), obj.file_size))
    if msg.location is not None:
        media.append(Media("location", latitude=msg.location.latitude,
                           longitude=msg.location.longitude))
    contact_phone = None
    # Only a contact of the sender themselves proves their number.
    if msg.contact is not None and msg.contact.user_id == user.id:
        contact_phone = msg.contact.phone_number
    reply = msg.reply_to_message
    reply_id = str(reply.message_id) if reply is not None else None
    reply_text = (reply.text or reply.caption) if reply is not None else None
    return Inbound(
        platform="telegram", update_id=uid, chat_id=str(msg.chat.id), sender_id=str(user.id),
        sender_name=user.full_name, language=user.language_code, received_at=now,
        chat_is_private=msg.chat.type == "private", chat_title=msg.chat.title,
        message_id=str(msg.message_id), text=text, command=command, args=args,
        media=tuple(media), contact_phone=contact_phone, reply_to_message_id=reply_id,
        reply_to_text=reply_text, album_id=msg.media_group_id,
    )
