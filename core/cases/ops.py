"""The primitives every case change is built from: loading under lock, versions, events,
holders, running deadlines and who follows a case (who hears of it is bot/notify's rule)."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import events
from core.cases.model import (
    CASES,
    EVENTS,
    FOLLOWERS,
    Case,
    CaseEvent,
    CaseFollower,
    EventKind,
    Stage,
    State,
)
from core.cases.policy import CasePolicy, next_due, stage_deadline
from core.cases.routing import Target
from core.clock import as_utc
from core.db import memo
from core.errors import InvalidTransition, NotFound, Phrase, StaleAction, phrase
from core.hierarchy.model import ChatBinding, Level, Node, Person
from core.hierarchy.queries import NodeRef
from core.hierarchy.tree import TIER_FOR_LEVEL

PEOPLE: sa.Table = Person.__table__  # type: ignore[attr-defined]
BINDINGS: sa.Table = ChatBinding.__table__  # type: ignore[attr-defined]
NODES: sa.Table = Node.__table__  # type: ignore[attr-defined]

EVENT_VERB_ZH: dict[str, str] = {
    EventKind.opened: "受理登记", EventKind.added: "补充了情况", EventKind.accepted: "受理",
    EventKind.reported_in: "报到受理", EventKind.replied: "答复了居民",
    EventKind.asked_more: "请居民补充", EventKind.resolved: "标记为已解决",
    EventKind.escalated: "转交上级", EventKind.whistled: "吹哨转交职能部门",
    EventKind.merged: "合并到其他工单", EventKind.merged_in: "并入了重复工单",
    EventKind.rejected: "驳回", EventKind.reassigned: "改派", EventKind.confirmed: "确认并评价",
    EventKind.reopened: "反馈未解决", EventKind.auto_closed: "超期自动办结",
    EventKind.overdue: "超时", EventKind.nagged: "督办",
    EventKind.categorized: "选择类别", EventKind.purged: "匿名化",
    EventKind.routed: "按直派规则分派", EventKind.rerouted: "按直派规则改派",
    EventKind.verify_requested: "已解决，报上级核查", EventKind.verified: "核查通过",
    EventKind.sent_back: "退回重办",
}


def load(session: Session, case_id: int, *, lock: bool = True) -> Case:
    """The case, locked for this transaction (FOR UPDATE on PostgreSQL) and freshly read."""
    case = session.execute(_load_stmt(lock), {"id": case_id}).scalar_one_or_none()
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    return case


@functools.cache
def _load_stmt(lock: bool) -> Any:
    # Built once (core/db.py, "Statements built once"): most actions load their case.
    q = sa.select(Case).where(CASES.c.id == sa.bindparam("id")).execution_options(
        populate_existing=True)
    return q.with_for_update() if lock else q


def policy_of(case: Case) -> CasePolicy:
    return CasePolicy.from_json(case.policy)


def check_version(session: Session, case: Case, version: int, *, tz: Any = None) -> None:
    """Refuse a press of a button that was made for an older state of the case."""
    if version == case.version:
        return
    last = session.execute(
        sa.select(EVENTS.c.kind, EVENTS.c.at, PEOPLE.c.name)
        .outerjoin(PEOPLE, PEOPLE.c.id == EVENTS.c.actor_id)
        .where(EVENTS.c.case_id == case.id)
        .where(EVENTS.c.kind.not_in([EventKind.nagged.value, EventKind.refused.value]))
        .order_by(EVENTS.c.id.desc())
        .limit(1)
    ).first()
    what: Phrase | str = ""
    if last is not None:
        at = as_utc(last.at).astimezone(tz or policy_of(case).tz)
        when = phrase("local_time", month=at.month, day=at.day, time=f"{at:%H:%M}")
        did = phrase(f"event.{last.kind}") if last.kind in EVENT_VERB_ZH else last.kind
        what = phrase("case_changed_by", when=when, who=last.name or phrase("system"), did=did)
    raise StaleAction("case_changed", case=case.id, what=what,
                      state=phrase(f"state.{State(case.state).value}"))


def require_state(case: Case, allowed: set[State], doing: str) -> None:
    """Refuse an action (`doing`, an action key such as "accept") the case's state forbids."""
    if State(case.state) not in allowed:
        raise InvalidTransition("case_state_forbids", case=case.id,
                                state=phrase(f"state.{State(case.state).value}"),
                                doing=phrase(f"verb.{doing}"))


def touch(case: Case, now: datetime) -> None:
    """Every change moves the version on, so buttons made before it go stale."""
    case.version += 1
    case.updated_at = now


def record(session: Session, case: Case, *, kind: EventKind, at: datetime,
           actor_id: int | None = None, from_state: str | None = None,
           role: str | None = None, via: str | None = None, note: str | None = None,
           detail: dict[str, Any] | None = None) -> CaseEvent:
    assert case.id is not None
    event = CaseEvent(
        case_id=case.id, at=at, actor_id=actor_id, kind=kind.value,
        from_state=from_state or case.state, to_state=case.state, role=role,
        holder_id=case.holder_id, via=via, note=note, detail=detail or {},
    )
    session.add(event)
    events.remember(session, event)
    return event


def assign(case: Case, target: Target) -> None:
    case.holder_id = target.person.id
    case.holder_role = target.role.value
    case.holder_node_id = target.node.id


