"""Keeping the rollups true: every case event marks its village-days dirty in the same
transaction, and a scheduled job recomputes those village-days from the cases.

A village-day is always recomputed whole from `cases` and `case_event`, never adjusted by
deltas, so a missed mark costs freshness, not correctness: the next mark, or a rebuild, puts
the row right. Marks are plain rows with their own ids (no upsert): a change that commits
while the job runs leaves a new row behind instead of folding into one the job then deletes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases.model import CASES, EVENTS, Case, CaseEvent, State
from core.clock import Clock, as_utc
from core.db import write_transaction
from core.hierarchy.model import Level, Node, Role
from core.hierarchy.tree import path_ids, subtree_bounds
from core.rollup.kaohe import kaohe_rows, month_of
from core.rollup.lock import refresher as _refresher
from core.rollup.model import CATEGORY, DAY, DIRTY, HIST, KAOHE, RATING, STATE, TIER

TABLES = (DAY, TIER, HIST, RATING, CATEGORY, KAOHE)

C = CASES
E = EVENTS
N: sa.Table = Node.__table__  # type: ignore[attr-defined]
# Histogram buckets grow by 4 %: a median read from them is within 2 % of the exact one.
BUCKET_RATIO = 1.04
_LOG_RATIO = math.log(BUCKET_RATIO)
_QUARTER = 900
_STORE_BATCH = 20  # villages swapped in per write transaction


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration (anything under a second falls in bucket 0)."""
    return max(0, int(math.log(max(seconds, 1.0)) / _LOG_RATIO))


def bucket_value(bucket: int) -> float:
    """The duration a bucket stands for: its geometric middle."""
    return math.exp((bucket + 0.5) * _LOG_RATIO)


def local_day(moment: datetime, tz: tzinfo) -> date:
    return as_utc(moment).astimezone(tz).date()


def day_start(day: date, tz: tzinfo) -> datetime:
    """The UTC instant at which a local day begins."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _quarter(moment: datetime) -> datetime:
    # A quarter hour always lies within one local day, whatever the zone's offset.
    ts = as_utc(moment).timestamp()
    return datetime.fromtimestamp(ts - ts % _QUARTER, UTC)


# Events that change none of the figures the rollups keep (the commonest one, nags, included).
_NOT_IN_FIGURES = frozenset({"nagged", "refused", "added", "categorized", "holder_unreachable",
                             "resident_unreachable"})


def on_events(session: Session, events: Sequence[CaseEvent]) -> int:
    """The rollups' subscription to case events (core/cases/events.py): mark the village-days
    the events touch; writes no outbox row."""
    marks: set[tuple[str, datetime]] = set()
    for e in events:
        if e.kind in _NOT_IN_FIGURES:
            continue
        case = session.get(Case, e.case_id)  # in the identity map: the action just changed it
        if case is None:
            continue
        marks |= {(case.node_path, _quarter(case.opened_at)), (case.node_path, _quarter(e.at))}
    rows = [{"node_path": p, "at": q} for p, q in sorted(marks)]
    if rows:
        session.execute(sa.insert(DIRTY), rows)
    return 0


def mark_dirty(conn: Any, *, node_path: str, moments: Iterable[datetime]) -> None:
    """Note that the village-days of these moments under this 邻 need recomputing."""
    rows = [{"node_path": node_path, "at": q} for q in sorted({_quarter(m) for m in moments})]
    if rows:
        conn.execute(sa.insert(DIRTY), rows)


@dataclass
class RefreshResult:
    marks: int = 0
    villages: int = 0
    village_days: int = 0
    rebuilt: bool = False
    seconds: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass
class _Acc:
    """The sums of one village-day while it is being recomputed."""

    day: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    tier: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(
        lambda: defaultdict(int)))
    hist: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    rating: dict[int, list[int]] = field(default_factory=dict)
    category: dict[int, list[int]] = field(default_factory=dict)


def _villages(conn: sa.Connection, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
    """Each 邻 path's village (id, path); paths with no village above them are left out."""
    paths = set(paths)
    ids = {i for p in paths for i in path_ids(p)}
    found: dict[int, str] = {}
    id_list = sorted(ids)
    for i in range(0, len(id_list), 900):
        for r in conn.execute(sa.select(N.c.id, N.c.path).where(
                N.c.id.in_(id_list[i:i + 900]), N.c.level == Level.village.value)):
            found[int(r.id)] = str(r.path)
    out = {}
    for p in paths:
        for i in path_ids(p):
            if i in found:
                out[p] = (i, found[i])
                break
    return out


