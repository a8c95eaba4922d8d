"""Who can be reached: a person is unreachable only when none of their identities on a
platform this deployment runs can be reached; then core records it (and tells the tier above
about the cases they hold), and their rows are settled at once instead of waiting for a sender
that will never come. A message from them makes them reachable again (bot/dispatch.py calls
`core.deliveries.reachable_again`), which releases what was given up.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import deliveries
from core.cases.unreachable import mark_unreachable, on_unreachable, reachable_anywhere
from core.clock import Clock
from core.db import write_session
from core.settings import Settings

log = logging.getLogger(__name__)


def chat_gone(session: Session, *, platform: str, chat_id: str, clock: Clock,
              settings: Settings, configured: Collection[str] | None) -> int | None:
    """A person's chat said "blocked" or "no such user": flag it; when no configured platform
    reaches the person any more, core hears of it. The person's id, or None."""
    person_id = mark_unreachable(session, platform=platform, external_id=chat_id)
    if person_id is not None:
        on_unreachable(session, person_id=person_id, clock=clock, settings=settings,
                       platforms=configured)
    return person_id


def gone(engine: Engine, *, platform: str, chat_id: str, clock: Clock, settings: Settings,
         configured: Collection[str] | None = None) -> None:
    """`chat_gone` in its own transaction."""
    with write_session(engine) as s:
        chat_gone(s, platform=platform, chat_id=chat_id, clock=clock, settings=settings,
                  configured=configured)


def still_reachable(session: Session, *, person_id: int,
                    configured: Collection[str] | None) -> bool:
    """Whether another identity on a configured platform may still take the person's row."""
    return reachable_anywhere(session, person_id=person_id, platforms=configured)


def settle_unreachable(engine: Engine, *, configured: Collection[str], clock: Clock,
                       settings: Settings) -> int:
    """Rows for people no configured platform reaches: dead at once (revived when they write),
    and core told for each such person; how many rows were settled."""
    with write_session(engine) as s:
        now = clock.now()
        by_person = deliveries.unreachable_rows(s, platforms=configured, now=now)
        for person_id, ids in by_person.items():
            deliveries.give_up_unreachable(
                s, message_ids=ids, now=now,
                why="no identity on " + ", ".join(sorted(configured)) + " can be reached")
            on_unreachable(s, person_id=person_id, clock=clock, settings=settings,
                           platforms=configured)
        n = sum(len(v) for v in by_person.values())
    if n:
        log.info("%s outbox rows for unreachable people settled", n)
    return n
