"""Work lists for leaders (cases below a node, overdue ones) and the category of a case."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import events, ops
from core.cases.model import Case, EventKind, State
from core.cases.permissions import refuse
from core.clock import Clock, as_utc
from core.errors import InvalidTransition
from core.hierarchy.queries import NodeRef, actor, node_by_id
from core.hierarchy.tree import subtree_bounds

CASES = Case.__table__  # type: ignore[attr-defined]


def overdue_clause(now: datetime) -> sa.ColumnElement[bool]:
    """An unfinished case that missed a deadline (超期), or is past its running one now.

    Only a resolved case waits in the confirm stage (whose deadline is the resident's, not
    the leaders'), so for open and accepted cases the deadline alone decides; every column
    read here is in the (state, node_path, deadline_at, missed_deadlines) index, so counting
    never visits the table."""
    return sa.and_(
        CASES.c.state.in_([State.open.value, State.accepted.value]),
        sa.or_(CASES.c.missed_deadlines > 0, CASES.c.deadline_at < now),
    )


def open_cases_below(session: Session, *, node: NodeRef, now: datetime,
                     overdue_only: bool = False, limit: int = 30) -> list[Case]:
    """Unfinished cases from homes in the node's subtree, most urgent first."""
    low, high = subtree_bounds(node.path)
    q = (
        sa.select(Case)
        .where(CASES.c.node_path >= low, CASES.c.node_path < high)
        .where(CASES.c.state.in_([State.open.value, State.accepted.value]))
    )
    if overdue_only:
        q = q.where(overdue_clause(now))
    q = q.order_by(CASES.c.deadline_at, CASES.c.id).limit(limit)
    return list(session.execute(q).scalars())


def count_open_below(session: Session, *, node: NodeRef, now: datetime) -> tuple[int, int]:
    """(unfinished, overdue) case counts in the node's subtree."""
    low, high = subtree_bounds(node.path)
    base = sa.and_(CASES.c.node_path >= low, CASES.c.node_path < high,
                   CASES.c.state.in_([State.open.value, State.accepted.value]))
    overdue = sa.func.sum(sa.case((overdue_clause(now), 1), else_=0))
    row = session.execute(sa.select(sa.func.count(), overdue).where(base)).one()
    return int(row[0]), int(row[1] or 0)


def set_category(session: Session, *, clock: Clock, case_id: int, person_id: int,
                 category: str, via: str | None = None) -> Case:
    """The resident, the holder, anyone above or an admin names what kind of problem it is."""
    from core.cases.routing import category_by_name

    now = clock.now()
    case = ops.load(session, case_id)
    cat = category_by_name(session, category)
    if State(case.state) not in (State.open, State.accepted, State.resolved):
        raise InvalidTransition("category_case_ended", case=case_id)
    allowed = person_id in ops.followers(session, case_id) or person_id == case.holder_id
    if not allowed:
        who = actor(session, person_id)
        home = node_by_id(session, case.home_node_id)
        allowed = who.leads(home) or who.is_admin_of(home)
    if not allowed:
        raise refuse(session, case=case, person_id=person_id, action="category", at=now,
                     via=via, reason="category_not_yours", params={"case": case_id})
    if case.category_id == cat.id:
        return case
    case.category_id = cat.id
    case.updated_at = now
    before = case.deadline_at
    ops.apply_limits(case, reply=cat.answer_limit, handle=cat.handle_limit)
    moved = case.deadline_at if case.deadline_at is not None and case.deadline_at != before \
        else None
    ops.record(session, case, kind=EventKind.categorized, at=now, actor_id=person_id, via=via,
               note=cat.name,
               detail={"deadline_at": as_utc(moved).isoformat()} if moved else None)
    from core.cases.route_rules import reroute

    reroute(session, case, cat, at=now, actor_id=person_id, via=via)
    events.publish(session)
    return case