@dataclass
class VillageDays:
    """One village's rollup rows for the local days first..last, computed, not yet stored."""

    village_id: int
    first: date
    last: date
    rows: dict[str, list[dict[str, Any]]]
    days: int  # village-days that hold cases or escalations


def recompute(conn: sa.Connection, *, village_id: int, village_path: str, first: date,
              last: date, tz: tzinfo) -> int:
    """Recompute and store every rollup row of one village for the local days first..last
    (in the caller's transaction); how many village-days hold cases or escalations."""
    computed = compute(conn, village_id=village_id, village_path=village_path, first=first,
                       last=last, tz=tz)
    store(conn, computed)
    return computed.days


def compute(conn: sa.Connection, *, village_id: int, village_path: str, first: date,
            last: date, tz: tzinfo) -> VillageDays:
    """One village's rollup rows for the local days first..last, from the cases (reads only:
    run it outside the writer, then `store`)."""
    t0, t1 = day_start(first, tz), day_start(last + timedelta(days=1), tz)
    low, high = subtree_bounds(village_path)
    in_village = sa.and_(C.c.node_path >= low, C.c.node_path < high)
    acc: dict[date, _Acc] = defaultdict(_Acc)
    for r in conn.execute(sa.select(
            C.c.opened_at, C.c.state, C.c.first_reply_at, C.c.first_reply_role,
            C.c.first_reply_on_time, C.c.closed_at, C.c.rating, C.c.holder_id,
            C.c.holder_role, C.c.category_id)
            .where(in_village, C.c.opened_at >= t0, C.c.opened_at < t1)):
        opened = as_utc(r.opened_at)
        a = acc[local_day(opened, tz)]
        d = a.day
        d["received"] += 1
        cat = a.category.setdefault(int(r.category_id or 0), [0, 0])
        cat[0] += 1
        if r.state == State.closed.value:
            d["closed"] += 1
            cat[1] += 1
            if r.closed_at is not None:
                d["to_close"] += 1
                a.hist["close", bucket_of((as_utc(r.closed_at) - opened).total_seconds())] += 1
        elif r.state == State.rejected.value:
            d["rejected"] += 1
        elif r.state == State.merged.value:
            d["merged"] += 1
        if r.first_reply_on_time is not None:
            d["judged"] += 1
            d["on_time" if r.first_reply_on_time else "late_replies"] += 1
        if r.first_reply_at is not None:
            a.hist["reply", bucket_of((as_utc(r.first_reply_at) - opened).total_seconds())] += 1
            if r.first_reply_role:
                t = a.tier[r.first_reply_role]
                t["replied"] += 1
                t["on_time"] += 1 if r.first_reply_on_time is True else 0
        if r.rating is not None:
            d["rating_sum"] += int(r.rating)
            d["rated"] += 1
            # Credited to whoever resolved the case (core.cases.stats._leader_ratings).
            if r.holder_role == Role.neighbor_leader.value and r.holder_id is not None:
                pr = a.rating.setdefault(int(r.holder_id), [0, 0])
                pr[0] += 1
                pr[1] += int(r.rating)
    escalated = sa.and_(E.c.kind == "escalated", E.c.role.is_not(None))
    for ev in conn.execute(
        sa.select(E.c.role, E.c.at, E.c.actor_id, E.c.from_state, C.c.opened_at)
        .join(C, C.c.id == E.c.case_id)
        .where(in_village, escalated, sa.or_(
            sa.and_(C.c.opened_at >= t0, C.c.opened_at < t1),
            sa.and_(E.c.at >= t0, E.c.at < t1)))
    ):
        opened, at = as_utc(ev.opened_at), as_utc(ev.at)
        if t0 <= at < t1:
            acc[local_day(at, tz)].tier[ev.role]["escalations"] += 1
        # A tier that let its reply deadline pass (the sweep moved the case on) missed it.
        if t0 <= opened < t1 and ev.actor_id is None and ev.from_state == State.open.value:
            acc[local_day(opened, tz)].tier[ev.role]["timeouts"] += 1

    key = {"village_id": village_id, "village_path": village_path}
    day_rows, tier_rows, hist_rows, rating_rows, cat_rows = [], [], [], [], []
    for day, a in acc.items():
        if a.day:
            day_rows.append({**key, "day": day, **{k: a.day.get(k, 0) for k in (
                "received", "closed", "rejected", "merged", "judged", "on_time", "late_replies",
                "to_close", "rating_sum", "rated")}})
        for role, t in a.tier.items():
            tier_rows.append({**key, "day": day, "role": role, **{k: t.get(k, 0) for k in (
                "replied", "on_time", "timeouts", "escalations")}})
        hist_rows += [{**key, "day": day, "kind": k, "bucket": b, "n": n}
                      for (k, b), n in a.hist.items()]
        rating_rows += [{**key, "day": day, "person_id": p, "rated": v[0], "rating_sum": v[1]}
                        for p, v in a.rating.items()]
        cat_rows += [{**key, "day": day, "category_id": k, "received": v[0], "closed": v[1]}
                     for k, v in a.category.items()]
    return VillageDays(village_id, first, last, {
        DAY.name: day_rows, TIER.name: tier_rows, HIST.name: hist_rows,
        RATING.name: rating_rows, CATEGORY.name: cat_rows,
        KAOHE.name: kaohe_rows(conn, village_id=village_id, village_path=village_path,
                               first=first, last=last, tz=tz)}, len(acc))


