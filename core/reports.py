"""Read models for the dashboard: filtered case lists, weekly trends, the 考核 ranking, who held
a case when. Everything is limited to one node's subtree by the materialized path."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.lists import overdue_clause
from core.cases.model import CASES, EVENTS, Stage, State
from core.clock import as_utc
from core.hierarchy.model import Category, Level, Person
from core.hierarchy.queries import NodeRef, subtree
from core.hierarchy.tree import subtree_bounds

C = CASES
CAT: sa.Table = Category.__table__  # type: ignore[attr-defined]
P: sa.Table = Person.__table__  # type: ignore[attr-defined]
UNRESOLVED = [State.open.value, State.accepted.value]
BIG = (Level.district, Level.town)


def in_subtree(node: NodeRef) -> sa.ColumnElement[bool]:
    low, high = subtree_bounds(node.path)
    return sa.and_(C.c.node_path >= low, C.c.node_path < high)


@dataclass(frozen=True)
class CaseFilter:
    """What the cases list is narrowed to; `before` is the keyset cursor (a case id)."""

    node: NodeRef
    state: str | None = None
    category_id: int | None = None
    overdue: bool = False
    start: datetime | None = None
    end: datetime | None = None
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class CaseRow:
    id: int
    state: str
    text: str
    category: str | None
    holder_name: str | None
    holder_role: str | None
    opened_at: datetime
    deadline_at: datetime | None
    overdue: bool
    rating: int | None
    supporters: int = 1  # N 人反映


def case_list(session: Session, *, f: CaseFilter,
              now: datetime) -> tuple[list[CaseRow], int | None]:
    """One page of cases, newest first, and the cursor of the next page (None: last page)."""
    q = (
        sa.select(C.c.id, C.c.state, C.c.text, CAT.c.name.label("category"),
                  P.c.name.label("holder_name"), C.c.holder_role, C.c.opened_at,
                  C.c.deadline_at, C.c.stage, C.c.rating)
        .select_from(C.outerjoin(CAT, CAT.c.id == C.c.category_id)
                     .outerjoin(P, P.c.id == C.c.holder_id))
    )
    narrow = f.overdue or f.state in UNRESOLVED
    if session.get_bind().dialect.name == "sqlite" and f.node.level in BIG and not narrow:
        # A district or town holds a large share of all cases: walking the id index backwards
        # finds a page at once, where the path index would sort its whole subtree first. The
        # no-op concatenation keeps SQLite's planner off the path index (PostgreSQL's planner
        # chooses well from its statistics).
        low, high = subtree_bounds(f.node.path)
        bare = C.c.node_path.concat("")
        q = q.where(bare >= low, bare < high)
    else:
        q = q.where(in_subtree(f.node))
    if f.state:
        q = q.where(C.c.state == f.state)
    if f.category_id is not None:
        q = q.where(C.c.category_id == f.category_id)
    if f.overdue:
        q = q.where(overdue_clause(now))
    if f.start is not None:
        q = q.where(C.c.opened_at >= f.start)
    if f.end is not None:
        q = q.where(C.c.opened_at < f.end)
    if f.before is not None:
        q = q.where(C.c.id < f.before)
    rows = session.execute(q.order_by(C.c.id.desc()).limit(f.limit + 1)).all()
    out = []
    for r in rows[: f.limit]:
        deadline = as_utc(r.deadline_at) if r.deadline_at else None
        out.append(CaseRow(
            id=r.id, state=r.state, text=r.text, category=r.category,
            holder_name=r.holder_name, holder_role=r.holder_role,
            opened_at=as_utc(r.opened_at), deadline_at=deadline,
            overdue=bool(deadline and deadline < now and r.state in UNRESOLVED
                         and r.stage != Stage.confirm.value),
            rating=r.rating,
        ))
    from core.cases.duplicates import supporters

    many = supporters(session, [r.id for r in out])  # one query for the page
    out = [replace(r, supporters=many.get(r.id, 1)) for r in out]
    return out, (out[-1].id if len(rows) > f.limit and out else None)


def categories(session: Session) -> list[tuple[int, str]]:
    return [(r.id, r.name) for r in session.execute(sa.select(CAT.c.id, CAT.c.name)
                                                    .order_by(CAT.c.id))]


@dataclass(frozen=True)
class WeekRow:
    start: datetime
    received: int
    closed: int
    overdue_replies: int


def _week_index(session: Session, start: datetime) -> sa.ColumnElement[int]:
    """Whole weeks between `start` and a case's opened_at, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.floor(sa.extract("epoch", C.c.opened_at - start) / 604800),
                       sa.Integer)
    days = sa.func.julianday(C.c.opened_at) - sa.func.julianday(
        start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    return sa.cast(days / 7, sa.Integer)


def weekly(session: Session, *, node: NodeRef, end: datetime, weeks: int = 12) -> list[WeekRow]:
    """Received and (of those) closed cases per week, oldest week first, ending at `end`."""
    start = end - timedelta(weeks=weeks)
    week = _week_index(session, start).label("week")
    # One grouped pass over the subtree's range: the rows never travel to Python.
    rows = session.execute(
        sa.select(week, sa.func.count(),
                  sa.func.count().filter(C.c.state == State.closed.value),
                  sa.func.count().filter(C.c.first_reply_on_time.is_(False)))
        .where(in_subtree(node), C.c.opened_at >= start, C.c.opened_at < end)
        .group_by(week)
    ).all()
    counts = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows if r[0] is not None}
    return [WeekRow(start + timedelta(weeks=i), *counts.get(i, (0, 0, 0)))
            for i in range(weeks)]


