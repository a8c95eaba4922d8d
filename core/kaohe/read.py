"""The monthly 考核 and the yearly 最美邻长 shortlist, read from the rollups (rollup_kaohe).

Every read is limited to one node's subtree by the villages' paths; a whole month (or year)
is whole local days, so the rollups answer for every level. As fresh as the last refresh."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.errors import InvalidInput
from core.hierarchy.model import Level, Node, Person, Role
from core.hierarchy.queries import NodeRef, subtree
from core.hierarchy.tree import path_ids, subtree_bounds
from core.kaohe.measures import COUNTERS, Kaohe
from core.notices import survey
from core.notices.survey import Result
from core.rollup.kaohe import next_month
from core.rollup.model import KAOHE
from core.rollup.refresh import refreshed_at

K = KAOHE
N: sa.Table = Node.__table__  # type: ignore[attr-defined]
P: sa.Table = Person.__table__  # type: ignore[attr-defined]
LEADER = Role.neighbor_leader.value
TIER_ORDER = ("neighbor_leader", "group_leader", "area_leader", "secretary", "department",
              "admin")


def month_span(month: str) -> tuple[date, date]:
    """`2026-03` → the local days [2026-03-01, 2026-04-01); InvalidInput for anything else."""
    try:
        y, m = (int(x) for x in month.split("-"))
        first = date(y, m, 1)
    except ValueError:
        raise InvalidInput("kaohe_bad_month", month=month) from None
    if len(month) != 7:
        raise InvalidInput("kaohe_bad_month", month=month)
    return first, date(y + m // 12, m % 12 + 1, 1)


def year_span(year: int) -> tuple[date, date]:
    if not 2000 <= year <= 2100:
        raise InvalidInput("kaohe_bad_year", year=year)
    return date(year, 1, 1), date(year + 1, 1, 1)


@dataclass(frozen=True)
class Unit:
    """What a 考核 row is about: a node (town, village, department) or a person."""

    kind: str  # "node" | "dept" | "person"
    id: int
    name: str
    code: str = ""
    place: str = ""  # a person's village (the one with most of their cases)
    town: NodeRef | None = None


@dataclass
class Row:
    unit: Unit
    k: Kaohe
    rank: int | None = None


@dataclass
class Ranking:
    """Ranked rows best first; `too_few`: fewer than the minimum cases, listed, not ranked."""

    ranked: list[Row] = field(default_factory=list)
    too_few: list[Row] = field(default_factory=list)


def rank_rows(rows: Iterable[Row], min_cases: int) -> Ranking:
    out = Ranking()
    for r in rows:
        (out.ranked if r.k.received >= max(min_cases, 1) else out.too_few).append(r)
    out.ranked.sort(key=lambda r: (-r.k.score, -r.k.received, r.unit.code, r.unit.id))
    out.too_few.sort(key=lambda r: (-r.k.received, r.unit.code, r.unit.id))
    for i, r in enumerate(out.ranked, 1):
        r.rank = i
    return out


def _months(first: date, stop: date) -> list[date]:
    out = [first.replace(day=1)]
    while next_month(out[-1]) < stop:
        out.append(next_month(out[-1]))
    return out


def _where(kind: str, scope: NodeRef, first: date, stop: date) -> sa.ColumnElement[bool]:
    # The months as equalities, not a range: the index then narrows on the subtree's paths
    # too, and a district reads only its own villages' rows.
    low, high = subtree_bounds(scope.path)
    return sa.and_(K.c.kind == kind, K.c.month.in_(_months(first, stop)),
                   K.c.village_path >= low, K.c.village_path < high)


_SUMS = [sa.func.sum(K.c[k]).label(k) for k in COUNTERS]


def _kaohe(r: Any) -> Kaohe:
    return Kaohe.of(r)


@dataclass
class MonthReport:
    scope: NodeRef
    first: date
    stop: date
    total: Kaohe
    tiers: list[tuple[str, Kaohe]]
    towns: Ranking
    villages: Ranking
    departments: Ranking
    leaders: Ranking
    as_of: datetime | None
    # 满意度测评 of surveys started in the month: per 邻长, and those flagged 需调整.
    survey: dict[int, Result] = field(default_factory=dict)
    adjust: list[Row] = field(default_factory=list)


def owner_of(vpath: str, paths: dict[str, NodeRef]) -> NodeRef | None:
    ids = path_ids(vpath)
    for n in range(len(ids), 0, -1):
        found = paths.get("/" + "/".join(map(str, ids[:n])) + "/")
        if found is not None:
            return found
    return None


def village_sums(session: Session, *, scope: NodeRef, first: date, stop: date
                 ) -> dict[str, Kaohe]:
    """Each village's sums (by path) in the scope: the base of the town and village rankings."""
    return {str(r.village_path): _kaohe(r) for r in session.execute(
        sa.select(K.c.village_path, *_SUMS).where(_where("node", scope, first, stop))
        .group_by(K.c.village_path))}


