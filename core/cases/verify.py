"""核查 before closing: a holder's 已解决 on a case that was escalated, whistled, routed to a
department, or of a category marked `verify`, goes to the holder's superior (the village 书记
for a department's case) for 核查通过 / 退回重办 before the resident is asked to confirm.

While it waits the case stays `accepted` (not yet resolved: no figure counts it as done) with
the `verify` stage, held by the verifier. 核查通过 gives it back to the one who solved it and
asks the resident; 退回重办 gives it back with the reason and a fresh handling deadline; sent
back SEND_BACKS_TO_CLIMB times, it goes up a tier from the one who solved it, by itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import away, events, ops
from core.cases.model import EVENTS, Case, EventKind, Stage, State
from core.cases.permissions import may_act, refuse
from core.cases.routing import Target, next_target
from core.clock import Clock
from core.errors import Conflict, phrase
from core.hierarchy.model import Category, Role
from core.hierarchy.queries import NodeRef, PersonRef, actor, chain_for_node, node_by_id

SEND_BACKS_TO_CLIMB = 3


def needed(session: Session, case: Case) -> bool:
    """Whether a resolution of this case waits for 核查."""
    if case.escalations > 0 or case.department_node_id is not None:
        return True
    cat = session.get(Category, case.category_id) if case.category_id else None
    return bool(cat is not None and cat.verify)


def verifier_for(session: Session, case: Case, home: NodeRef) -> Target | None:
    """The holder's superior; for a department's case the village 书记; None at the top."""
    chain = chain_for_node(session, home)
    if case.holder_role == Role.department.value:
        step = next((s for s in chain.steps if s.role is Role.secretary and s.holders), None)
        if step is not None:
            return Target(step.holders[0], step.role, step.node)
    if case.holder_role is None or case.holder_node_id is None:
        return None
    return next_target(chain, role=case.holder_role, node=node_by_id(session, case.holder_node_id),
                       holder_id=case.holder_id or -1)


def request(session: Session, case: Case, target: Target, *, now: datetime, actor_id: int,
            via: str | None, note: str | None, detail: dict[str, object]) -> int:
    """Hand the resolved case to its verifier; the event's id (after photos hang on it)."""
    resolver: dict[str, object] = {"resolver": case.holder_id,
                                   "resolver_role": case.holder_role,
                                   "resolver_node": case.holder_node_id}
    resolver_role = case.holder_role
    before = case.state
    ops.assign(case, target)
    case.state = State.accepted.value
    if case.accepted_at is None:
        case.accepted_at = now
    ops.start_stage(case, Stage.verify, now)
    ops.touch(case, now)
    event = ops.record(session, case, kind=EventKind.verify_requested, at=now,
                       actor_id=actor_id, from_state=before, role=resolver_role,
                       via=via, note=note, detail={**detail, **resolver})
    session.flush()
    assert event.id is not None
    return event.id


def _last_request(session: Session, case_id: int) -> dict[str, object]:
    detail = session.execute(
        sa.select(EVENTS.c.detail).where(EVENTS.c.case_id == case_id,
                                         EVENTS.c.kind == EventKind.verify_requested.value)
        .order_by(EVENTS.c.id.desc()).limit(1)).scalar_one_or_none()
    if not isinstance(detail, dict):
        raise Conflict("verify_not_waiting", case=case_id)
    return detail


def sent_back_count(session: Session, case_id: int) -> int:
    return int(session.execute(
        sa.select(sa.func.count()).where(EVENTS.c.case_id == case_id,
                                         EVENTS.c.kind == EventKind.sent_back.value)
    ).scalar_one())


def _begin(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
           action: str, via: str | None) -> tuple[Case, NodeRef, datetime]:
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
    if case.stage != Stage.verify.value:
        raise Conflict("verify_not_waiting", case=case_id)
    return case, home, now