def store(conn: sa.Connection, computed: VillageDays) -> None:
    """Replace the village's rollup rows for those days with the computed ones."""
    for table in TABLES:
        # rollup_kaohe is kept by month: the months the days touch were recomputed whole.
        col, first = ((table.c.month, month_of(computed.first)) if table is KAOHE
                      else (table.c.day, computed.first))
        conn.execute(sa.delete(table).where(
            table.c.village_id == computed.village_id, col >= first, col <= computed.last))
        rows = computed.rows[table.name]
        if rows:
            conn.execute(sa.insert(table), rows)


def _state(conn: sa.Connection) -> sa.Row[Any]:
    row = conn.execute(sa.select(STATE).where(STATE.c.id == 1)).first()
    if row is None:
        conn.execute(sa.insert(STATE).values(id=1, rebuild=True))
        row = conn.execute(sa.select(STATE).where(STATE.c.id == 1)).one()
    return row


def refresh(engine: Engine, *, clock: Clock, tz: tzinfo, max_marks: int = 20_000,
            apart_from: int | None = None) -> RefreshResult:
    """Recompute the village-days marked dirty (or rebuild everything when asked to).

    The reading happens outside the writer; the writer is held only to swap the computed rows
    in, a few villages at a time, so webhooks and the sweep wait milliseconds, not the whole
    refresh. A change that commits meanwhile leaves a mark of its own, which stays for the
    next refresh. `apart_from`: a rebuild of a database of at least that many cases reads in
    a child process (core/rollup/apart.py)."""
    started = clock.now()
    with _refresher(engine) as mine:
        if not mine:
            return RefreshResult()
        with engine.connect() as conn:
            state = conn.execute(sa.select(STATE.c.rebuild).where(STATE.c.id == 1)).first()
            if state is None or state.rebuild:
                conn.rollback()
                return _rebuild(engine, clock=clock, tz=tz, apart_from=apart_from)
            marks = conn.execute(sa.select(DIRTY.c.id, DIRTY.c.node_path, DIRTY.c.at)
                                 .order_by(DIRTY.c.id).limit(max_marks)).all()
            result, computed = _compute_marks(conn, marks, tz)
            conn.rollback()
        for i in range(0, len(computed), _STORE_BATCH):
            with write_transaction(engine) as conn:
                for c in computed[i:i + _STORE_BATCH]:
                    store(conn, c)
        with write_transaction(engine) as conn:
            ids = [m.id for m in marks]
            for i in range(0, len(ids), 900):
                conn.execute(sa.delete(DIRTY).where(DIRTY.c.id.in_(ids[i:i + 900])))
            _state(conn)
            conn.execute(sa.update(STATE).where(STATE.c.id == 1).values(refreshed_at=started))
    return result


