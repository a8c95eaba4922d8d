"""The unit of work of case changes: the events an action recorded, handed to subscribers in
the same transaction.

Core records what happened (`ops.record` appends a `CaseEvent` and remembers it on the session)
and says nothing to anybody. At the end of an action (or of a sweep batch) `publish` flushes the
events, so they have ids, and calls each subscriber with them: the notifier (bot/notify) turns
them into outbox rows, the rollups (core/rollup/refresh.py) mark their village-days dirty. Core
may not import bot, so the subscribers are wired by the composition root (webhooks/app.py, the
CLI, the test fixtures) through `subscribe`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlmodel import Session

from core.cases.model import CaseEvent

_PENDING = "linzhang.case_events"


class EventSink(Protocol):
    def __call__(self, session: Session, events: Sequence[CaseEvent]) -> int:
        """Act on events inside the caller's transaction; how many outbox rows it wrote."""
        ...


# Ordered: the rollup marks and the messages of one batch are written in the same order always.
_SINKS: dict[str, EventSink] = {}


def subscribe(name: str, sink: EventSink) -> None:
    """Register (or replace) a subscriber; the root calls this once per process."""
    _SINKS[name] = sink


def unsubscribe(name: str) -> None:
    _SINKS.pop(name, None)


def subscribers() -> list[str]:
    return list(_SINKS)


def remember(session: Session, event: CaseEvent) -> None:
    """Note an event recorded in this session for the next `publish`."""
    session.info.setdefault(_PENDING, []).append(event)


def publish(session: Session) -> int:
    """Hand the events recorded since the last publish to every subscriber; outbox rows written.

    An event whose savepoint was rolled back is no longer in the session and is dropped."""
    pending: list[CaseEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return 0
    session.flush()
    events = [e for e in pending if e in session and e.id is not None]
    if not events:
        return 0
    return sum(sink(session, events) for sink in list(_SINKS.values()))
