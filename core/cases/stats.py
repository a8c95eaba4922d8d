"""Figures per node and subtree (办结率, on-time replies, ratings) and the map's warning colour."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.model import CASES, EVENTS, WARNINGS, State
from core.hierarchy.model import Category, Person, Role
from core.hierarchy.queries import NodeRef, children
from core.hierarchy.tree import subtree_bounds
from core.settings import Settings

C = CASES
E = EVENTS
P: sa.Table = Person.__table__  # type: ignore[attr-defined]
W = WARNINGS


@dataclass(frozen=True)
class TierRate:
    """How one tier answered the cases that came to it waiting for a first answer, each judged
    against that tier's own deadline: on time, late (answered after it), or missed (the
    deadline passed and the sweep handed the case up without an answer from this tier)."""

    on_time: int
    total: int
    late: int = 0

    @property
    def missed(self) -> int:
        return self.total - self.on_time - self.late

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


def _seconds_between(session: Session, a: sa.ColumnElement[datetime],
                     b: sa.ColumnElement[datetime]) -> sa.ColumnElement[float]:
    """`b - a` in seconds, on the database. On SQLite, whole microseconds (an integer, exact:
    julianday() would blur them by tens of microseconds); on PostgreSQL, seconds as a float."""
    if session.get_bind().dialect.name == "sqlite":
        def whole(x: sa.ColumnElement[datetime]) -> sa.ColumnElement[int]:
            # SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff" (UTC, no zone) on SQLite.
            return sa.cast(sa.func.strftime("%s", sa.func.substr(x, 1, 19)), sa.Integer)

        def micro(x: sa.ColumnElement[datetime]) -> sa.ColumnElement[int]:
            return sa.cast(sa.func.substr(x, 21, 6), sa.Integer)

        return sa.cast((whole(b) - whole(a)) * 1_000_000 + micro(b) - micro(a), sa.Float)
    return sa.cast(sa.extract("epoch", b - a), sa.Float)


def _seconds_value(session: Session, v: float | None) -> float | None:
    if v is None:
        return None
    return float(v) / 1e6 if session.get_bind().dialect.name == "sqlite" else float(v)


def _medians(session: Session, where: sa.ColumnElement[bool], durations: list[tuple[
        sa.ColumnElement[float], sa.ColumnElement[bool], int]]) -> list[float | None]:
    """The median of each duration over the rows matching `where` and its own condition, whose
    count is known: percentile_cont on PostgreSQL, one ORDER BY … LIMIT/OFFSET on SQLite."""
    if session.get_bind().dialect.name != "sqlite":
        row = session.execute(
            sa.select(*[sa.func.percentile_cont(0.5).within_group(
                sa.case((cond, dur))) for dur, cond, _ in durations]).where(where)
        ).one()
        return [_seconds_value(session, v) for v in row]
    out: list[float | None] = []
    for dur, cond, n in durations:
        if not n:
            out.append(None)
            continue
        middle = session.execute(
            sa.select(dur).where(where, cond).order_by(dur)
            .offset((n - 1) // 2).limit(1 if n % 2 else 2)
        ).scalars().all()
        out.append(statistics.median(float(v) / 1e6 for v in middle))
    return out


def _leader_ratings(session: Session, received: sa.ColumnElement[bool],
                    leaders: int | None) -> list[LeaderRating]:
    mean = sa.func.avg(C.c.rating)
    q = (
        sa.select(P.c.id, P.c.name, sa.func.count().label("n"), mean.label("mean"))
        # A rating is the resident's word on the fix: it goes to whoever resolved the case
        # (resolving takes the case over, so that is the holder of a closed case).
        .join(P, P.c.id == C.c.holder_id)
        .where(received, C.c.rating.is_not(None),
               C.c.holder_role == Role.neighbor_leader.value)
        .group_by(P.c.id, P.c.name)
    )

    def rows(query: sa.Select[tuple[int, str, int, float]]) -> list[LeaderRating]:
        return [LeaderRating(r.id, r.name, int(r.n), float(r.mean))
                for r in session.execute(query)]

    if leaders is None:
        return rows(q.order_by(P.c.id))
    # One pass: rank every 邻长 both ways, keep the N best and the N worst.
    ranked = q.add_columns(
        sa.func.row_number().over(order_by=(mean.desc(), sa.func.count().desc(), P.c.id))
        .label("best"),
        sa.func.row_number().over(order_by=(mean.asc(), sa.func.count().desc(), P.c.id))
        .label("worst"),
    ).subquery()
    return rows(
        sa.select(ranked.c.id, ranked.c.name, ranked.c.n, ranked.c.mean)
        .where(sa.or_(ranked.c.best <= leaders, ranked.c.worst <= leaders))
        .order_by(ranked.c.best)
    )


def figures(session: Session, *, node: NodeRef, start: datetime, end: datetime,
            leaders: int | None = None) -> Figures:
    """Received, closed, 办结率, on-time first replies per tier, medians, escalations per tier
    and ratings, for cases opened in [start, end) at or below `node`. All aggregated on the
    database over the (node_path, opened_at) index range. `leaders`: keep only the N best and
    the N worst rated 邻长 (best first); None keeps all of them, by person id."""
    received = sa.and_(_in_subtree(node), C.c.opened_at >= start, C.c.opened_at < end)
    # On SQLite, keep the planner on the (node_path, opened_at) range: through the state index
    # it would visit every closed case of the subtree, whatever the period.
    state = (C.c.state.concat("") if session.get_bind().dialect.name == "sqlite"
             else C.c.state)
    closed_q = sa.and_(state == State.closed.value, C.c.closed_at.is_not(None))

    def n_if(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    per_role = session.execute(
        sa.select(C.c.first_reply_role, sa.func.count(),
                  n_if(C.c.state == State.closed.value),
                  n_if(C.c.state == State.rejected.value),
                  n_if(C.c.state == State.merged.value),
                  sa.func.count(C.c.first_reply_at),
                  n_if(sa.and_(C.c.first_reply_at.is_not(None),
                               C.c.first_reply_on_time.is_(True))),
                  n_if(closed_q),
                  sa.func.sum(C.c.rating), sa.func.count(C.c.rating))
        .where(received)
        .group_by(C.c.first_reply_role)
    ).all()
    total = [0] * 9
    tiers: dict[str, list[int]] = {}
    for role, *counts in per_role:
        for i, v in enumerate(counts):
            total[i] += int(v or 0)
        replied, on_time = int(counts[4] or 0), int(counts[5] or 0)
        if role and replied:
            tiers[role] = [on_time, replied, replied - on_time]
    received_n, closed_n, rejected_n, merged_n, replied_n, _, to_close_n, rating_sum, rated_n = \
        total
    # A tier that let its reply deadline pass (the sweep moved the case on) missed it.
    timeouts = session.execute(
        sa.select(E.c.role, sa.func.count())
        .join(C, C.c.id == E.c.case_id)
        .where(received, E.c.kind == "escalated", E.c.actor_id.is_(None),
               E.c.from_state == State.open.value)
        .group_by(E.c.role)
    ).all()
    for role, n in timeouts:
        if role:
            tiers.setdefault(role, [0, 0, 0])[1] += int(n)
    escalations = {
        role: int(n) for role, n in session.execute(
            sa.select(E.c.role, sa.func.count())
            .join(C, C.c.id == E.c.case_id)
            .where(_in_subtree(node), E.c.kind == "escalated", E.c.at >= start, E.c.at < end)
            .group_by(E.c.role)
        ) if role
    }
    median_first_reply, median_close = _medians(session, received, [
        (_seconds_between(session, C.c.opened_at, C.c.first_reply_at),
         C.c.first_reply_at.is_not(None), replied_n),
        (_seconds_between(session, C.c.opened_at, C.c.closed_at), closed_q, to_close_n),
    ])
    return Figures(
        node_id=node.id, start=start, end=end, received=received_n,
        closed=closed_n, rejected=rejected_n, merged=merged_n,
        on_time_first_reply={k: TierRate(v[0], v[1], v[2]) for k, v in sorted(tiers.items())},
        median_first_reply_s=median_first_reply,
        median_close_s=median_close,
        escalations=dict(sorted(escalations.items())),
        mean_rating=rating_sum / rated_n if rated_n else None,
        rating_by_neighbor_leader=_leader_ratings(session, received, leaders),
    )


@dataclass(frozen=True)
class CategoryCount:
    name: str | None  # None: not categorised
    received: int
    closed: int


def by_category(session: Session, *, node: NodeRef, start: datetime, end: datetime
                ) -> list[CategoryCount]:
    """Cases opened in [start, end) at or below `node` per category, most received first."""
    cat: sa.Table = Category.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(cat.c.name, sa.func.count(),
                  sa.func.count().filter(C.c.state == State.closed.value))
        .select_from(C.outerjoin(cat, cat.c.id == C.c.category_id))
        .where(_in_subtree(node), C.c.opened_at >= start, C.c.opened_at < end)
        .group_by(cat.c.name)
    ).all()
    return sort_categories([CategoryCount(r[0], int(r[1]), int(r[2])) for r in rows])


def sort_categories(rows: list[CategoryCount]) -> list[CategoryCount]:
    """Most received first; 未分类 after named categories with as many."""
    return sorted(rows, key=lambda x: (-x.received, x.name is None, x.name or ""))


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


def node_status(session: Session, *, node: NodeRef, now: datetime, thresholds: Thresholds,
                changed: list[tuple[int, WarningLevel]] | None = None) -> NodeStatus:
    """The node's unresolved and overdue counts and its colour, remembered for hysteresis
    (or, given `changed`, listed there for remember_levels, so a read can stay a read)."""
    from core.cases.lists import overdue_clause

    unresolved_q = sa.and_(_in_subtree(node),
                           C.c.state.in_([State.open.value, State.accepted.value]))
    unresolved, overdue = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(overdue_clause(now)))
        .where(unresolved_q)
    ).one()
    stored = session.execute(sa.select(W.c.level).where(W.c.node_id == node.id)).scalar()
    previous = WarningLevel[stored] if stored else None
    level = warning_level(unresolved=int(unresolved), overdue=int(overdue),
                          thresholds=thresholds, previous=previous)
    if level is not previous:
        if changed is None:
            _remember(session, node.id, level, now)
        else:
            changed.append((node.id, level))
    return NodeStatus(node, int(unresolved), int(overdue), level, previous)


def remember_levels(session: Session, *, changed: list[tuple[int, WarningLevel]],
                    now: datetime) -> None:
    """Store colours that node_status found changed, for the next view's hysteresis."""
    for node_id, level in changed:
        _remember(session, node_id, level, now)


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

