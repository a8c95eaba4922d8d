"""The unit of work of notices: events recorded by core, handed to subscribers in the same
transaction (as core/cases/events.py does for cases). Core may not import bot, so the notifier
is wired by the composition root through `subscribe` (bot/notify/__init__.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from core.notices.model import NoticeEvent


class NoticeSink(Protocol):
    def __call__(self, session: Session, events: Sequence[NoticeEvent]) -> int:
        """Act on notice events inside the caller's transaction; outbox rows written."""
        ...


_SINKS: dict[str, NoticeSink] = {}


def subscribe(name: str, sink: NoticeSink) -> None:
    """Register (or replace) a subscriber; the root calls this once per process."""
    _SINKS[name] = sink


def unsubscribe(name: str) -> None:
    _SINKS.pop(name, None)


def record(session: Session, *, notice_id: int, kind: str, at: datetime,
           actor_id: int | None = None, detail: dict[str, Any] | None = None) -> int:
    """Append an event and hand it to every subscriber at once; outbox rows written."""
    event = NoticeEvent(notice_id=notice_id, kind=kind, actor_id=actor_id, at=at, detail=detail)
    session.add(event)
    session.flush()
    return sum(sink(session, [event]) for sink in list(_SINKS.values()))
