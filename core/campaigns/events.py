"""The unit of work of campaign changes, as core/cases/events.py is for cases: services record
`CampaignEvent`s and `publish` hands them to the subscribers (the notifier) in the same
transaction. Core may not import bot, so the notifier subscribes from the composition root."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from core.campaigns.model import CampaignEvent, CampaignEventKind

_PENDING = "linzhang.campaign_events"


class CampaignSink(Protocol):
    def __call__(self, session: Session, events: Sequence[CampaignEvent]) -> int:
        """Act on events inside the caller's transaction; how many outbox rows it wrote."""
        ...


_SINKS: dict[str, CampaignSink] = {}


def subscribe(name: str, sink: CampaignSink) -> None:
    """Register (or replace) a subscriber; the root calls this once per process."""
    _SINKS[name] = sink


def unsubscribe(name: str) -> None:
    _SINKS.pop(name, None)


def record(session: Session, *, campaign_id: int, kind: CampaignEventKind, at: datetime,
           actor_id: int | None = None, detail: dict[str, Any] | None = None) -> CampaignEvent:
    """Append an event and remember it for the next `publish`."""
    e = CampaignEvent(campaign_id=campaign_id, kind=kind.value, at=at, actor_id=actor_id,
                      detail=detail)
    session.add(e)
    session.info.setdefault(_PENDING, []).append(e)
    return e


def publish(session: Session) -> int:
    """Hand the events recorded since the last publish to every subscriber; rows written."""
    pending: list[CampaignEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return 0
    session.flush()
    events = [e for e in pending if e in session and e.id is not None]
    return sum(sink(session, events) for sink in list(_SINKS.values())) if events else 0
