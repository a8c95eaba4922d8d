"""A hand-countable set of cases for the figures (FakeClock), on tests/cityfactory's city.

Mon 2026-03-02 10:00 (Asia/Shanghai), village 东关社区:
- A: 邻长小赵 replies after 1 h and resolves; the resident confirms after 2 h, 5 stars.
- B: nobody answers: after 4 h the sweep hands it to the 组长, after 8 h to the 片长, who
  replies at 9 h and resolves; the 书记 checks it (核查通过) at once; the resident confirms at
  10 h, 2 stars.
Tue 2026-03-10 10:00: C (二邻, 邻长小钱) is answered 5 h late-ish (deadline 4 h), before the
sweep runs. What a person counts by hand is in EXPECTED.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from core.cases import actions, closing, verify
from core.clock import FakeClock
from tests.casehelpers import HOUR, advance_and_sweep, do, get, open_case, settings
from tests.cityfactory import City

START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
# The chosen range ends on a Sunday (exclusive), so weekly columns cannot line up by chance.
PERIOD = {"start": "2026-03-02", "end": "2026-03-15"}


def seed(engine: Engine, clock: FakeClock, city: City) -> dict[str, int]:
    """Write cases A, B, C (see the module docstring); returns their ids."""
    st = settings()
    clock.set(START)
    a = open_case(engine, clock, city, "resident1", text="楼道灯坏了", st=st, category="公共设施")
    b = open_case(engine, clock, city, "resident2", text="河边有人倒垃圾", st=st,
                  category="环境保护")
    advance_and_sweep(engine, clock, HOUR)
    _act(engine, clock, actions.reply, a, city["leader1"], text="马上来看")
    _act(engine, clock, actions.resolve, a, city["leader1"])
    advance_and_sweep(engine, clock, HOUR)
    _act(engine, clock, closing.confirm, a, city["resident1"], rating=5)
    advance_and_sweep(engine, clock, 7 * HOUR, step=HOUR)  # 9 h: B is with the 片长
    assert get(engine, b).holder_id == city["area_leader"]
    _act(engine, clock, actions.reply, b, city["area_leader"], text="已联系城管")
    _act(engine, clock, actions.resolve, b, city["area_leader"])
    _act(engine, clock, verify.approve, b, city["secretary"])  # an escalated case: 核查 first
    advance_and_sweep(engine, clock, HOUR)
    _act(engine, clock, closing.confirm, b, city["resident2"], rating=2)
    clock.set(START + timedelta(days=8))  # Tuesday of the next week, 10:00
    advance_and_sweep(engine, clock, timedelta(0))
    c = open_case(engine, clock, city, "resident3", text="小区门口路面塌陷", st=st,
                  category="公共设施")
    clock.advance(5 * HOUR)  # the sweep has not run yet: the 邻长 answers after the deadline
    _act(engine, clock, actions.reply, c, city["leader2"], text="今天处理")
    return {"A": a, "B": b, "C": c}


def _act(engine: Engine, clock: FakeClock, fn: Any, case_id: int, person: int,
         **kw: Any) -> None:
    do(engine, fn, clock=clock, case_id=case_id, person_id=person,
       version=get(engine, case_id).version, **kw)


# Counted by hand from the story above, for the period PERIOD, at the village or above.
EXPECTED: dict[str, Any] = {
    "received": 3, "closed": 2, "resolution_rate": 2 / 3, "mean_rating": 3.5,
    # per tier: (on time, late, missed, total) against each tier's own deadline
    "tiers": {"neighbor_leader": (1, 1, 1, 3), "group_leader": (0, 0, 1, 1),
              "area_leader": (1, 0, 0, 1)},
    "escalations": {"neighbor_leader": 1, "group_leader": 1},
    # 5 stars for 邻长小赵 (he resolved A); B's 2 stars belong to the 片长 who resolved it.
    "leaders": [("邻长小赵", 1, 5.0)],
    # Monday-to-Sunday weeks: (Monday, received, closed, late first replies)
    "weeks": [("2026-03-02", 2, 2, 0), ("2026-03-09", 1, 0, 1)],
    "categories": [("公共设施", 2, 1), ("环境保护", 1, 1)],
    "median_first_reply_h": 5.0,  # A 1 h, B 9 h, C 5 h
    "median_close_h": 6.0,  # A 2 h, B 10 h
}
