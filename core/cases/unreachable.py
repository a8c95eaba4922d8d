"""When a chat platform says a person cannot be reached (they blocked the bot, the account is
gone): flag the identity and record it on the cases concerned, so nothing waits in silence.

A holder nobody can reach would sit on a case until the deadline sweep escalates it: a
`holder_unreachable` event on each unresolved case they hold lets the notifier tell the next
filled tier at once. A resident nobody can reach gets a `resident_unreachable` event on each
active case they follow: the holder's card says so (answers are still recorded, and shown on
the dashboard). Who is told what is bot/notify's rule; this module writes no message.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import events, ops
from core.cases.model import (
    ACTIVE_STATES,
    CASES,
    EVENTS,
    FOLLOWERS,
    UNRESOLVED_STATES,
    Case,
    EventKind,
)
from core.clock import Clock
from core.hierarchy.model import ChatIdentity, Person, carries_messages
from core.settings import Settings

log = logging.getLogger(__name__)

CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
PEOPLE: sa.Table = Person.__table__  # type: ignore[attr-defined]


def mark_unreachable(session: Session, *, platform: str, external_id: str) -> int | None:
    """Flag one chat identity unreachable; the person's id, or None for an unknown chat."""
    row = session.execute(
        sa.select(CI.c.id, CI.c.person_id).where(
            CI.c.platform == platform, CI.c.external_id == str(external_id)
        )
    ).first()
    if row is None:
        return None
    session.execute(sa.update(CI).where(CI.c.id == row.id).values(unreachable=True))
    return int(row.person_id)


def reachable_anywhere(session: Session, *, person_id: int,
                       platforms: Collection[str] | None = None) -> bool:
    """Whether any chat identity of the person is still reachable, on any of `platforms`
    (the ones the deployment runs; None: any platform)."""
    q = sa.select(sa.func.count()).select_from(CI).where(
        CI.c.person_id == person_id, carries_messages(CI)
    )
    if platforms is not None:
        q = q.where(CI.c.platform.in_(list(platforms)))
    if int(session.execute(q).scalar_one()) > 0:
        return True
    # A deployment that sends SMS reaches a person with a phone (core/deliveries.py: SMS).
    return platforms is not None and "sms" in platforms and session.execute(
        sa.select(PEOPLE.c.phone).where(PEOPLE.c.id == person_id)).scalar_one_or_none() is not None


def on_unreachable(session: Session, *, person_id: int, clock: Clock, settings: Settings,
                   platforms: Collection[str] | None = None) -> None:
    """Record that a person nobody can reach any more (on any of `platforms`, the ones the
    deployment runs) holds or follows these cases (once per case and state of it); the
    notifier tells the superior, and the holder's card says it."""
    if reachable_anywhere(session, person_id=person_id, platforms=platforms):
        return  # another chat account still reaches them: the cases are not stuck
    now = clock.now()
    held = sa.select(Case).where(
        CASES.c.holder_id == person_id,
        CASES.c.state.in_([s.value for s in UNRESOLVED_STATES])).order_by(CASES.c.id)
    followed = (sa.select(Case).join(FOLLOWERS, FOLLOWERS.c.case_id == CASES.c.id)
                .where(FOLLOWERS.c.person_id == person_id,
                       CASES.c.state.in_([s.value for s in ACTIVE_STATES]))
                .order_by(CASES.c.id))
    recorded = 0
    for kind, q in ((EventKind.holder_unreachable, held),
                    (EventKind.resident_unreachable, followed)):
        for case in session.execute(q).scalars():
            if _already(session, case, kind, person_id):
                continue
            ops.record(session, case, kind=kind, at=now, role=case.holder_role,
                       detail={"person": person_id, "version": case.version})
            recorded += 1
    if not recorded:
        log.info("person %s is unreachable; nothing new to record", person_id)
    events.publish(session)


def _already(session: Session, case: Case, kind: EventKind, person_id: int) -> bool:
    """Whether this case already says so for this state of it (a 403 comes on every send)."""
    q = sa.select(EVENTS.c.detail).where(EVENTS.c.case_id == case.id, EVENTS.c.kind == kind.value)
    return any((d or {}).get("person") == person_id and (d or {}).get("version") == case.version
               for d in session.execute(q).scalars())
