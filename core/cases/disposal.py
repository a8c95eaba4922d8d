"""Leader actions that end or move a case rather than answer it: merge a duplicate, reject,
reassign (core.cases.actions re-exports them, so callers see one set of actions)."""

from __future__ import annotations

from sqlmodel import Session

from core.cases import events, ops
from core.cases.actions import _begin, _Ctx, hand_over
from core.cases.model import ACTIVE_STATES, Case, EventKind, Stage, State
from core.cases.permissions import may_reach, refuse
from core.cases.routing import Target
from core.cases.services import _clean_text
from core.clock import Clock
from core.errors import InvalidInput
from core.hierarchy.model import Role
from core.hierarchy.queries import Actor, PersonRef, actor, node_by_id
from core.hierarchy.tree import LEADER_ROLES


def merge(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
          into_case_id: int, via: str | None = None) -> Case:
    """Fold a duplicate into another case; the duplicate's residents follow the other one."""
    if into_case_id == case_id:
        raise InvalidInput("merge_into_itself")
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="merge", via=via)
    ops.require_state(c.case, set(ACTIVE_STATES), "merge")
    target = ops.load(session, into_case_id)
    ops.require_state(target, set(ACTIVE_STATES), "merge_target")
    t_home = node_by_id(session, target.home_node_id)
    t_node = node_by_id(session, target.holder_node_id) if target.holder_node_id else None
    if not may_reach(c.who, holder_id=target.holder_id, holder_role=target.holder_role,
                     holder_node=t_node, home=t_home):
        raise refuse(session, case=c.case, person_id=person_id, action="merge", at=c.now,
                     via=via, reason="merge_target_outside", params={"case": into_case_id})
    case = c.case
    before = case.state
    case.state = State.merged.value
    case.merged_into_id = into_case_id
    case.close_reason = "merged"
    ops.stop_clock(case)
    ops.touch(case, c.now)
    ops.record(session, case, kind=EventKind.merged, at=c.now, actor_id=c.who.person.id,
               from_state=before, role=case.holder_role, via=via,
               detail={"into": into_case_id})
    newcomers = [p for p in ops.followers(session, case_id)
                 if p not in ops.followers(session, into_case_id)]
    ops.follow(session, into_case_id, newcomers)
    target.updated_at = c.now
    ops.record(session, target, kind=EventKind.merged_in, at=c.now, actor_id=c.who.person.id,
               role=target.holder_role, via=via, detail={"from": case_id})
    events.publish(session)
    return case


def reject(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
           reason: str, via: str | None = None) -> Case:
    """Turn the case down with a reason the residents see (spam, not in scope)."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="reject", via=via)
    why = _clean_text(reason, required=True)
    ops.require_state(c.case, set(ACTIVE_STATES), "reject")
    case = c.case
    before = case.state
    case.state = State.rejected.value
    case.reject_reason = why
    case.close_reason = "rejected"
    case.closed_at = c.now
    ops.stop_clock(case)
    ops.touch(case, c.now)
    ops.record(session, case, kind=EventKind.rejected, at=c.now, actor_id=c.who.person.id,
               from_state=before, role=case.holder_role, via=via, note=why)
    events.publish(session)
    return case


def reassign(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
             to_person_id: int, reason: str, via: str | None = None) -> Case:
    """An admin gives the case to somebody else in their subtree, who must answer afresh."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="reassign", via=via)
    case = c.case
    if not c.who.is_admin_of(c.home):
        raise refuse(session, case=case, person_id=person_id, action="reassign", at=c.now,
                     via=via, reason="reassign_admins_only")
    ops.require_state(case, {State.open, State.accepted}, "reassign")
    why = _clean_text(reason, required=True)
    if to_person_id == case.holder_id:
        raise InvalidInput("already_holder")
    target = _post_for(actor(session, to_person_id), c)
    hand_over(session, case, target, now=c.now, stage=Stage.reply, kind=EventKind.reassigned,
              actor_id=c.who.person.id, via=via, note=why, detail={})
    events.publish(session)
    return case


def _post_for(person: Actor, c: _Ctx) -> Target:
    """The post a reassigned case is held on: the person's post in the case's chain, else a
    department or leader post inside the admin's subtree."""
    scopes = [n for n in c.who.admin_scopes() if n.contains(c.home)]
    candidates = [
        (r, n) for r, n in person.posts
        if (r in LEADER_ROLES or r in (Role.department, Role.admin))
        and any(s.contains(n) for s in scopes)
    ]
    if not candidates:
        raise InvalidInput("no_post_here", name=person.person.name)
    on_path = [(r, n) for r, n in candidates if n.contains(c.home)]
    r, n = max(on_path or candidates, key=lambda p: len(p[1].path))
    return Target(PersonRef(person.person.id, person.person.name), r, n)