def nodes(session: Session, *, scope: NodeRef, level: Level, first: date, stop: date,
          min_cases: int, sums: dict[str, Kaohe] | None = None) -> Ranking:
    """Towns or villages in the scope, ranked; nodes without a case are listed too."""
    at_level = {n.path: n for n in subtree(session, scope, levels=[level])}
    by_village = sums if sums is not None else village_sums(
        session, scope=scope, first=first, stop=stop)
    acc: dict[str, Kaohe] = defaultdict(Kaohe)
    for vpath, k in by_village.items():
        owner = owner_of(vpath, at_level)
        if owner is not None:
            acc[owner.path].add(k.__dict__)
    return rank_rows((Row(Unit("node", n.id, n.name, n.code), acc.get(p, Kaohe()))
                      for p, n in at_level.items()), min_cases)


def departments(session: Session, *, scope: NodeRef, first: date, stop: date,
                min_cases: int) -> Ranking:
    """The departments that took whistled cases of the scope, ranked on those cases."""
    rows = session.execute(sa.select(K.c.unit_id, N.c.code, N.c.name, *_SUMS)
                           .join(N, N.c.id == K.c.unit_id)
                           .where(_where("dept", scope, first, stop))
                           .group_by(K.c.unit_id, N.c.code, N.c.name)).all()
    return rank_rows((Row(Unit("dept", int(r.unit_id), r.name, r.code), _kaohe(r)) for r in rows),
                 min_cases)


def leaders(session: Session, *, scope: NodeRef, first: date, stop: date, min_cases: int,
            ranked_only: bool = False) -> Ranking:
    """The 邻长 scorecard: every 邻长 with cases first routed to them, ranked
    (`ranked_only`: those under the minimum stay on the database, only counted)."""
    where = sa.and_(_where("person", scope, first, stop), K.c.role == LEADER)
    full = (sa.select(K.c.unit_id, sa.func.min(K.c.village_path).label("vpath"), *_SUMS)
            .where(where).group_by(K.c.unit_id))
    if not ranked_only:
        return rank_rows(people_rows(session, session.execute(full).all()), min_cases)
    # A city's month has tens of thousands of 邻长 with a case or two: they are only counted,
    # and only those with enough cases are summed in full.
    enough = max(min_cases, 1)
    everyone = int(session.execute(sa.select(sa.func.count(sa.distinct(K.c.unit_id)))
                                   .where(where)).scalar_one())
    ids = [int(x) for x in session.execute(
        sa.select(K.c.unit_id).where(where).group_by(K.c.unit_id)
        .having(sa.func.sum(K.c.received) >= enough)).scalars()]
    rows: list[Any] = []
    for i in range(0, len(ids), 900):
        rows += session.execute(full.where(K.c.unit_id.in_(ids[i:i + 900]))).all()
    out = rank_rows(people_rows(session, rows), min_cases)
    out.too_few = [Row(Unit("person", 0, ""), Kaohe())] * (everyone - len(ids))
    return out


def people_rows(session: Session, rows: Sequence[Any]) -> list[Row]:
    """Rows of persons with their names and villages (and towns), looked up in chunks (a
    city's XLSX has every 邻长: each village's place is worked out once, not per person)."""
    pids = [int(r.unit_id) for r in rows]
    names: dict[int, str] = {}
    for i in range(0, len(pids), 5000):
        names.update((int(x.id), str(x.name)) for x in session.execute(
            sa.select(P.c.id, P.c.name).where(P.c.id.in_(pids[i:i + 5000]))))
    vpaths = {str(r.vpath) for r in rows}
    ids = sorted({i for p in vpaths for i in path_ids(p)})
    found: dict[int, Any] = {}
    for i in range(0, len(ids), 900):
        found.update((int(x.id), x) for x in session.execute(
            sa.select(N.c.id, N.c.code, N.c.name, N.c.level, N.c.path, N.c.parent_id)
            .where(N.c.id.in_(ids[i:i + 900]),
                   N.c.level.in_([Level.town.value, Level.village.value]))))
    places: dict[str, tuple[str, NodeRef | None]] = {}
    for vpath in vpaths:
        chain = [found[i] for i in path_ids(vpath) if i in found]
        village = next((x for x in chain if x.level == Level.village.value), None)
        town = next((x for x in chain if x.level == Level.town.value), None)
        places[vpath] = (village.name if village is not None else "",
                         NodeRef(int(town.id), town.code, Level.town, town.name, town.path,
                                 town.parent_id) if town is not None else None)
    out = []
    for r in rows:
        pid = int(r.unit_id)
        place, town_ref = places[str(r.vpath)]
        out.append(Row(Unit("person", pid, names.get(pid, ""), "", place, town_ref),
                       _kaohe(r)))
    return out