def _compute_marks(conn: sa.Connection, marks: Sequence[sa.Row[Any]], tz: tzinfo
                   ) -> tuple[RefreshResult, list[VillageDays]]:
    result = RefreshResult(marks=len(marks))
    computed: list[VillageDays] = []
    if not marks:
        return result, computed
    villages = _villages(conn, (m.node_path for m in marks))
    spans: dict[tuple[int, str], set[date]] = defaultdict(set)
    for m in marks:
        v = villages.get(m.node_path)
        if v is not None:
            spans[v].add(local_day(m.at, tz))
    for (vid, vpath), days in spans.items():
        # Contiguous runs, so that two far-apart days do not recompute a year between them.
        for first, last in _runs(sorted(days)):
            c = compute(conn, village_id=vid, village_path=vpath, first=first, last=last,
                        tz=tz)
            result.village_days += c.days
            computed.append(c)
    result.villages = len(spans)
    return result, computed


def _runs(days: list[date]) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    for d in days:
        if out and (d - out[-1][1]).days <= 1:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def rebuild(engine: Engine, *, clock: Clock, tz: tzinfo, apart_from: int | None = None
            ) -> RefreshResult:
    """Recompute every village over every day that holds cases (skipped when another
    refresher is at work)."""
    with _refresher(engine) as mine:
        if not mine:
            return RefreshResult()
        return _rebuild(engine, clock=clock, tz=tz, apart_from=apart_from)


def _rebuild(engine: Engine, *, clock: Clock, tz: tzinfo, apart_from: int | None = None
             ) -> RefreshResult:
    # Each village is read outside the writer (and, apart, in a child process) and swapped in
    # by a write of its own.
    from core.rollup import apart as child

    started = clock.now()
    result = RefreshResult(rebuilt=True)
    with engine.connect() as conn:
        cases = conn.execute(sa.select(sa.func.min(C.c.opened_at),
                                       sa.func.max(C.c.opened_at))).one()
        size = conn.execute(sa.select(sa.func.max(C.c.id))).scalar() or 0
        last_event = conn.execute(sa.select(sa.func.max(E.c.at))).scalar()
        villages = conn.execute(sa.select(N.c.id, N.c.path)
                                .where(N.c.level == Level.village.value)
                                .order_by(N.c.path)).all()
    moments = [as_utc(m) for m in (*cases, last_event) if m is not None]
    if moments:
        first, last = local_day(min(moments), tz), local_day(max(moments), tz)
        pool = child.pool_for(engine, cases=size, apart_from=apart_from)
        try:
            for vid, vpath in villages:
                computed = child.read_village(pool, engine, village_id=vid, village_path=vpath,
                                              first=first, last=last, tz=tz)
                with write_transaction(engine) as conn:
                    for table in TABLES:
                        # Days outside first..last too: nothing may survive from an older build.
                        conn.execute(sa.delete(table).where(table.c.village_id == vid))
                    store(conn, computed)
                result.village_days += computed.days
        finally:
            if pool is not None:
                pool.shutdown()
        result.villages = len(villages)
    with write_transaction(engine) as conn:
        _state(conn)
        # Marks made before the rebuild started are covered by it; later ones stay for the
        # next refresh (recomputing a village-day twice is harmless).
        conn.execute(sa.update(STATE).where(STATE.c.id == 1).values(
            rebuild=False, refreshed_at=started))
    result.seconds = (clock.now() - started).total_seconds()
    return result


def request_rebuild(engine: Engine) -> None:
    """Have the next refresh rebuild every rollup from the cases."""
    with write_transaction(engine) as conn:
        _state(conn)
        conn.execute(sa.update(STATE).where(STATE.c.id == 1).values(rebuild=True))


def refreshed_at(conn: sa.Connection) -> datetime | None:
    row = conn.execute(sa.select(STATE.c.refreshed_at).where(STATE.c.id == 1)).scalar()
    return as_utc(row) if row is not None else None
