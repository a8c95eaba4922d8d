"""What leaders do with a case: accept, reply, ask, resolve, escalate, whistle, merge,
reject, reassign. Each takes the version the button was made for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from core.cases import events, ops
from core.cases.model import Case, EventKind, Stage, State
from core.cases.permissions import may_act, may_whistle, refuse
from core.cases.routing import Target, category_by_name, department_for, next_target
from core.cases.services import NewAttachment, _clean_text, attach
from core.clock import Clock
from core.errors import Conflict, InvalidInput, phrase
from core.hierarchy.model import Category, Role
from core.hierarchy.queries import (
    Actor,
    NodeRef,
    actor,
    chain_for_node,
    node_by_id,
)
from core.hierarchy.tree import LEADER_ROLES


@dataclass
class _Ctx:
    case: Case
    who: Actor
    home: NodeRef
    holder_node: NodeRef | None
    now: datetime
    via: str | None


def _begin(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
           action: str, via: str | None) -> _Ctx:
    """Lock the case, check the person may act on it, then that the button is current."""
    now = clock.now()
    case = ops.load(session, case_id)
    who = actor(session, person_id)
    home = node_by_id(session, case.home_node_id)
    holder_node = node_by_id(session, case.holder_node_id) if case.holder_node_id else None
    if not may_act(who, holder_id=case.holder_id, holder_role=case.holder_role,
                   holder_node=holder_node, home=home):
        raise refuse(session, case=case, person_id=person_id, action=action, at=now, via=via,
                     reason="not_holder",
                     params={"case": case_id, "doing": phrase(f"verb.{action}")})
    ops.check_version(session, case, version)
    if case.stage == Stage.verify.value:
        # Waiting for 核查: only 核查通过 / 退回重办 (core/cases/verify.py) move it on.
        raise Conflict("verify_waiting", case=case_id)
    return _Ctx(case, who, home, holder_node, now, via)


def _own_post(c: _Ctx) -> Target:
    """The post an acting person holds the case on when they take it over: the holder's own
    post, else their lowest leading post above it, else their office."""
    case, who = c.case, c.who
    if c.holder_node is not None and case.holder_role is not None:
        if who.holds(Role(case.holder_role), c.holder_node):
            return Target(who.person, Role(case.holder_role), c.holder_node)
        above = [(r, n) for r, n in who.posts
                 if (r in LEADER_ROLES or r is Role.department) and n.contains(c.holder_node)]
        if above:
            r, n = max(above, key=lambda p: len(p[1].path))
            return Target(who.person, r, n)
    offices = [n for n in who.admin_scopes() if n.contains(c.home)]
    n = max(offices, key=lambda n: len(n.path))
    return Target(who.person, Role.admin, n)


def _take(c: _Ctx) -> dict[str, int]:
    """A superior or admin acting on someone else's case takes it over (the event's detail
    says from whom, so that the former holder hears of it)."""
    case = c.case
    if case.holder_id == c.who.person.id:
        return {}
    previous = case.holder_id
    ops.assign(case, _own_post(c))
    return {"taken_from": previous} if previous is not None else {}


def _first_answer(case: Case, now: datetime) -> None:
    if case.first_reply_at is None:
        case.first_reply_at = now
        case.first_reply_role = case.holder_role
        case.first_reply_on_time = case.deadline_at is None or now <= ops.as_utc(case.deadline_at)


def _to_accepted(session: Session, c: _Ctx, *, by_answer: bool = False) -> EventKind:
    """Open → accepted: the holder's first answer starts the handling deadline (`by_answer`:
    the acceptance came with an answer to the resident, who hears the answer alone)."""
    case = c.case
    detail: dict[str, object] = {**_take(c), **({"with_answer": True} if by_answer else {})}
    reporting_in = case.holder_role == Role.department.value
    _first_answer(case, c.now)
    case.state = State.accepted.value
    case.accepted_at = c.now
    if reporting_in:
        case.department_reported_at = c.now
    ops.start_stage(case, Stage.handle, c.now)
    ops.touch(case, c.now)
    kind = EventKind.reported_in if reporting_in else EventKind.accepted
    ops.record(session, case, kind=kind, at=c.now, actor_id=c.who.person.id,
               from_state=State.open.value, role=case.holder_role, via=c.via, detail=detail)
    return kind


def accept(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
           via: str | None = None) -> Case:
    """Take the case on (a department liaison: report in, 报到); the handling deadline starts."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="accept", via=via)
    ops.require_state(c.case, {State.open}, "accept")
    _to_accepted(session, c)
    events.publish(session)
    return c.case


def _say(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
         text: str, via: str | None, action: str, kind: EventKind) -> Case:
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action=action, via=via)
    body = _clean_text(text, required=True)
    ops.require_state(c.case, {State.open, State.accepted}, action)
    case = c.case
    if case.state == State.open.value:
        _to_accepted(session, c, by_answer=True)
    case.updated_at = c.now
    ops.record(session, case, kind=kind, at=c.now, actor_id=c.who.person.id, via=via, note=body,
               role=case.holder_role)
    events.publish(session)
    return case


