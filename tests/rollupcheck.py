"""Whether the rollups give the figures that counting the cases live gives."""

from __future__ import annotations

import math
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import reports
from core.cases import stats
from core.cases.model import CASES
from core.clock import FakeClock, as_utc
from core.hierarchy.model import Level
from core.hierarchy.queries import NodeRef
from core.rollup import read, refresh

TZ = ZoneInfo("Asia/Shanghai")


def close(a: float | None, b: float | None, rel: float = 0.021, abs_: float = 1.1) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def span(engine: Engine, clock: FakeClock) -> tuple[date, date]:
    """Whole local days from before the first case to after now."""
    with Session(engine) as s:
        first = s.execute(sa.select(sa.func.min(CASES.c.opened_at))).scalar()
    start = refresh.local_day(as_utc(first) if first else clock.now(), TZ) - timedelta(days=1)
    return start, refresh.local_day(clock.now(), TZ) + timedelta(days=2)


def assert_rollups_match(engine: Engine, clock: FakeClock, nodes: list[NodeRef]) -> None:
    first, stop = span(engine, clock)
    start, end = refresh.day_start(first, TZ), refresh.day_start(stop, TZ)
    with Session(engine) as s:
        for node in nodes:
            live = stats.figures(s, node=node, start=start, end=end)
            got = read.rollup_figures(s, node=node, first=first, stop=stop, tz=TZ)
            for f in ("received", "closed", "rejected", "merged", "on_time_first_reply",
                      "escalations"):
                assert getattr(got, f) == getattr(live, f), (node.code, f, getattr(got, f),
                                                             getattr(live, f))
            assert close(got.mean_rating, live.mean_rating, 1e-9, 1e-9), node.code
            assert close(got.median_first_reply_s, live.median_first_reply_s), (
                node.code, got.median_first_reply_s, live.median_first_reply_s)
            assert close(got.median_close_s, live.median_close_s), (
                node.code, got.median_close_s, live.median_close_s)
            assert [(x.person_id, x.rated) for x in got.rating_by_neighbor_leader] == [
                (x.person_id, x.rated) for x in live.rating_by_neighbor_leader], node.code
            assert all(close(a.mean, b.mean, 1e-9, 1e-9) for a, b in zip(
                got.rating_by_neighbor_leader, live.rating_by_neighbor_leader, strict=True))
            # Monday-to-Sunday weeks of the range, the cut first and last weeks included.
            assert [(w.start, w.received, w.closed, w.overdue_replies) for w in read.live_weekly(
                s, node=node, start=start, end=end, tz=TZ)] == [
                (refresh.day_start(d, TZ), r, c, late) for d, r, c, late in read.rollup_weekly(
                    s, node=node, first=first, stop=stop)], node.code
            assert read.rollup_categories(s, node=node, first=first, stop=stop) == \
                stats.by_category(s, node=node, start=start, end=end), node.code
            level = Level.village if node.level is Level.town else Level.town
            for live_rows, got_rows in zip(
                    reports.ranking(s, scope=node, level=level, start=start, end=end,
                                    min_cases=2),
                    read.rollup_ranking(s, scope=node, level=level, first=first, stop=stop,
                                        min_cases=2), strict=True):
                assert [(r.node.code, r.received, r.closed, r.merged, r.on_time, r.replied)
                        for r in got_rows] == [
                    (r.node.code, r.received, r.closed, r.merged, r.on_time, r.replied)
                    for r in live_rows], node.code
                assert all(close(a.mean_rating, b.mean_rating, 1e-9, 1e-9)
                           for a, b in zip(got_rows, live_rows, strict=True))
    _kaohe_matches(engine, nodes, first, stop)


def _kaohe_matches(engine: Engine, nodes: list[NodeRef], first: date, stop: date) -> None:
    """考核 from rollup_kaohe equals 考核 counted from the cases, month by month."""
    from core.kaohe import live
    from core.kaohe import read as kaohe

    def counts(rows: list[kaohe.Row]) -> list[tuple[str, dict[str, int]]]:
        return [(r.unit.name, r.k.__dict__) for r in rows]

    months = sorted({date(d.year, d.month, 1) for d in (first, stop - timedelta(days=1))})
    with Session(engine) as s:
        for node in nodes:
            for m in months:
                month = f"{m:%Y-%m}"
                got = kaohe.month_report(s, scope=node, month=month, min_cases=2,
                                         all_leaders=True, tz=TZ)
                want = live.live_report(s, scope=node, month=month, tz=TZ, min_cases=2)
                assert got.total == want.total, (node.code, month, got.total, want.total)
                assert got.tiers == want.tiers, (node.code, month)
                for part in ("towns", "villages", "departments", "leaders"):
                    a, b = getattr(got, part), getattr(want, part)
                    assert counts(a.ranked) == counts(b.ranked), (node.code, month, part)
                    assert sorted(counts(a.too_few), key=str) == sorted(
                        counts(b.too_few), key=str), (node.code, month, part)

