"""Urgent categories (the 119/110/120 kind: fire, police, ambulance matters a resident reports
to us first) text the town's duty officer at once, whatever chats they have.

core/hierarchy knows no duty post; the town's duty officer is taken to be the admin(s) of the
town above the case's 邻 (the town office is where the chain ends: 乡镇+书记). Their row is
pinned to SMS (`platform="sms"`), so no chat transport takes it and the text goes even to an
admin who also reads the bot: a phone rings where a chat may sit unread at night. The
categories are `SMS_URGENT_CATEGORIES` (names, comma-separated); the composition root
subscribes `on_events` when SMS runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session

from bot.flows.texts import t
from core.cases import events
from core.cases.model import Case, CaseEvent, EventKind
from core.hierarchy.model import Category, Level, Role
from core.hierarchy.queries import ancestors, holders, node_by_id
from core.outbox import Draft, enqueue_many
from core.settings import Settings

KIND = "sms_urgent"


def urgent_names(settings: Settings) -> frozenset[str]:
    """The urgent categories' names from the setting."""
    return frozenset(n.strip() for n in settings.sms_urgent_categories.split(",") if n.strip())


def duty_officers(session: Session, *, home_node_id: int) -> list[int]:
    """The admins of the town above a 邻 (none: the town has no admin)."""
    home = node_by_id(session, home_node_id)
    towns = [n for n in ancestors(session, home, include_self=True) if n.level == Level.town]
    return [p.id for town in towns for p in holders(session, town, Role.admin)]


def drafts_for(session: Session, *, events_: Sequence[CaseEvent], names: frozenset[str]
               ) -> list[Draft]:
    """One pinned SMS per duty officer for each case opened in an urgent category."""
    out: list[Draft] = []
    for e in events_:
        if e.kind != EventKind.opened:
            continue
        case = session.get(Case, e.case_id)
        if case is None or case.category_id is None:
            continue
        category = session.execute(sa.select(Category.name).where(  # type: ignore[call-overload]
            Category.id == case.category_id)).scalar_one_or_none()
        if category not in names:
            continue
        place = node_by_id(session, case.home_node_id).name
        text = t("zh", "sms_urgent_note", case=case.id, category=category, place=place)
        out += [Draft(text=text, kind=KIND, person_id=p, platform="sms", case_id=case.id,
                      dedupe_key=f"e{e.id}:urgent:p{p}",
                      options={"sms_params": [category, place]})
                for p in duty_officers(session, home_node_id=case.home_node_id)]
    return out


def on_events(settings: Settings) -> events.EventSink:
    """The event subscriber for this deployment's urgent categories."""
    names = urgent_names(settings)

    def sink(session: Session, events: Sequence[CaseEvent]) -> int:
        drafts = drafts_for(session, events_=events, names=names)
        return enqueue_many(session, drafts=drafts, now=max(e.at for e in events)) \
            if drafts else 0

    return sink


def install(settings: Settings) -> None:
    """Subscribe (or, without urgent categories, unsubscribe) the urgent texts."""
    if urgent_names(settings):
        events.subscribe("sms_urgent", on_events(settings))
    else:
        events.unsubscribe("sms_urgent")


__all__ = ["KIND", "drafts_for", "duty_officers", "install", "on_events", "urgent_names"]
