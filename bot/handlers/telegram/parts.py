"""Cutting one outbox message into what Telegram accepts: texts of at most 4096 characters,
captions of at most 1024, buttons whose callback data fits 64 bytes, on the last part only.

Telegram counts length in UTF-16 code units (an emoji outside the BMP counts two), so the
cuts here do too; a cut prefers a line break, then a space, in the second half of the
allowed length, and never splits a surrogate pair.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.flows.types import Button
from bot.handlers.buttons import press_arg
from bot.handlers.telegram.callback import CallbackError, encode

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ROW_WIDTH = 16  # a phone shows about this many CJK characters of buttons side by side
SAME_ACTION_PER_ROW = 5  # the 1–5 star rating fits one row


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, start: int, limit: int) -> int:
    """The largest end such that text[start:end] is at most `limit` UTF-16 units."""
    units, i = 0, start
    while i < len(text):
        units += 2 if ord(text[i]) > 0xFFFF else 1
        if units > limit:
            break
        i += 1
    return i


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` UTF-16 units, cut on line breaks where possible."""
    if limit < 2:
        raise ValueError("limit too small")
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = _fit(text, start, limit)
        if end >= len(text):
            parts.append(text[start:])
            break
        floor = start + (end - start) // 2
        cut = text.rfind("\n", floor, end)
        skip = 1
        if cut <= start:
            cut = text.rfind(" ", floor, end)
        if cut <= start:
            cut, skip = end, 0
        parts.append(text[start:cut])
        start = cut + skip
    return [p for p in parts if p.strip()] or ([text[:_fit(text, 0, limit)]] if text else [])


@dataclass(frozen=True)
class Part:
    """One Telegram message of an outbox row."""

    kind: str  # text | photo | document
    text: str  # the text, or the caption of a photo/document ("" for none)
    media: str | None = None
    first: bool = False  # carries the reply-to
    last: bool = False  # carries the buttons or the contact keyboard


def plan(text: str, *, photo: str | None = None, document: str | None = None,
         voice: str | None = None) -> list[Part]:
    """The messages one outbox row becomes: media (a photo, a file or a voice note) with a
    caption of at most 1024, the rest of the text after it in messages of at most 4096."""
    media_kind, media = (("photo", photo) if photo else ("voice", voice) if voice
                         else ("document", document))
    pieces: list[tuple[str, str, str | None]] = []
    if media:
        caption = split_text(text, CAPTION_LIMIT)[0] if text.strip() else ""
        rest = text[len(caption):].lstrip("\n ") if caption else ""
        pieces.append((media_kind, caption, media))
        pieces += [("text", t, None) for t in split_text(rest)]
    else:
        pieces += [("text", t, None) for t in split_text(text)]
    if not pieces:
        raise ValueError("an empty message has no parts")
    n = len(pieces)
    return [Part(kind, t, m, first=i == 0, last=i == n - 1)
            for i, (kind, t, m) in enumerate(pieces)]


def buttons_from_actions(actions: Iterable[Mapping[str, Any]]) -> list[Button]:
    """Outbox action JSON → flow Buttons; the press argument as `bot.handlers.buttons` reads it."""
    out = []
    for a in actions:
        arg = press_arg(a)
        out.append(Button(label=str(a["label"]), action=str(a["action"]),
                          case_id=int(a.get("case_id") or 0), version=int(a.get("version") or 0),
                          arg=arg))
    return out


def keyboard_rows(buttons: Sequence[Button]) -> list[list[tuple[str, str]]]:
    """(label, callback data) rows: a run of the same action (the stars) shares a row, other
    buttons are packed by label width. A button whose data cannot be encoded (no short code
    for its action, or over 64 bytes) is left out and logged rather than failing the message."""
    rows: list[list[tuple[str, str]]] = []
    width = 0
    prev_action: str | None = None
    for b in buttons:
        try:
            data = encode(b)
        except CallbackError as e:
            log.warning("button %r left out: %s", b.label, e)
            continue
        w = len(b.label) + 2
        same_run = (b.action == prev_action and rows
                    and len(rows[-1]) < SAME_ACTION_PER_ROW and len(b.label) <= 6)
        if rows and (same_run or (b.action != prev_action and width + w <= ROW_WIDTH)):
            rows[-1].append((b.label, data))
            width += w
        else:
            rows.append([(b.label, data)])
            width = w
        prev_action = b.action
    return rows
