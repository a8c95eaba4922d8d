"""What the Telegram sender works on: an outbox row as a `Job`, where it goes (`Dest`), where
its photo or document comes from (`MediaSource`, `StoreMedia`), and what a run did
(`SenderStats`).

Plain data and small adapters, apart from the sender's loop (sender.py) and the delivery of
one row (delivery.py), so both can share them without importing each other's logic. A `Job`
crosses threads (claimed in a DB worker thread, delivered on the event loop), hence frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.handlers.telegram.api import Upload
from core import deliveries
from core.media.store import MediaStore
from core.outbox import OutboxMessage

PLATFORM = "telegram"
# Messages that present a case to its holder or its tier chat are cards whose state edits
# follow the case, whether or not the row says `options.card` (core's drafts do not yet).
CARD_KINDS = frozenset({"new_case", "mirror"})


class MediaSource(Protocol):
    def __call__(self, ref: str) -> Upload | str:
        """The bytes to upload for a media-store ref, or a Telegram file_id to send as is."""
        ...


class StoreMedia:
    """Refs of the media store (core/media/store.py); `telegram:<file_id>` is sent by id,
    without an upload (a photo a resident sent, forwarded to a leader)."""

    def __init__(self, store: MediaStore) -> None:
        self.store = store

    def __call__(self, ref: str) -> Upload | str:
        if ref.startswith("telegram:"):
            return ref.removeprefix("telegram:")
        return Upload(ref.rsplit("/", 1)[-1], self.store.open(ref))


@dataclass(frozen=True)
class Job:
    """An outbox row as the sender needs it (plain data: it crosses threads)."""

    id: int
    kind: str
    text: str
    person_id: int | None
    chat_binding_id: int | None
    platform: str | None
    address: str | None
    case_id: int | None
    actions: tuple[dict[str, Any], ...]
    options: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxMessage) -> Job:
        assert row.id is not None
        return cls(row.id, row.kind, row.text, row.person_id, row.chat_binding_id, row.platform,
                   row.address, row.case_id, tuple(row.actions or ()), dict(row.options or {}))

    @property
    def key(self) -> str:
        """Rows with the same key go out in order, one at a time."""
        if self.kind == deliveries.CARD_UPDATE and self.case_id is not None:
            return f"card:{self.case_id}"
        if self.person_id is not None:
            return f"person:{self.person_id}"
        if self.chat_binding_id is not None:
            return f"binding:{self.chat_binding_id}"
        return f"chat:{self.address}"


@dataclass(frozen=True)
class Dest:
    chat_id: str
    identity: bool  # a person's private chat: a 403 makes the identity unreachable


@dataclass
class SenderStats:
    messages: int = 0  # Telegram messages accepted
    rows_sent: int = 0
    rows_retried: int = 0
    rows_dead: int = 0
    rows_deferred: int = 0
    rows_released: int = 0
    too_many: int = 0  # 429 answers
    edits: int = 0
    unreachable: int = 0
    errors: list[str] = field(default_factory=list)