def _resolver(session: Session, detail: dict[str, object]) -> Target:
    from core.hierarchy.model import Person

    pid, role, node_id = detail["resolver"], detail["resolver_role"], detail["resolver_node"]
    assert isinstance(pid, int) and isinstance(role, str) and isinstance(node_id, int)
    person = session.get(Person, pid)
    assert person is not None
    return Target(PersonRef(pid, person.name), Role(role), node_by_id(session, node_id))


def approve(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
            via: str | None = None) -> Case:
    """核查通过: back to the one who solved it, resolved; the resident is asked to confirm."""
    case, _, now = _begin(session, clock=clock, case_id=case_id, person_id=person_id,
                          version=version, action="verify_ok", via=via)
    request_detail = _last_request(session, case_id)
    verifier = case.holder_id
    ops.assign(case, _resolver(session, request_detail))
    case.state = State.resolved.value
    case.resolved_at = now
    ops.start_stage(case, Stage.confirm, now)
    ops.touch(case, now)
    ops.record(session, case, kind=EventKind.verified, at=now, actor_id=person_id,
               from_state=State.accepted.value, role=case.holder_role, via=via,
               detail={"verifier": verifier})
    # The resolution the resident hears of (and confirms and rates) is the one now verified.
    ops.record(session, case, kind=EventKind.resolved, at=now, actor_id=case.holder_id,
               from_state=State.accepted.value, role=case.holder_role, via=via,
               detail={"verified_by": person_id})
    events.publish(session)
    return case


def send_back(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
              reason: str, via: str | None = None) -> Case:
    """退回重办: back to the one who solved it with the reason and a fresh handling deadline;
    the third time, up a tier from them instead."""
    from core.cases.actions import hand_over
    from core.cases.services import _clean_text

    why = _clean_text(reason, required=True)
    case, home, now = _begin(session, clock=clock, case_id=case_id, person_id=person_id,
                             version=version, action="send_back", via=via)
    resolver = _resolver(session, _last_request(session, case_id))
    n = sent_back_count(session, case_id) + 1
    verifier = case.holder_id
    ops.assign(case, resolver)
    case.state = State.accepted.value
    covering = away.cover_holder(session, case, now=now)  # the solver is away: the stand-in
    ops.start_stage(case, Stage.handle, now)
    ops.touch(case, now)
    ops.record(session, case, kind=EventKind.sent_back, at=now, actor_id=person_id,
               from_state=State.accepted.value, role=case.holder_role, via=via, note=why,
               detail={"n": n, "from": verifier,
                       **({"covering_for": covering} if covering is not None else {})})
    if n >= SEND_BACKS_TO_CLIMB:
        target = next_target(chain_for_node(session, home), role=resolver.role.value,
                             node=resolver.node, holder_id=resolver.person.id)
        if target is not None:
            case.escalations += 1
            case.covering_for_id = None  # up a tier: nobody covers for anyone any more
            hand_over(session, case, target, now=now, stage=Stage.reply,
                      kind=EventKind.escalated, actor_id=None, via=None, note=why,
                      detail={"auto": True, "stage": Stage.verify.value, "sent_back": n})
    events.publish(session)
    return case


def photos(session: Session, case_id: int) -> tuple[Sequence[str], Sequence[str]]:
    """References of the case's photos before (the report, additions) and after (整改后)."""
    from core.cases.model import ATTACHMENTS

    rows = session.execute(
        sa.select(ATTACHMENTS.c.purpose, ATTACHMENTS.c.stored_ref, ATTACHMENTS.c.platform,
                  ATTACHMENTS.c.file_ref)
        .where(ATTACHMENTS.c.case_id == case_id, ATTACHMENTS.c.kind == "photo")
        .order_by(ATTACHMENTS.c.id)).all()
    before: list[str] = []
    after: list[str] = []
    for purpose, stored, platform, file_ref in rows:
        ref = stored or (f"{platform}:{file_ref}" if platform and file_ref else None)
        if ref:
            (after if purpose == "after" else before).append(ref)
    return before, after