@dataclass(frozen=True)
class RankRow:
    node: NodeRef
    received: int
    closed: int
    merged: int
    on_time: int
    replied: int
    mean_rating: float | None

    @property
    def resolution_rate(self) -> float | None:
        base = self.received - self.merged
        return self.closed / base if base else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.replied if self.replied else None

    @property
    def score(self) -> float:
        """考核 score out of 100: 办结率 50, on-time first replies 30, ratings 20."""
        rating = ((self.mean_rating - 1) / 4) if self.mean_rating is not None else 0.0
        return round(50 * (self.resolution_rate or 0) + 30 * (self.on_time_rate or 0)
                     + 20 * rating, 1)


def ranking(session: Session, *, scope: NodeRef, level: Level, start: datetime, end: datetime,
            min_cases: int) -> tuple[list[RankRow], list[RankRow]]:
    """Nodes of `level` in the scope, best first; and those left out for too few cases."""
    ranked: list[RankRow] = []
    too_few: list[RankRow] = []
    for node in subtree(session, scope, levels=[level]):
        r = session.execute(
            sa.select(sa.func.count(),
                      sa.func.count().filter(C.c.state == State.closed.value),
                      sa.func.count().filter(C.c.state == State.merged.value),
                      sa.func.count().filter(C.c.first_reply_on_time.is_(True)),
                      sa.func.count().filter(C.c.first_reply_on_time.is_not(None)),
                      sa.func.avg(C.c.rating))
            .where(in_subtree(node), C.c.opened_at >= start, C.c.opened_at < end)
        ).one()
        row = RankRow(node, int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]),
                      float(r[5]) if r[5] is not None else None)
        (ranked if row.received >= max(min_cases, 1) else too_few).append(row)
    ranked.sort(key=lambda x: (-x.score, -x.received, x.node.code))
    return ranked, too_few


@dataclass(frozen=True)
class Holding:
    """Who held a case, on which post, from when to when (until None: still holds it)."""

    person_id: int | None
    name: str | None
    role: str | None
    since: datetime
    until: datetime | None


def holdings(session: Session, *, case_id: int) -> list[Holding]:
    """The case's holders in order, from its events (an event's role is the holder's post
    before it, so the event that hands the case on names the post it was held on)."""
    rows = session.execute(
        sa.select(EVENTS.c.at, EVENTS.c.holder_id, EVENTS.c.role, P.c.name)
        .select_from(EVENTS.outerjoin(P, P.c.id == EVENTS.c.holder_id))
        .where(EVENTS.c.case_id == case_id, EVENTS.c.holder_id.is_not(None))
        .order_by(EVENTS.c.id)
    ).all()
    first_role, current = session.execute(
        sa.select(C.c.first_holder_role, C.c.holder_role).where(C.c.id == case_id)).one()
    out: list[Holding] = []
    for r in rows:
        if out and out[-1].person_id == r.holder_id:
            continue
        if out:
            last = out[-1]
            # A take-over records the new holder's post; the first holding's post is on the case.
            role = first_role if len(out) == 1 else r.role
            out[-1] = Holding(last.person_id, last.name, role, last.since, as_utc(r.at))
        out.append(Holding(r.holder_id, r.name, current, as_utc(r.at), None))
    return out


def person_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(sa.select(P.c.id, P.c.name).where(P.c.id.in_(list(ids)))).all())
