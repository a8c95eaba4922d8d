"""A web chat message in: store its uploads, log it for the page, run the flow (deduplicated by
the client's message id), and turn the replies into chat lines at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bot import dispatch
from bot.flows.refusals import sentence
from bot.flows.texts import t
from bot.flows.types import Inbound, Media, Press
from bot.handlers.web.transport import PLATFORM, deliver_pending
from core import web_sessions
from core.container import Container
from core.db import write_session
from core.errors import MediaRejected, MediaStoreUnavailable
from core.media import check_media, process_image
from core.media.store import UNAVAILABLE, MediaStore, unsaved_ref

log = logging.getLogger(__name__)
UPLOAD_KINDS = ("photo", "voice")
_UNSAVED = t("zh", UNAVAILABLE).removeprefix("文件")
UNSAVED_TEXT = {
    "photo": f"抱歉，照片{_UNSAVED}，您发的消息已照常处理，不会丢失；"
             "请稍后再发一次照片。",
    "voice": f"抱歉，语音{_UNSAVED}，您发的消息已照常处理，不会丢失；"
             "请稍后再发一次语音，或改用文字说明。",
}


@dataclass(frozen=True)
class Upload:
    """A file from the page: `photo` (any image) or `voice` (a recording or an audio file)."""

    kind: str
    data: bytes
    filename: str = ""
    mime: str = ""


@dataclass
class Result:
    duplicate: bool = False
    errors: list[str] = field(default_factory=list)  # files refused (the sender can fix it)
    too_large: bool = False
    unsaved: list[str] = field(default_factory=list)  # files our store could not keep


def parse_command(text: str) -> tuple[str | None, tuple[str, ...]]:
    """`/start j12ab` → ("start", ("j12ab",)); plain words → (None, ())."""
    if not text.startswith("/"):
        return None, ()
    head, *rest = text[1:].split()
    return (head.split("@", 1)[0].lower() or None), tuple(rest)


def store_upload(c: Container, up: Upload) -> Media:
    """Check and keep one upload; raises MediaRejected with a sentence for the person."""
    s = c.settings
    store = MediaStore.from_settings(s)
    if up.kind == "photo":
        img = process_image(up.data, max_bytes=s.max_photo_bytes, max_pixels=s.max_image_pixels)
        ref = store.put(img.image, img.suffix)
        return Media(kind="photo", stored_ref=ref, mime=img.mime, size=len(img.image))
    info = check_media(up.data, kind="voice", max_bytes=s.max_voice_bytes,
                       filename=up.filename or None)
    ref = store.put(up.data, info.suffix)
    return Media(kind="voice", stored_ref=ref, mime=info.mime, size=len(up.data))


def handle(c: Container, *, chat_id: str, client_id: str, text: str = "",
           uploads: tuple[Upload, ...] = (), location: tuple[float, float] | None = None,
           reply_to_text: str | None = None, reply_to_message_id: str | None = None,
           press: Press | None = None, contact_phone: str | None = None,
           sender_name: str = "", press_label: str = "") -> Result:
    """One message from the page, handled as every platform's are (see bot/dispatch.py)."""
    result = Result()
    media: list[Media] = []
    for n, up in enumerate(uploads):
        try:
            media.append(store_upload(c, up))
        except MediaRejected as exc:
            # The rest of the message still counts: the words alone can open the case.
            result.errors.append(sentence(exc))
            result.too_large = result.too_large or "too_large" in (exc.reason or "")
        except MediaStoreUnavailable as exc:
            # Our disk, not their file: the words still open the case, and the file is on it
            # as an attachment marked failed, so the holder knows a photo was sent.
            log.error("web chat: media store unavailable (%s); %s kept as failed",
                      exc.reason, up.kind)
            result.unsaved.append(UNSAVED_TEXT[up.kind if up.kind in UNSAVED_TEXT else "photo"])
            media.append(Media(kind=up.kind, file_ref=unsaved_ref(f"web:{client_id}:{n}"),
                               mime=up.mime or None, size=len(up.data)))
    if location is not None:
        media.append(Media(kind="location", latitude=location[0], longitude=location[1]))
    text = text.strip()
    command, args = parse_command(text)
    now = c.clock.now()
    log_opts: dict[str, Any] = {}
    for m in media:
        if m.kind in ("photo", "voice") and m.stored_ref is None:
            continue  # not kept: the page has nothing to show
        if m.kind == "photo":
            log_opts["photo"] = m.stored_ref
        elif m.kind == "voice":
            log_opts["voice"] = m.stored_ref
        elif m.kind == "location":
            log_opts["location"] = [m.latitude, m.longitude]
    if reply_to_message_id:
        log_opts["reply_to_message_id"] = reply_to_message_id
    if press is not None:
        log_opts["press"] = press.action
    with write_session(c.engine) as session:
        for err in result.errors + result.unsaved:
            web_sessions.deliver(session, chat_id=chat_id, text=err, actions=[],
                                 options={"error": True}, case_id=None, kind="error",
                                 outbox_id=None, now=now)
        # A press shows as its button's label, as the person saw it ("★★★★★ 非常满意").
        shown = text if press is None else press_label[:64]
        fresh = web_sessions.log_inbound(session, chat_id=chat_id, client_id=client_id,
                                         text=shown, options=log_opts or None, now=now)
    if not (text or media or press or contact_phone):
        return result
    inbound = Inbound(
        platform=PLATFORM, update_id=f"{chat_id}:{client_id}", chat_id=chat_id,
        sender_id=chat_id, received_at=now, sender_name=sender_name, language="zh",
        message_id=client_id, text=text or None, command=command, args=args,
        media=tuple(media), contact_phone=contact_phone, reply_to_text=reply_to_text,
        reply_to_message_id=reply_to_message_id, press=press,
    )
    payload = {"chat_id": chat_id, "client_id": client_id, "text": text,
               "media": [m.__dict__ for m in media], "reply_to_text": reply_to_text,
               "press": press.__dict__ if press else None}
    processed = dispatch.process(c.engine, inbound=inbound, payload=payload, clock=c.clock,
                                 settings=c.settings, counters=c.counters)
    result.duplicate = not (processed and fresh)
    deliver_pending(c.engine, clock=c.clock)
    return result
