"""Figures, weekly trends and the 考核 ranking read from the rollups, for towns and districts.

A village or anything below it is small enough to count live and exactly (core.cases.stats,
core.reports); a town or a district over whole local days reads the rollups, which are as
fresh as the last refresh (`as_of`) and give medians to within 2 %. The `*_for` functions
choose, so every caller gets the same answer for the same question.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from core import reports
from core.cases import stats
from core.cases.model import CASES, State
from core.cases.stats import Figures, LeaderRating, TierRate
from core.hierarchy.model import Category, Level, Person
from core.hierarchy.queries import NodeRef, subtree
from core.hierarchy.tree import path_ids, subtree_bounds
from core.reports import RankRow, WeekRow
from core.rollup.model import CATEGORY, DAY, HIST, RATING, TIER
from core.rollup.refresh import bucket_value, day_start, local_day, refreshed_at

C = CASES
CAT: sa.Table = Category.__table__  # type: ignore[attr-defined]
P: sa.Table = Person.__table__  # type: ignore[attr-defined]
BIG = (Level.district, Level.town)


def whole_days(start: datetime, end: datetime, tz: tzinfo) -> tuple[date, date] | None:
    """The local days [first, stop) that [start, end) spans exactly, or None if it does not
    begin and end at local midnights."""
    first, stop = local_day(start, tz), local_day(end, tz)
    if day_start(first, tz) != start or day_start(stop, tz) != end:
        return None
    return first, stop


def uses_rollup(node: NodeRef, start: datetime, end: datetime, tz: tzinfo) -> bool:
    return node.level in BIG and whole_days(start, end, tz) is not None


def _where(table: sa.Table, node: NodeRef, first: date, stop: date) -> sa.ColumnElement[bool]:
    low, high = subtree_bounds(node.path)
    return sa.and_(table.c.day >= first, table.c.day < stop,
                   table.c.village_path >= low, table.c.village_path < high)


def _median(hist: dict[int, int]) -> float | None:
    n = sum(hist.values())
    if not n:
        return None
    wanted = sorted({(n - 1) // 2, n // 2})
    values: list[float] = []
    seen = 0
    for bucket in sorted(hist):
        count = hist[bucket]
        while wanted and wanted[0] < seen + count:
            values.append(bucket_value(bucket))
            wanted.pop(0)
        seen += count
    return statistics.mean(values)


def rollup_figures(session: Session, *, node: NodeRef, first: date, stop: date, tz: tzinfo,
                   leaders: int | None = None) -> Figures:
    """Figures for the cases opened on local days [first, stop) at or below `node`."""
    sums = session.execute(
        sa.select(*[sa.func.coalesce(sa.func.sum(DAY.c[k]), 0) for k in (
            "received", "closed", "rejected", "merged", "rating_sum", "rated")])
        .where(_where(DAY, node, first, stop))
    ).one()
    received, closed, rejected, merged, rating_sum, rated = (int(v) for v in sums)
    tiers: dict[str, TierRate] = {}
    escalations: dict[str, int] = {}
    for role, replied, on_time, timeouts, esc in session.execute(
        sa.select(TIER.c.role, sa.func.sum(TIER.c.replied), sa.func.sum(TIER.c.on_time),
                  sa.func.sum(TIER.c.timeouts), sa.func.sum(TIER.c.escalations))
        .where(_where(TIER, node, first, stop)).group_by(TIER.c.role)
    ):
        if replied or timeouts:
            tiers[role] = TierRate(int(on_time), int(replied) + int(timeouts),
                                   int(replied) - int(on_time))
        if esc:
            escalations[role] = int(esc)
    hist: dict[str, dict[int, int]] = {"reply": {}, "close": {}}
    for kind, bucket, n in session.execute(
        sa.select(HIST.c.kind, HIST.c.bucket, sa.func.sum(HIST.c.n))
        .where(_where(HIST, node, first, stop)).group_by(HIST.c.kind, HIST.c.bucket)
    ):
        hist[kind][int(bucket)] = int(n)
    return Figures(
        node_id=node.id, start=day_start(first, tz), end=day_start(stop, tz),
        received=received, closed=closed, rejected=rejected, merged=merged,
        on_time_first_reply=dict(sorted(tiers.items())),
        median_first_reply_s=_median(hist["reply"]), median_close_s=_median(hist["close"]),
        escalations=dict(sorted(escalations.items())),
        mean_rating=rating_sum / rated if rated else None,
        rating_by_neighbor_leader=_leader_ratings(session, node, first, stop, leaders),
    )


def _leader_ratings(session: Session, node: NodeRef, first: date, stop: date,
                    leaders: int | None) -> list[LeaderRating]:
    n = sa.func.sum(RATING.c.rated)
    mean = sa.cast(sa.func.sum(RATING.c.rating_sum), sa.Float) / n
    per = (sa.select(RATING.c.person_id.label("pid"), n.label("n"), mean.label("mean"))
           .where(_where(RATING, node, first, stop)).group_by(RATING.c.person_id)
           .having(n > 0))
    if leaders is None:
        q = per.subquery()
        picked = sa.select(q.c.pid, q.c.n, q.c.mean).order_by(q.c.pid)
    else:
        # Rank every 邻长 both ways on the database; only the N best and N worst travel.
        q = per.add_columns(
            sa.func.row_number().over(order_by=(mean.desc(), n.desc(), RATING.c.person_id))
            .label("best"),
            sa.func.row_number().over(order_by=(mean.asc(), n.desc(), RATING.c.person_id))
            .label("worst"),
        ).subquery()
        picked = (sa.select(q.c.pid, q.c.n, q.c.mean)
                  .where(sa.or_(q.c.best <= leaders, q.c.worst <= leaders)).order_by(q.c.best))
    kept = [(int(r.pid), int(r.n), float(r.mean)) for r in session.execute(picked)]
    names: dict[int, str] = {}
    ids = [x[0] for x in kept]
    for i in range(0, len(ids), 900):
        names.update((int(r.id), str(r.name)) for r in session.execute(
            sa.select(P.c.id, P.c.name).where(P.c.id.in_(ids[i:i + 900]))))
    return [LeaderRating(pid, names.get(pid, ""), cnt, avg) for pid, cnt, avg in kept]


def week_firsts(start: datetime, end: datetime, tz: tzinfo) -> list[date]:
    """The Mondays (local) of the weeks that [start, end) touches, the first on or before
    the range's first day."""
    first = local_day(start, tz)
    monday = first - timedelta(days=first.weekday())
    last = local_day(end - timedelta(microseconds=1), tz)
    return [monday + timedelta(weeks=i) for i in range((last - monday).days // 7 + 1)]


def rollup_weekly(session: Session, *, node: NodeRef, first: date, stop: date
                  ) -> list[tuple[date, int, int, int]]:
    """(Monday, received, closed, late first replies) for each week that the local days
    [first, stop) touch; a week cut by the range counts only its days inside it."""
    mondays = _mondays(first, stop)
    out = [[0, 0, 0] for _ in mondays]
    for day, received, closed, late in session.execute(
        sa.select(DAY.c.day, sa.func.sum(DAY.c.received), sa.func.sum(DAY.c.closed),
                  sa.func.sum(DAY.c.late_replies))
        .where(_where(DAY, node, first, stop)).group_by(DAY.c.day)
    ):
        w = out[(day - mondays[0]).days // 7]
        w[0] += int(received)
        w[1] += int(closed)
        w[2] += int(late)
    return [(d, *w) for d, w in zip(mondays, out, strict=True)]  # type: ignore[misc]


def _mondays(first: date, stop: date) -> list[date]:
    monday = first - timedelta(days=first.weekday())
    return [monday + timedelta(weeks=i)
            for i in range(((stop - timedelta(days=1)) - monday).days // 7 + 1)]


def live_weekly(session: Session, *, node: NodeRef, start: datetime, end: datetime,
                tz: tzinfo) -> list[WeekRow]:
    """Received, closed and late first replies per Monday-to-Sunday week (local time) of the
    cases opened in [start, end), counted on the database in one grouped pass."""
    mondays = week_firsts(start, end, tz)
    origin = day_start(mondays[0], tz)
    week = _week_index(session, origin).label("week")
    rows = session.execute(
        sa.select(week, sa.func.count(),
                  sa.func.count().filter(C.c.state == State.closed.value),
                  sa.func.count().filter(C.c.first_reply_on_time.is_(False)))
        .where(reports.in_subtree(node), C.c.opened_at >= start, C.c.opened_at < end)
        .group_by(week)
    ).all()
    counts = {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows if r[0] is not None}
    return [WeekRow(day_start(d, tz), *counts.get(i, (0, 0, 0)))
            for i, d in enumerate(mondays)]


def _week_index(session: Session, origin: datetime) -> sa.ColumnElement[int]:
    """Whole weeks from a Monday's local midnight to a case's opened_at (a zone without
    daylight saving keeps every week 7 × 24 hours long)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.floor(sa.extract("epoch", C.c.opened_at - origin) / 604800),
                       sa.Integer)
    days = sa.func.julianday(C.c.opened_at) - sa.func.julianday(
        origin.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))
    return sa.cast(days / 7, sa.Integer)


def rollup_ranking(session: Session, *, scope: NodeRef, level: Level, first: date, stop: date,
                   min_cases: int) -> tuple[list[RankRow], list[RankRow]]:
    """core.reports.ranking from the rollups: villages summed up to the level ranked."""
    nodes = {n.path: n for n in subtree(session, scope, levels=[level])}
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, 0])
    for vpath, received, closed, merged, on_time, judged, rating_sum, rated in session.execute(
        sa.select(DAY.c.village_path, *[sa.func.sum(DAY.c[k]) for k in (
            "received", "closed", "merged", "on_time", "judged", "rating_sum", "rated")])
        .where(_where(DAY, scope, first, stop)).group_by(DAY.c.village_path)
    ):
        ids = path_ids(vpath)
        owner = next((p for p in ("/" + "/".join(map(str, ids[:k])) + "/"
                                  for k in range(len(ids), 0, -1)) if p in nodes), None)
        if owner is None:
            continue
        acc = sums[owner]
        for i, v in enumerate((received, closed, merged, on_time, judged, rating_sum, rated)):
            acc[i] += int(v)
    ranked: list[RankRow] = []
    too_few: list[RankRow] = []
    for path, node in nodes.items():
        r, c, m, ot, j, rs, rt = sums.get(path, [0] * 7)
        row = RankRow(node, int(r), int(c), int(m), int(ot), int(j), rs / rt if rt else None)
        (ranked if row.received >= max(min_cases, 1) else too_few).append(row)
    ranked.sort(key=lambda x: (-x.score, -x.received, x.node.code))
    return ranked, too_few


def rollup_categories(session: Session, *, node: NodeRef, first: date, stop: date
                      ) -> list[stats.CategoryCount]:
    """core.cases.stats.by_category from the rollups: received and closed per category."""
    rows = session.execute(
        sa.select(CATEGORY.c.category_id, sa.func.sum(CATEGORY.c.received),
                  sa.func.sum(CATEGORY.c.closed))
        .where(_where(CATEGORY, node, first, stop)).group_by(CATEGORY.c.category_id)
    ).all()
    names = {int(i): str(n) for i, n in session.execute(sa.select(CAT.c.id, CAT.c.name))}
    out = [stats.CategoryCount(names.get(int(cid)) if cid else None, int(r), int(c))
           for cid, r, c in rows]
    return stats.sort_categories(out)


def categories_for(session: Session, *, node: NodeRef, start: datetime, end: datetime,
                   tz: tzinfo) -> list[stats.CategoryCount]:
    """Cases per category: from the rollups for a town or district over whole days."""
    days = whole_days(start, end, tz) if node.level in BIG else None
    if days is None:
        return stats.by_category(session, node=node, start=start, end=end)
    return rollup_categories(session, node=node, first=days[0], stop=days[1])


class FigureRead(NamedTuple):
    figures: Figures
    from_rollup: bool
    as_of: datetime | None  # the rollups' last refresh (None: counted live, or never refreshed)


def figures_for(session: Session, *, node: NodeRef, start: datetime, end: datetime,
                tz: tzinfo, leaders: int | None = None) -> FigureRead:
    """Figures, whether they come from the rollups, and how fresh those are."""
    days = whole_days(start, end, tz) if node.level in BIG else None
    if days is None:
        return FigureRead(stats.figures(session, node=node, start=start, end=end,
                                        leaders=leaders), False, None)
    return FigureRead(rollup_figures(session, node=node, first=days[0], stop=days[1], tz=tz,
                                     leaders=leaders), True, refreshed_at(session.connection()))


def weekly_for(session: Session, *, node: NodeRef, start: datetime, end: datetime,
               tz: tzinfo) -> list[WeekRow]:
    """The weekly trend of [start, end), Monday to Sunday: from the rollups for a town or
    district over whole local days, else counted live."""
    days = whole_days(start, end, tz) if node.level in BIG else None
    if days is None:
        return live_weekly(session, node=node, start=start, end=end, tz=tz)
    return [WeekRow(day_start(d, tz), r, c, late)
            for d, r, c, late in rollup_weekly(session, node=node, first=days[0], stop=days[1])]


def ranking_for(session: Session, *, scope: NodeRef, level: Level, start: datetime,
                end: datetime, tz: tzinfo, min_cases: int) -> tuple[list[RankRow], list[RankRow]]:
    """core.reports.ranking, from the rollups for a town or district over whole days."""
    days = whole_days(start, end, tz) if scope.level in BIG else None
    if days is None:
        return reports.ranking(session, scope=scope, level=level, start=start, end=end,
                               min_cases=min_cases)
    return rollup_ranking(session, scope=scope, level=level, first=days[0], stop=days[1],
                          min_cases=min_cases)
