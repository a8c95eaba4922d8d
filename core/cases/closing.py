"""Closing the loop: the resident confirms and rates, or says it is not fixed."""

from __future__ import annotations

from sqlmodel import Session

from core.cases import away, events, ops
from core.cases.model import Case, EventKind, Stage, State
from core.cases.permissions import refuse
from core.cases.services import _clean_text
from core.clock import Clock
from core.errors import InvalidInput

LOW_RATING = 2


def _resident_case(session: Session, *, clock: Clock, case_id: int, person_id: int,
                   version: int, action: str, via: str | None) -> Case:
    now = clock.now()
    case = ops.load(session, case_id)
    if person_id not in ops.followers(session, case_id):
        raise refuse(session, case=case, person_id=person_id, action=action, at=now, via=via,
                     reason="rate_not_yours", params={"case": case_id})
    ops.check_version(session, case, version)
    return case


def confirm(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
            rating: int, comment: str | None = None, via: str | None = None) -> Case:
    """The resident confirms the fix and rates it 1–5 (a poor rating reaches the superior:
    bot/notify's rule, from `LOW_RATING`)."""
    if not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidInput("stars_range")
    case = _resident_case(session, clock=clock, case_id=case_id, person_id=person_id,
                          version=version, action="confirm", via=via)
    ops.require_state(case, {State.resolved}, "confirm")
    now = clock.now()
    words = _clean_text(comment, required=False) or None
    case.state = State.closed.value
    case.closed_at = now
    case.close_reason = "rated"
    case.rating = rating
    case.rating_comment = words
    ops.stop_clock(case)
    ops.touch(case, now)
    ops.record(session, case, kind=EventKind.confirmed, at=now, actor_id=person_id,
               from_state=State.resolved.value, role=case.holder_role, via=via, note=words,
               detail={"rating": rating})
    events.publish(session)
    return case


def not_fixed(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
              reason: str | None = None, via: str | None = None) -> Case:
    """The resident says it is not fixed: back to the same holder with a fresh deadline."""
    case = _resident_case(session, clock=clock, case_id=case_id, person_id=person_id,
                          version=version, action="not_fixed", via=via)
    ops.require_state(case, {State.resolved}, "reopen")
    now = clock.now()
    words = _clean_text(reason, required=False) or None
    case.state = State.accepted.value
    case.resolved_at = None
    covering = away.cover_holder(session, case, now=now)  # its holder is away: the stand-in
    ops.start_stage(case, Stage.handle, now)
    ops.touch(case, now)
    ops.record(session, case, kind=EventKind.reopened, at=now, actor_id=person_id,
               from_state=State.resolved.value, role=case.holder_role, via=via, note=words,
               detail={"covering_for": covering} if covering is not None else None)
    events.publish(session)
    return case
