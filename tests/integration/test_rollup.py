"""The daily per-village rollups give town and district figures equal to counting the cases
live: after a refresh that follows marks, after a rebuild, and on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases import actions, closing
from core.clock import FakeClock
from core.db import session_scope
from core.hierarchy.queries import NodeRef, node_by_id
from core.rollup import read, refresh
from core.rollup.model import DAY, DIRTY, HIST, RATING, TIER
from tests.casehelpers import HOUR, advance_and_sweep, get, open_case
from tests.cityfactory import City, build_city
from tests.rollupcheck import TZ, assert_rollups_match, span


def _nodes(engine: Engine, city: City) -> list[NodeRef]:
    with Session(engine) as s:
        return [node_by_id(s, city.nodes[k]) for k in ("town", "district")]


def _act(engine: Engine, clock: FakeClock, fn: object, case_id: int, who: int,
         **kw: object) -> None:
    with session_scope(engine) as s:
        fn(s, clock=clock, case_id=case_id, person_id=who,  # type: ignore[operator]
           version=get(engine, case_id).version, **kw)


def _story(engine: Engine, clock: FakeClock, city: City) -> list[int]:
    """Cases over three days in both villages: answered in time and late, escalated by the
    sweep, closed with ratings, rejected, merged, and some left open."""
    ids = []
    for day in range(3):
        a = open_case(engine, clock, city, resident="resident1", text=f"路灯坏了{day}")
        b = open_case(engine, clock, city, resident="resident3", text=f"垃圾没人收{day}")
        c = open_case(engine, clock, city, resident="resident4", text=f"下水道堵了{day}")
        ids += [a, b, c]
        clock.advance(timedelta(minutes=20 + day))
        _act(engine, clock, actions.reply, a, city["leader1"], text="马上去看")
        _act(engine, clock, actions.resolve, a, city["leader1"])
        clock.advance(HOUR)
        _act(engine, clock, closing.confirm, a, city["resident1"], rating=3 + day % 3)
        if day == 1:
            _act(engine, clock, actions.reject, b, city["leader2"], reason="不属实")
        if day == 2:
            _act(engine, clock, actions.merge, c, city["secretary2"], into_case_id=ids[2])
        # Deadlines pass on the rest: the sweep hands them up the chain.
        advance_and_sweep(engine, clock, timedelta(hours=9), step=HOUR)
        clock.advance(timedelta(hours=14))
    return ids


def test_rollups_match_live_figures_after_marks_and_refreshes(engine: Engine,
                                                              clock: FakeClock) -> None:
    city = build_city(engine)
    nodes = _nodes(engine, city)
    refresh.refresh(engine, clock=clock, tz=TZ)  # the first refresh rebuilds (nothing yet)
    ids = _story(engine, clock, city)
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(DIRTY)).scalar_one() > 0
    first, stop = span(engine, clock)
    start, end = refresh.day_start(first, TZ), refresh.day_start(stop, TZ)
    with Session(engine) as s:
        stale, _, as_of = read.figures_for(s, node=nodes[0], start=start, end=end, tz=TZ)
        assert stale.received == 0 and as_of is not None  # nothing refreshed since the story
    result = refresh.refresh(engine, clock=clock, tz=TZ)
    assert result.marks > 0 and result.villages == 2 and not result.rebuilt
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(DIRTY)).scalar_one() == 0
        fresh, _, as_of = read.figures_for(s, node=nodes[0], start=start, end=end, tz=TZ)
    assert fresh.received == 9 and fresh.closed == 3 and fresh.rejected == 1
    assert fresh.merged == 1 and as_of == clock.now()
    assert fresh.escalations and sum(fresh.escalations.values()) >= 3
    assert_rollups_match(engine, clock, nodes)

    # Later changes to old cases, one at a time: each is seen by the next refresh alone.
    def holder(case_id: int) -> int:
        return get(engine, case_id).holder_id or 0

    steps = [
        lambda: _act(engine, clock, actions.reply, ids[1], holder(ids[1]), text="已处理"),
        lambda: _act(engine, clock, actions.resolve, ids[1], holder(ids[1])),
        lambda: _act(engine, clock, closing.confirm, ids[1], city["resident3"], rating=1),
        lambda: _act(engine, clock, actions.reject, ids[7], holder(ids[7]), reason="重复"),
        lambda: advance_and_sweep(engine, clock, timedelta(hours=30), step=HOUR),
    ]
    for step in steps:
        step()
        assert refresh.refresh(engine, clock=clock, tz=TZ).villages >= 1
        assert_rollups_match(engine, clock, nodes)
    with Session(engine) as s:
        again, _, _ = read.figures_for(s, node=nodes[0], start=start, end=end, tz=TZ)
    assert (again.closed, again.rejected) == (4, 2)


@pytest.mark.parametrize("apart", [False, True], ids=["in-process", "child-process"])
def test_a_rebuild_counts_cases_that_were_never_marked(engine: Engine, clock: FakeClock,
                                                       apart: bool) -> None:
    city = build_city(engine)
    nodes = _nodes(engine, city)
    _story(engine, clock, city)
    with engine.begin() as conn:
        # As after a bulk load or an older version: rollups empty, no marks.
        for table in (DAY, TIER, HIST, RATING, DIRTY):
            conn.execute(sa.delete(table))
    refresh.request_rebuild(engine)
    # apart: as the server's job does it, the reading in a child process (core/rollup/apart.py)
    result = refresh.refresh(engine, clock=clock, tz=TZ, apart_from=0 if apart else None)
    assert result.rebuilt and result.villages == 2
    assert_rollups_match(engine, clock, nodes)
    # Rebuilding again over a full rollup changes nothing.
    refresh.request_rebuild(engine)
    refresh.refresh(engine, clock=clock, tz=TZ)
    assert_rollups_match(engine, clock, nodes)


def test_periods_that_are_not_whole_days_and_small_scopes_are_counted_live(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    refresh.refresh(engine, clock=clock, tz=TZ)
    open_case(engine, clock, city, resident="resident1")
    first, stop = span(engine, clock)
    start, end = refresh.day_start(first, TZ), refresh.day_start(stop, TZ)
    with Session(engine) as s:
        town = node_by_id(s, city.nodes["town"])
        village = node_by_id(s, city.nodes["v1"])
        f, rolled, as_of = read.figures_for(s, node=village, start=start, end=end, tz=TZ)
        assert (f.received, rolled, as_of) == (1, False, None)
        f, rolled, as_of = read.figures_for(s, node=town, start=start + HOUR, end=end, tz=TZ)
        assert (f.received, rolled, as_of) == (1, False, None)
        f, rolled, as_of = read.figures_for(s, node=town, start=start, end=end, tz=TZ)
        # Read from the rollups, which have not seen the case yet.
        assert (f.received, rolled) == (0, True) and as_of is not None
