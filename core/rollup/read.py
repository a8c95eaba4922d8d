"""Figures, weekly trends and the 考核 ranking read from the rollups, for towns and districts.

A village or anything below it is small enough to count live and exactly (core.cases.stats,
core.reports); a town or a district over whole local days reads the rollups, which are as
fresh as the last refresh (`as_of`) and give medians to within 2 %. The `*_for` functions
choose, so every caller gets the same answer for the same question.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta, tzinfo
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import stats
from core.cases.stats import Figures, LeaderRating, TierRate
from core.hierarchy.model import Level, Person
from core.hierarchy.queries import NodeRef, subtree
from core.hierarchy.tree import path_ids, subtree_bounds
from core.reports import RankRow, WeekRow
from core.rollup.model import DAY, HIST, RATING, TIER
from core.rollup.refresh import bucket_value, day_start, local_day, refreshed_at

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
            tiers[role] = TierRate(int(on_time), int(replied) + int(timeouts))
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


def rollup_weekly(session: Session, *, node: NodeRef, first: date, weeks: int
                  ) -> list[tuple[date, int, int, int]]:
    """(first day, received, closed, late first replies) for each week from `first`."""
    stop = first + timedelta(weeks=weeks)
    out = [[0, 0, 0] for _ in range(weeks)]
    for day, received, closed, late in session.execute(
        sa.select(DAY.c.day, sa.func.sum(DAY.c.received), sa.func.sum(DAY.c.closed),
                  sa.func.sum(DAY.c.late_replies))
        .where(_where(DAY, node, first, stop)).group_by(DAY.c.day)
    ):
        w = out[(day - first).days // 7]
        w[0] += int(received)
        w[1] += int(closed)
        w[2] += int(late)
    return [(first + timedelta(weeks=i), *w) for i, w in enumerate(out)]  # type: ignore[misc]


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


def weekly_for(session: Session, *, node: NodeRef, end: datetime, tz: tzinfo,
               weeks: int = 12) -> list[WeekRow]:
    """core.reports.weekly, from the rollups for a town or district ending at local midnight."""
    from core import reports

    start = end - timedelta(weeks=weeks)
    days = whole_days(start, end, tz) if node.level in BIG else None
    if days is None:
        return reports.weekly(session, node=node, end=end, weeks=weeks)
    return [WeekRow(day_start(d, tz), r, c, late)
            for d, r, c, late in rollup_weekly(session, node=node, first=days[0], weeks=weeks)]


def ranking_for(session: Session, *, scope: NodeRef, level: Level, start: datetime,
                end: datetime, tz: tzinfo, min_cases: int) -> tuple[list[RankRow], list[RankRow]]:
    """core.reports.ranking, from the rollups for a town or district over whole days."""
    from core import reports

    days = whole_days(start, end, tz) if scope.level in BIG else None
    if days is None:
        return reports.ranking(session, scope=scope, level=level, start=start, end=end,
                               min_cases=min_cases)
    return rollup_ranking(session, scope=scope, level=level, first=days[0], stop=days[1],
                          min_cases=min_cases)
