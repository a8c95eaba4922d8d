"""A hand-countable month of cases for 考核 (FakeClock), on tests/cityfactory's city.

March 2026 (Asia/Shanghai), from Monday 03-02 10:00:
- A (居民孙 → 邻长小赵, 东关社区): answered after 1 h, resolved, confirmed 5 stars.
- B (居民周 → 邻长小赵): nobody answers; after 4 h the sweep hands it to 组长老张 (a missed
  deadline: 超期), who answers at once, resolves; 片长老李 checks it (核查通过); 2 stars.
- C (居民吴 → 邻长小钱): answered on time, resolved; the resident says not fixed (重办);
  resolved again, confirmed 4 stars.
- G (居民吴 → 邻长小钱): a duplicate of C, merged into it (counted nowhere but 收到/合并).
- D (居民陈 → 邻长小冯, 西关社区), Tuesday 03-10 10:00: answered 5 h late (before the sweep
  ran), resolved; the resident never answers: closed by itself after the confirm window.
- F (居民周 → 邻长小赵, 环境保护): accepted on time; 书记老王 whistles it to 生态环境所,
  whose liaison reports in and resolves; 书记老王 sends it back once (重办), the liaison
  resolves again, 书记 approves; 5 stars.
- E (居民孙 → 邻长小赵): opened 03-31 20:00, still waiting inside its answer limit.
- H (居民孙): opened 04-01 00:30, outside the month.
The hand count is EXPECTED below.
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
MONTH = "2026-03"


def _act(engine: Engine, clock: FakeClock, fn: Any, case_id: int, person: int,
         **kw: Any) -> None:
    do(engine, fn, clock=clock, case_id=case_id, person_id=person,
       version=get(engine, case_id).version, **kw)


def seed(engine: Engine, clock: FakeClock, city: City) -> dict[str, int]:
    """Write the month above; returns the cases' ids by letter."""
    st = settings()
    clock.set(START)
    ids: dict[str, int] = {}
    ids["A"] = open_case(engine, clock, city, "resident1", text="楼道灯坏了", st=st)
    ids["B"] = open_case(engine, clock, city, "resident2", text="河边有人倒垃圾", st=st)
    ids["C"] = open_case(engine, clock, city, "resident3", text="小区门口路面塌陷", st=st)
    ids["G"] = open_case(engine, clock, city, "resident3", text="门口路面塌了个坑", st=st)
    ids["F"] = open_case(engine, clock, city, "resident2", text="工厂夜里排放黑烟", st=st,
                         category="环境保护")
    a, b, c, g, f = (ids[k] for k in "ABCGF")
    advance_and_sweep(engine, clock, HOUR)
    _act(engine, clock, actions.reply, a, city["leader1"], text="马上来看")
    _act(engine, clock, actions.resolve, a, city["leader1"])
    _act(engine, clock, actions.reply, c, city["leader2"], text="今天处理")
    _act(engine, clock, actions.merge, g, city["leader2"], into_case_id=c)
    _act(engine, clock, actions.resolve, c, city["leader2"])
    _act(engine, clock, actions.accept, f, city["leader1"])
    _act(engine, clock, actions.whistle, f, city["secretary"])
    _act(engine, clock, actions.accept, f, city["liaison"])
    _act(engine, clock, actions.resolve, f, city["liaison"])
    _act(engine, clock, verify.send_back, f, city["secretary"], reason="黑烟仍在")
    _act(engine, clock, actions.resolve, f, city["liaison"])
    _act(engine, clock, verify.approve, f, city["secretary"])
    advance_and_sweep(engine, clock, HOUR)
    _act(engine, clock, closing.confirm, a, city["resident1"], rating=5)
    _act(engine, clock, closing.not_fixed, c, city["resident3"], reason="还是有坑")
    _act(engine, clock, actions.resolve, c, city["leader2"])
    _act(engine, clock, closing.confirm, c, city["resident3"], rating=4)
    _act(engine, clock, closing.confirm, f, city["resident2"], rating=5)
    advance_and_sweep(engine, clock, 2 * HOUR + timedelta(minutes=30), step=HOUR)  # 4.5 h
    assert get(engine, b).holder_id == city["group_leader"]
    _act(engine, clock, actions.reply, b, city["group_leader"], text="已联系城管")
    _act(engine, clock, actions.resolve, b, city["group_leader"])
    _act(engine, clock, verify.approve, b, city["area_leader"])
    _act(engine, clock, closing.confirm, b, city["resident2"], rating=2)
    clock.set(START + timedelta(days=8))  # Tuesday 03-10, 10:00
    advance_and_sweep(engine, clock, timedelta(0))
    ids["D"] = d = open_case(engine, clock, city, "resident4", text="路灯不亮", st=st)
    clock.advance(5 * HOUR)  # 邻长小冯 answers after the 4 h limit, before any sweep ran
    _act(engine, clock, actions.reply, d, city["leader3"], text="明天换灯")
    _act(engine, clock, actions.resolve, d, city["leader3"])
    advance_and_sweep(engine, clock, timedelta(days=4), step=6 * HOUR)  # D closes unrated
    assert get(engine, d).state == "closed"
    clock.set(datetime(2026, 3, 31, 12, 0, tzinfo=UTC))  # 20:00 local
    ids["E"] = open_case(engine, clock, city, "resident1", text="楼下有积水", st=st)
    clock.set(datetime(2026, 3, 31, 16, 30, tzinfo=UTC))  # 04-01 00:30 local
    ids["H"] = open_case(engine, clock, city, "resident1", text="垃圾桶满了", st=st)
    return ids


def _k(received: int, merged: int, judged: int, signed: int, closed: int, on_time: int,
       resolved: int, redone: int, rated: int, satisfied: int, rating_sum: int,
       overdue: int) -> dict[str, int]:
    return {"received": received, "merged": merged, "judged": judged, "signed": signed,
            "closed": closed, "closed_on_time": on_time, "resolved": resolved,
            "redone": redone, "rated": rated, "satisfied": satisfied,
            "rating_sum": rating_sum, "overdue": overdue}


# Counted by hand from the story, for March 2026. judged: A B C D F (E still waits, G merged);
# signed: A C F (B was answered by the 组长, D late); closed on time: A C D F (B missed one).
EXPECTED: dict[str, Any] = {
    "total": _k(7, 1, 5, 3, 5, 4, 5, 2, 4, 3, 16, 1),
    "rates": {"accept_rate": 3 / 5, "on_time_close_rate": 4 / 6, "satisfied_rate": 3 / 4,
              "visit_rate": 4 / 5, "redo_rate": 2 / 5, "overdue": 1},
    # 邻长 by the cases first routed to them: 小赵 A B E F, 小钱 C G, 小冯 D.
    "leaders": {"邻长小赵": _k(4, 0, 3, 2, 3, 2, 3, 1, 3, 2, 12, 1),
                "邻长小钱": _k(2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 0),
                "邻长小冯": _k(1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0)},
    # 40×按时办结 + 30×签收 + 20×满意 + 10×(1−重办): 小钱 40+30+20+0, 小赵 20+20+13.3+6.7,
    # 小冯 40+0+0+10.
    "scores": {"邻长小钱": 90.0, "邻长小赵": 60.0, "邻长小冯": 50.0},
    "villages": {"东关社区": _k(6, 1, 4, 3, 4, 3, 4, 2, 4, 3, 16, 1),
                 "西关社区": _k(1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0)},
    "village_scores": {"东关社区": 66.5, "西关社区": 50.0},
    "departments": {"生态环境所": _k(1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 5, 0)},
}
