"""Figures per node and subtree (办结率, on-time replies, ratings) and the map's warning colour."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.model import CASES, EVENTS, WARNINGS, State
from core.clock import as_utc
from core.hierarchy.model import Person, Role
from core.hierarchy.queries import NodeRef, children
from core.hierarchy.tree import subtree_bounds
from core.settings import Settings

C = CASES
E = EVENTS
P: sa.Table = Person.__table__  # type: ignore[attr-defined]
W = WARNINGS


@dataclass(frozen=True)
class TierRate:
    on_time: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.on_time / self.total if self.total else None


@dataclass(frozen=True)
class LeaderRating:
    person_id: int
    name: str
    rated: int
    mean: float


@dataclass(frozen=True)
class Figures:
    """What a node's subtree did with the cases received in [start, end)."""

    node_id: int
    start: datetime
    end: datetime
    received: int
    closed: int
    rejected: int
    merged: int
    on_time_first_reply: dict[str, TierRate]
    median_first_reply_s: float | None
    median_close_s: float | None
    escalations: dict[str, int]
    mean_rating: float | None
    rating_by_neighbor_leader: list[LeaderRating]

    @property
    def resolution_rate(self) -> float | None:
        """办结率: closed over received, duplicates folded into another case not counted."""
        base = self.received - self.merged
        return self.closed / base if base else None


def _in_subtree(node: NodeRef) -> sa.ColumnElement[bool]:
    low, high = subtree_bounds(node.path)
    return sa.and_(C.c.node_path >= low, C.c.node_path < high)


def figures(session: Session, *, node: NodeRef, start: datetime, end: datetime) -> Figures:
    """Received, closed, 办结率, on-time first replies per tier, medians, escalations per tier
    and ratings, for cases opened in [start, end) at or below `node`."""
    received = sa.and_(_in_subtree(node), C.c.opened_at >= start, C.c.opened_at < end)
    rows = session.execute(
        sa.select(C.c.state, C.c.opened_at, C.c.first_reply_at, C.c.closed_at,
                  C.c.close_reason, C.c.first_reply_role, C.c.first_reply_on_time)
        .where(received)
    ).all()
    by_state: dict[str, int] = {}
    first_reply: list[float] = []
    to_close: list[float] = []
    tiers: dict[str, list[int]] = {}
    for r in rows:
        by_state[r.state] = by_state.get(r.state, 0) + 1
        if r.first_reply_at is not None:
            first_reply.append((as_utc(r.first_reply_at) - as_utc(r.opened_at)).total_seconds())
            if r.first_reply_role:
                t = tiers.setdefault(r.first_reply_role, [0, 0])
                t[0] += 1 if r.first_reply_on_time else 0
                t[1] += 1
        if r.state == State.closed.value and r.closed_at is not None:
            to_close.append((as_utc(r.closed_at) - as_utc(r.opened_at)).total_seconds())
    # A tier that let its reply deadline pass (the sweep moved the case on) answered late.
    timeouts = session.execute(
        sa.select(E.c.role, sa.func.count())
        .join(C, C.c.id == E.c.case_id)
        .where(received, E.c.kind == "escalated", E.c.actor_id.is_(None),
               E.c.from_state == State.open.value)
        .group_by(E.c.role)
    ).all()
    for role, n in timeouts:
        if role:
            tiers.setdefault(role, [0, 0])[1] += int(n)
    escalations = {
        role: int(n) for role, n in session.execute(
            sa.select(E.c.role, sa.func.count())
            .join(C, C.c.id == E.c.case_id)
            .where(_in_subtree(node), E.c.kind == "escalated", E.c.at >= start, E.c.at < end)
            .group_by(E.c.role)
        ) if role
    }
    mean_rating = session.execute(
        sa.select(sa.func.avg(C.c.rating)).where(received, C.c.rating.is_not(None))
    ).scalar_one()
    leaders = [
        LeaderRating(r.id, r.name, int(r.n), float(r.mean)) for r in session.execute(
            sa.select(P.c.id, P.c.name, sa.func.count().label("n"),
                      sa.func.avg(C.c.rating).label("mean"))
            .join(P, P.c.id == C.c.first_holder_id)
            .where(received, C.c.rating.is_not(None),
                   C.c.first_holder_role == Role.neighbor_leader.value)
            .group_by(P.c.id, P.c.name)
            .order_by(P.c.id)
        )
    ]
    return Figures(
        node_id=node.id, start=start, end=end, received=len(rows),
        closed=by_state.get(State.closed.value, 0),
        rejected=by_state.get(State.rejected.value, 0),
        merged=by_state.get(State.merged.value, 0),
        on_time_first_reply={k: TierRate(v[0], v[1]) for k, v in sorted(tiers.items())},
        median_first_reply_s=statistics.median(first_reply) if first_reply else None,
        median_close_s=statistics.median(to_close) if to_close else None,
        escalations=dict(sorted(escalations.items())),
        mean_rating=float(mean_rating) if mean_rating is not None else None,
        rating_by_neighbor_leader=leaders,
    )


