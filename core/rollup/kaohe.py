"""The 考核 rollup of one village over the local months that some days touch:
core/kaohe/measures.classify summed per month and per unit (the village, the first holder's
post, the first holder, the department). Called by core.rollup.refresh.compute with the rest
of a village's days: the months those days fall in are recomputed whole."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

import sqlalchemy as sa

from core.cases.model import CASES, EVENTS, EventKind
from core.clock import as_utc
from core.hierarchy.tree import subtree_bounds
from core.kaohe.measures import COUNTERS, classify

C = CASES
E = EVENTS
REDO_KINDS = (EventKind.reopened.value, EventKind.sent_back.value)


def redone_clause() -> sa.ColumnElement[bool]:
    """Whether the case was ever reopened or sent back (one index probe per case)."""
    return sa.exists().where(E.c.case_id == C.c.id, E.c.kind.in_(REDO_KINDS))


def case_columns() -> list[Any]:
    """The columns `classify` needs, plus who the case is credited to."""
    return [C.c.opened_at, C.c.state, C.c.first_reply_at, C.c.first_reply_on_time,
            C.c.first_reply_role, C.c.first_holder_id, C.c.first_holder_role,
            C.c.department_node_id, C.c.missed_deadlines, C.c.resolved_at, C.c.rating,
            redone_clause().label("redone")]


def counts_of(r: Any) -> dict[str, int]:
    return classify(state=r.state, first_reply_at=r.first_reply_at,
                    first_reply_on_time=r.first_reply_on_time,
                    first_reply_role=r.first_reply_role, first_holder_role=r.first_holder_role,
                    missed_deadlines=int(r.missed_deadlines or 0), resolved_at=r.resolved_at,
                    rating=r.rating, redone=bool(r.redone))


def units_of(r: Any) -> list[tuple[str, int, str]]:
    """The (kind, unit id, post) rows a case counts in."""
    role = r.first_holder_role or ""
    out = [("node", 0, ""), ("tier", 0, role)]
    if r.first_holder_id is not None:
        out.append(("person", int(r.first_holder_id), role))
    if r.department_node_id is not None:
        out.append(("dept", int(r.department_node_id), ""))
    return out


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def kaohe_rows(conn: sa.Connection, *, village_id: int, village_path: str, first: date,
               last: date, tz: tzinfo) -> list[dict[str, Any]]:
    """The village's rollup_kaohe rows of the months the local days first..last touch."""
    t0 = datetime.combine(month_of(first), time(0), tzinfo=tz).astimezone(UTC)
    t1 = datetime.combine(next_month(last), time(0), tzinfo=tz).astimezone(UTC)
    low, high = subtree_bounds(village_path)
    acc: dict[tuple[date, str, int, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COUNTERS, 0))
    for r in conn.execute(sa.select(*case_columns()).where(
            C.c.node_path >= low, C.c.node_path < high, C.c.opened_at >= t0,
            C.c.opened_at < t1)):
        month = month_of(as_utc(r.opened_at).astimezone(tz).date())
        counts = counts_of(r)
        for kind, unit, role in units_of(r):
            a = acc[month, kind, unit, role]
            for k, v in counts.items():
                a[k] += v
    return [{"village_id": village_id, "village_path": village_path, "month": month,
             "kind": kind, "unit_id": unit, "role": role, **a}
            for (month, kind, unit, role), a in acc.items()]