def start_stage(case: Case, stage: Stage, now: datetime, *, keep_renewals: bool = False) -> None:
    """Start a fresh deadline for `stage` from `now` (never from an old deadline: no cascade)."""
    policy = policy_of(case)
    deadline = stage_deadline(policy, stage, now)
    case.stage = stage.value
    case.stage_started_at = now
    case.deadline_at = deadline
    case.nags_sent = 0
    if not keep_renewals:
        case.stage_renewals = 0
    case.next_due_at = next_due(policy, stage, start=now, deadline=deadline, nags_sent=0)


def apply_limits(case: Case, *, reply: str | None, handle: str | None) -> None:
    """Give the case a category's limits; a running reply or handling deadline is counted
    again from when its stage started (nags already sent stay sent)."""
    policy = policy_of(case).with_limits(reply=reply, handle=handle)
    case.policy = policy.to_json()
    if case.stage not in (Stage.reply.value, Stage.handle.value) or case.stage_started_at is None:
        return
    stage, start = Stage(case.stage), as_utc(case.stage_started_at)
    case.deadline_at = stage_deadline(policy, stage, start)
    case.next_due_at = next_due(policy, stage, start=start, deadline=case.deadline_at,
                                nags_sent=case.nags_sent)


def stop_clock(case: Case) -> None:
    case.stage = None
    case.stage_started_at = None
    case.deadline_at = None
    case.next_due_at = None
    case.nags_sent = 0


def followers(session: Session, case_id: int) -> list[int]:
    """Who follows a case (read once per transaction; `follow` keeps it current)."""
    known = _known(session)
    if case_id not in known:
        known[case_id] = set(session.execute(_followers_stmt(), {"id": case_id}).scalars())
    return sorted(known[case_id])


def _known(session: Session) -> dict[int, set[int]]:
    """Case → its followers, as this transaction knows them (core.db.memo: once committed or
    undone, a savepoint too, others may follow the case, so they are read again)."""
    return memo(session, "case_followers")


def _new(session: Session) -> dict[int, bool]:
    """The cases this transaction opened."""
    return memo(session, "new_cases")


def known_followers(session: Session, case_ids: list[int]) -> dict[int, int]:
    """How many follow each of these cases, for those this transaction knows (no read)."""
    known = _known(session)
    return {cid: len(known[cid]) for cid in case_ids if cid in known}


def opened_here(session: Session, case_id: int) -> None:
    """A case this transaction created: nobody else can follow it yet, so its followers are
    the ones `follow` adds here (no read of them)."""
    _known(session)[case_id] = set()
    _new(session)[case_id] = True


@functools.cache
def _followers_stmt() -> Any:
    return sa.select(FOLLOWERS.c.person_id).where(FOLLOWERS.c.case_id == sa.bindparam("id"))


def follow(session: Session, case_id: int, person_ids: list[int]) -> None:
    followers(session, case_id)
    have = _known(session)[case_id]
    for pid in person_ids:
        if pid not in have:
            session.add(CaseFollower(case_id=case_id, person_id=pid))
            have.add(pid)


def mirror_bindings(session: Session, node: NodeRef,
                    cache: dict[int, list[int]] | None = None) -> list[int]:
    """Chat groups where the holder's superiors watch: the chat bound to the node above the
    holder's, for the pair of tiers it mirrors (组长+邻长 for a 邻长's cases, and so on)."""
    if node.parent_id is None:
        return []
    if cache is not None and node.parent_id in cache:
        return cache[node.parent_id]
    # One read: the parent's bindings with its level, the level naming the pair of tiers.
    rows = session.execute(_bindings_stmt(), {"node": node.parent_id}).all()
    ids = [r.id for r in rows if (t := TIER_FOR_LEVEL.get(Level(r.level))) is not None
           and r.tier == t.value]
    if cache is not None:
        cache[node.parent_id] = ids
    return ids



def followers_of(session: Session, case_ids: list[int]) -> dict[int, list[int]]:
    """The followers of many cases in one query (none for the cases this transaction has
    followed or opened: it knows theirs)."""
    known = _known(session)
    out: dict[int, list[int]] = {cid: sorted(known[cid]) if cid in known else []
                                 for cid in case_ids}
    rest = [cid for cid in case_ids if cid not in known]
    if not rest:
        return out
    for case_id, person_id in session.execute(_followers_of_stmt(), {"ids": rest}):
        out[case_id].append(person_id)
    return out


@functools.cache
def _followers_of_stmt() -> Any:
    return (sa.select(FOLLOWERS.c.case_id, FOLLOWERS.c.person_id)
            .where(FOLLOWERS.c.case_id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(FOLLOWERS.c.case_id, FOLLOWERS.c.person_id))


def is_new_here(session: Session, case_id: int) -> bool:
    """Whether this transaction opened the case (nothing was ever sent about it)."""
    return case_id in _new(session)





def late_by(case: Case, now: datetime) -> timedelta | None:
    """How late a deadline is being handled, when past the grace of a normal sweep."""
    if case.deadline_at is None:
        return None
    late = now - as_utc(case.deadline_at)
    return late if late.total_seconds() > policy_of(case).late_grace_s else None


@functools.cache
def _bindings_stmt() -> Any:
    return (sa.select(BINDINGS.c.id, BINDINGS.c.tier, NODES.c.level)
            .join(NODES, NODES.c.id == BINDINGS.c.node_id)
            .where(BINDINGS.c.node_id == sa.bindparam("node"))
            .order_by(BINDINGS.c.id))
