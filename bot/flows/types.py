"""What flows take and give: a platform-neutral inbound message and the messages to send."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Media:
    """A file or a location in an inbound message, as the platform refers to it."""

    kind: str  # photo | voice | audio | video | document | location
    file_ref: str | None = None  # the platform's file id (Telegram file_id, WeChat MediaId)
    file_unique_id: str | None = None
    mime: str | None = None
    size: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    stored_ref: str | None = None  # set once downloaded into the media store
    recognition: str | None = None  # speech-to-text the platform already did (WeChat)


@dataclass(frozen=True)
class Press:
    """A button press: the action with the case version it was shown for."""

    action: str
    case_id: int
    version: int
    arg: str | None = None  # e.g. the rating, a category index
    query_id: str | None = None  # the platform's id for acknowledging the press
    message_id: str | None = None  # the message the button was on


@dataclass(frozen=True)
class Inbound:
    """One thing a person did in a chat, whatever the platform."""

    platform: str
    update_id: str  # the platform's id, for deduplication
    chat_id: str
    sender_id: str
    received_at: datetime
    chat_is_private: bool = True
    chat_title: str | None = None
    sender_name: str = ""
    language: str | None = None
    message_id: str | None = None
    text: str | None = None
    command: str | None = None  # without the slash and the @botname
    args: tuple[str, ...] = ()
    media: tuple[Media, ...] = ()
    contact_phone: str | None = None  # a contact the sender shared of themselves
    reply_to_message_id: str | None = None  # the bot's message this replies to
    reply_to_text: str | None = None  # its text, for platforms that quote instead (#id)
    press: Press | None = None
    album_id: str | None = None  # several photos sent together
    raw_event: str | None = None  # platform events: subscribe, menu click …
    event_key: str | None = None

    def without_nul(self) -> Inbound:
        """The same message with NUL characters dropped from its words: no chat shows them,
        and PostgreSQL text columns refuse them (the report would be lost)."""
        names = ("text", "reply_to_text", "sender_name", "chat_title", "contact_phone")
        fields: dict[str, Any] = {k: v.replace("\x00", "") for k in names
                                  if isinstance(v := getattr(self, k), str) and "\x00" in v}
        if any("\x00" in a for a in self.args):
            fields["args"] = tuple(a.replace("\x00", "") for a in self.args)
        return replace(self, **fields) if fields else self


@dataclass(frozen=True)
class Button:
    label: str
    action: str
    case_id: int = 0
    version: int = 0
    arg: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "label": self.label,
                               "case_id": self.case_id, "version": self.version}
        if self.arg is not None:
            out["arg"] = self.arg
        return out


@dataclass(frozen=True)
class Outbound:
    """A message a flow wants sent: to a person, a bound chat, or straight back to a chat."""

    text: str
    kind: str = "reply"
    person_id: int | None = None
    chat_binding_id: int | None = None
    platform: str | None = None  # with `address`: a raw chat (a stranger, the chat it came from)
    address: str | None = None
    case_id: int | None = None
    buttons: tuple[Button, ...] = ()
    reply_to_message_id: str | None = None
    request_contact: bool = False  # show a "share my phone number" button
    document: str | None = None  # a stored media ref to send as a file (exports)
    photo: str | None = None  # a stored media ref to send as a photo
    answer_press: str | None = None  # acknowledge this button press (query id) with `text`
    options: dict[str, Any] = field(default_factory=dict)