def reply(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
          text: str, via: str | None = None) -> Case:
    """Answer the resident; a first answer also accepts the case."""
    return _say(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
                text=text, via=via, action="reply", kind=EventKind.replied)


def ask_more(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
             question: str, via: str | None = None) -> Case:
    """Ask the resident for more (a photo, the exact spot); counts as the first answer."""
    return _say(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
                text=question, via=via, action="ask_more", kind=EventKind.asked_more)


def resolve(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
            note: str | None = None, after_photos: tuple[NewAttachment, ...] = (),
            via: str | None = None) -> Case:
    """Say it is fixed; the resident has the confirm window to confirm and rate."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="resolve", via=via)
    ops.require_state(c.case, {State.open, State.accepted}, "resolve")
    body = _clean_text(note, required=False)
    case = c.case
    before = case.state
    detail = _take(c)
    _first_answer(case, c.now)
    from core.cases import verify

    checker = verify.verifier_for(session, case, c.home) if verify.needed(session, case) \
        else None
    if checker is not None:
        event_id = verify.request(session, case, checker, now=c.now, actor_id=c.who.person.id,
                                  via=via, note=body or None,
                                  detail={**detail, "after_photos": len(after_photos)})
        from core.cases.model import CaseEvent

        request_event = session.get(CaseEvent, event_id)
        assert request_event is not None
        attach(session, case, request_event, after_photos, purpose="after",
               by=c.who.person.id, now=c.now)
        events.publish(session)
        return case
    case.state = State.resolved.value
    case.resolved_at = c.now
    ops.start_stage(case, Stage.confirm, c.now)
    ops.touch(case, c.now)
    event = ops.record(session, case, kind=EventKind.resolved, at=c.now,
                       actor_id=c.who.person.id, from_state=before, role=case.holder_role,
                       via=via, note=body or None,
                       detail={**detail, "after_photos": len(after_photos)})
    session.flush()
    attach(session, case, event, after_photos, purpose="after", by=c.who.person.id, now=c.now)
    events.publish(session)
    return case


def hand_over(session: Session, case: Case, target: Target, *, now: datetime, stage: Stage,
              kind: EventKind, actor_id: int | None, via: str | None, note: str | None,
              detail: dict[str, object]) -> None:
    """Give the case to a new holder with a fresh deadline; the event names the former holder
    (`from`), so that the notifier tells everyone concerned."""
    from core.cases.away import cover

    before_state, before_role = case.state, case.holder_role
    previous = case.holder_id
    # A holder who is away (/away): their stand-in takes it and the card says whom for.
    target, covering = cover(session, target, now=now)
    case.covering_for_id = covering
    if covering is not None:
        detail = {**detail, "covering_for": covering}
    ops.assign(case, target)
    case.state = State.open.value
    ops.start_stage(case, stage, now)
    ops.touch(case, now)
    ops.record(session, case, kind=kind, at=now, actor_id=actor_id, from_state=before_state,
               role=before_role, via=via, note=note, detail={"from": previous, **detail})


def escalate(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
             reason: str, via: str | None = None) -> Case:
    """解决不了，转上级: hand the case to the next filled tier, with a reason."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="escalate", via=via)
    why = _clean_text(reason, required=True)
    ops.require_state(c.case, {State.open, State.accepted}, "escalate")
    case = c.case
    assert case.holder_role is not None and c.holder_node is not None
    target = next_target(chain_for_node(session, c.home), role=case.holder_role,
                         node=c.holder_node, holder_id=case.holder_id or -1)
    if target is None:
        raise Conflict("case_at_top", case=case_id)
    case.escalations += 1
    hand_over(session, case, target, now=c.now, stage=Stage.reply, kind=EventKind.escalated,
              actor_id=c.who.person.id, via=via, note=why, detail={"auto": False})
    events.publish(session)
    return case


def whistle(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
            category: str | None = None, reason: str | None = None,
            via: str | None = None) -> Case:
    """吹哨报到: hand the case to the department that the category names, under the case's
    town (or district); its liaison must report in within the department deadline."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="whistle", via=via)
    case = c.case
    if not may_whistle(c.who, home=c.home):
        raise refuse(session, case=case, person_id=person_id, action="whistle", at=c.now,
                     via=via, reason="whistle_not_yours")
    ops.require_state(case, {State.open, State.accepted}, "whistle")
    if category:
        cat = category_by_name(session, category)
        case.category_id = cat.id
    elif case.category_id is not None:
        found = session.get(Category, case.category_id)
        assert found is not None
        cat = found
    else:
        raise InvalidInput("whistle_needs_category")
    target = department_for(session, home=c.home, category=cat)
    case.department_node_id = target.node.id
    case.department_reported_at = None
    hand_over(session, case, target, now=c.now, stage=Stage.department,
              kind=EventKind.whistled, actor_id=c.who.person.id, via=via,
              note=_clean_text(reason, required=False) or None,
              detail={"department": target.node.code, "category": cat.name})
    events.publish(session)
    return case


# Defined in their own module for size; part of this one's interface.
from core.cases.disposal import merge, reassign, reject  # noqa: E402

__all__ = ["accept", "ask_more", "escalate", "hand_over", "merge", "reassign", "reject",
           "reply", "resolve", "whistle"]
