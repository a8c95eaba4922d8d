"""What the Telegram sender works on: an outbox row as a `Job`, where it goes (`Dest`), where
its photo or document comes from (`MediaSource`, `StoreMedia`), and what a run did
(`SenderStats`).

Plain data and small adapters, apart from the sender's loop (sender.py) and the delivery of
one row (delivery.py), so both can share them without importing each other's logic. A `Job`
crosses threads (claimed in a DB worker thread, delivered on the event loop), hence frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.dispatcher.recipients import Dest
from bot.dispatcher.rows import CARD_KINDS, Row
from bot.handlers.telegram.api import Upload
from core.media.store import MediaStore

__all__ = ["CARD_KINDS", "PLATFORM", "Dest", "Job", "MediaSource", "SenderStats", "StoreMedia"]

PLATFORM = "telegram"
# One row type for every transport (bot/dispatcher/rows.py): a Telegram job is that row.
Job = Row


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