class WarningLevel(IntEnum):
    green = 0
    yellow = 1
    orange = 2
    red = 3


@dataclass(frozen=True)
class Thresholds:
    """Unresolved and overdue counts at which a node turns yellow, orange, red."""

    unresolved: tuple[int, int, int] = (5, 15, 30)
    overdue: tuple[int, int, int] = (1, 3, 5)
    hysteresis: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            unresolved=(settings.warn_yellow_open, settings.warn_orange_open,
                        settings.warn_red_open),
            overdue=(settings.warn_yellow_overdue, settings.warn_orange_overdue,
                     settings.warn_red_overdue),
            hysteresis=settings.warn_hysteresis,
        )


def _reaches(level: WarningLevel, unresolved: float, overdue: float, t: Thresholds,
             factor: float = 1.0) -> bool:
    if level is WarningLevel.green:
        return True
    i = level.value - 1
    return unresolved >= t.unresolved[i] * factor or overdue >= t.overdue[i] * factor


def warning_level(*, unresolved: int, overdue: int, thresholds: Thresholds,
                  previous: WarningLevel | None = None) -> WarningLevel:
    """The colour for these counts: up as soon as a threshold is reached, down only once the
    counts fall below the threshold less the hysteresis, so the map does not flicker."""
    raw = max(lv for lv in WarningLevel if _reaches(lv, unresolved, overdue, thresholds))
    if previous is None or raw >= previous:
        return raw
    hold = 1.0 - thresholds.hysteresis
    return max(lv for lv in WarningLevel
               if lv <= previous and _reaches(lv, unresolved, overdue, thresholds, hold))


@dataclass(frozen=True)
class NodeStatus:
    node: NodeRef
    unresolved: int
    overdue: int
    level: WarningLevel
    previous: WarningLevel | None


def node_status(session: Session, *, node: NodeRef, now: datetime,
                thresholds: Thresholds) -> NodeStatus:
    """The node's unresolved and overdue counts and its colour, remembered for hysteresis."""
    unresolved_q = sa.and_(_in_subtree(node),
                           C.c.state.in_([State.open.value, State.accepted.value]))
    unresolved, overdue = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(C.c.deadline_at < now))
        .where(unresolved_q)
    ).one()
    stored = session.execute(sa.select(W.c.level).where(W.c.node_id == node.id)).scalar()
    previous = WarningLevel[stored] if stored else None
    level = warning_level(unresolved=int(unresolved), overdue=int(overdue),
                          thresholds=thresholds, previous=previous)
    if level is not previous:
        _remember(session, node.id, level, now)
    return NodeStatus(node, int(unresolved), int(overdue), level, previous)


def _remember(session: Session, node_id: int, level: WarningLevel, now: datetime) -> None:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(W).values(node_id=node_id, level=level.name, changed_at=now)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[W.c.node_id], set_={"level": level.name, "changed_at": now}
    ))


def map_status(session: Session, *, node: NodeRef, now: datetime,
               thresholds: Thresholds) -> list[NodeStatus]:
    """The colour of each child of a node: the dashboard's map one level down."""
    return [node_status(session, node=child, now=now, thresholds=thresholds)
            for child in children(session, node)]
