"""The monthly 考核 counted straight from the cases, without the rollups: the check that the
rollups say the same (tests) and the baseline of bench/bench_kaohe.py."""

from __future__ import annotations

from collections import defaultdict
from datetime import tzinfo
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.model import CASES
from core.hierarchy.model import Level
from core.hierarchy.queries import NodeRef, subtree
from core.hierarchy.tree import subtree_bounds
from core.kaohe import read
from core.kaohe.measures import Kaohe
from core.rollup.kaohe import case_columns, counts_of, units_of
from core.rollup.refresh import day_start

C = CASES


def live_report(session: Session, *, scope: NodeRef, month: str, tz: tzinfo,
                min_cases: int) -> read.MonthReport:
    """core.kaohe.read.month_report (every 邻长 included), counted from the cases."""
    first, stop = read.month_span(month)
    low, high = subtree_bounds(scope.path)
    villages = {n.path: n for n in subtree(session, scope, levels=[Level.village])}
    sums: dict[tuple[str, Any], Kaohe] = defaultdict(Kaohe)
    where_from: dict[int, str] = {}
    for r in session.execute(sa.select(C.c.node_path, *case_columns()).where(
            C.c.node_path >= low, C.c.node_path < high,
            C.c.opened_at >= day_start(first, tz), C.c.opened_at < day_start(stop, tz))):
        village = read.owner_of(str(r.node_path), villages)
        if village is None:
            continue
        counts = counts_of(r)
        sums["village", village.path].add(counts)
        for kind, unit, role in units_of(r):
            if kind == "node" or (kind == "person" and role != read.LEADER):
                continue
            if kind == "person":
                where_from.setdefault(unit, village.path)
            sums[kind, unit if kind != "tier" else role].add(counts)
    tiers = sorted(((str(u), k) for (kind, u), k in sums.items() if kind == "tier"),
                   key=lambda x: (read.TIER_ORDER.index(x[0]) if x[0] in read.TIER_ORDER
                                  else 99, x[0]))
    total = Kaohe()
    for _, k in tiers:
        total.add(k.__dict__)

    def level_ranking(level: Level) -> read.Ranking:
        at = {n.path: n for n in subtree(session, scope, levels=[level])}
        acc: dict[str, Kaohe] = defaultdict(Kaohe)
        for (kind, vpath), k in sums.items():
            owner = read.owner_of(str(vpath), at) if kind == "village" else None
            if owner is not None:
                acc[owner.path].add(k.__dict__)
        return read.rank_rows((read.Row(read.Unit("node", n.id, n.name, n.code),
                                    acc.get(p, Kaohe())) for p, n in at.items()), min_cases)

    big = scope.level in (Level.district, Level.town)
    people = [SimpleNamespace(unit_id=pid, vpath=where_from[int(pid)],
                              **k.__dict__)
              for (kind, pid), k in sums.items() if kind == "person" and pid in where_from]
    depts = read.rank_rows(_departments(session, sums), min_cases)
    return read.MonthReport(
        scope=scope, first=first, stop=stop, total=total, tiers=tiers,
        towns=level_ranking(Level.town) if scope.level is Level.district else read.Ranking(),
        villages=level_ranking(Level.village) if big else read.Ranking(),
        departments=depts, leaders=read.rank_rows(read.people_rows(session, people), min_cases),
        as_of=None)


def _departments(session: Session, sums: dict[tuple[str, Any], Kaohe]) -> list[read.Row]:
    ids = [int(u) for (kind, u) in sums if kind == "dept"]
    names = {int(r.id): r for r in session.execute(
        sa.select(read.N.c.id, read.N.c.code, read.N.c.name).where(read.N.c.id.in_(ids)))}
    return [read.Row(read.Unit("dept", i, names[i].name, names[i].code), sums["dept", i])
            for i in ids if i in names]