def tiers(session: Session, *, scope: NodeRef, first: date, stop: date
          ) -> list[tuple[str, Kaohe]]:
    """Per post the cases were first routed to, bottom of the chain first."""
    rows = session.execute(sa.select(K.c.role, *_SUMS).where(_where("tier", scope, first, stop))
                           .group_by(K.c.role)).all()
    out = [(str(r.role), _kaohe(r)) for r in rows]
    return sorted(out, key=lambda x: (TIER_ORDER.index(x[0]) if x[0] in TIER_ORDER else 99,
                                      x[0]))


@dataclass(frozen=True)
class Adjust:
    """When a 邻长's 测评 says 需调整: a mean under `below` over at least `min_answers`."""

    below: float = 3.0
    min_answers: int = 5


def month_report(session: Session, *, scope: NodeRef, month: str, min_cases: int,
                 all_leaders: bool = False, tz: tzinfo | None = None,
                 adjust: Adjust | None = None) -> MonthReport:
    """The month's 考核 of the scope: totals, tiers, rankings of towns, villages and
    departments, and the 邻长 scorecard (`all_leaders`: also those under the minimum) with
    the 测评 of surveys started in the month (`tz`: the local month; UTC when None)."""
    first, stop = month_span(month)
    tier_rows = tiers(session, scope=scope, first=first, stop=stop)
    total = Kaohe()
    for _, k in tier_rows:
        total.add(k.__dict__)
    big = scope.level in (Level.district, Level.town)
    sums = village_sums(session, scope=scope, first=first, stop=stop) if big else {}
    towns = (nodes(session, scope=scope, level=Level.town, first=first, stop=stop,
                   min_cases=min_cases, sums=sums) if scope.level is Level.district
             else Ranking())
    villages = (nodes(session, scope=scope, level=Level.village, first=first, stop=stop,
                      min_cases=min_cases, sums=sums) if big else Ranking())
    rep = MonthReport(
        scope=scope, first=first, stop=stop, total=total, tiers=tier_rows, towns=towns,
        villages=villages,
        departments=departments(session, scope=scope, first=first, stop=stop,
                                min_cases=min_cases),
        leaders=leaders(session, scope=scope, first=first, stop=stop, min_cases=min_cases,
                        ranked_only=not all_leaders),
        as_of=refreshed_at(session.connection()))
    _with_survey(session, rep, tz or UTC, adjust or Adjust())
    return rep


def _with_survey(session: Session, rep: MonthReport, tz: tzinfo, adjust: Adjust) -> None:
    zone_start = datetime.combine(rep.first, time(0), tzinfo=tz)
    zone_end = datetime.combine(rep.stop, time(0), tzinfo=tz)
    rep.survey = survey.results(session, scope=rep.scope, start=zone_start, end=zone_end)
    flagged = {pid: r for pid, r in rep.survey.items()
               if r.needs_adjusting(below=adjust.below, min_answers=adjust.min_answers)}
    if not flagged:
        return
    known = {r.unit.id: r for r in rep.leaders.ranked + rep.leaders.too_few if r.unit.id}
    missing = [SimpleNamespace(unit_id=pid, vpath=r.node_path, **Kaohe().__dict__)
               for pid, r in flagged.items() if pid not in known]
    rows = [known[pid] for pid in flagged if pid in known] + people_rows(session, missing)
    rep.adjust = sorted(rows, key=lambda r: (flagged[r.unit.id].mean, r.unit.id))


@dataclass
class Shortlist:
    year: int
    towns: list[tuple[NodeRef, list[Row]]]  # per town: its best 邻长, best first
    min_cases: int


def shortlist(session: Session, *, scope: NodeRef, year: int, min_cases: int,
              per_town: int = 3) -> Shortlist:
    """最美邻长: per town in the scope, the `per_town` 邻长 with the best score over the year
    among those with at least `min_cases` cases."""
    first, stop = year_span(year)
    ranked = leaders(session, scope=scope, first=first, stop=stop, min_cases=min_cases,
                     ranked_only=True).ranked
    by_town: dict[int, list[Row]] = defaultdict(list)
    towns: dict[int, NodeRef] = {}
    for r in ranked:
        if r.unit.town is not None and len(by_town[r.unit.town.id]) < per_town:
            by_town[r.unit.town.id].append(r)
            towns[r.unit.town.id] = r.unit.town
    order = sorted(towns.values(), key=lambda n: n.code)
    return Shortlist(year, [(t, by_town[t.id]) for t in order], min_cases)
