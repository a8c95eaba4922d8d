"""The warning map one level below a node, and the level below that inside each tile, from one
grouped pass over the subtree's unfinished cases (the state index alone, no table reads)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.lists import overdue_clause
from core.cases.model import CASES, WARNINGS, State
from core.cases.stats import NodeStatus, Thresholds, WarningLevel, warning_level
from core.hierarchy.model import Level, Node
from core.hierarchy.queries import NodeRef
from core.hierarchy.tree import path_ids, subtree_bounds

C = CASES
W = WARNINGS
N: sa.Table = Node.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Mini:
    """A grandchild's colour, drawn inside its parent's tile (read only: its hysteresis memory
    is written when someone drills down to it)."""

    node: NodeRef
    unresolved: int
    overdue: int
    level: WarningLevel


@dataclass(frozen=True)
class MapBelow:
    own: NodeStatus
    children: list[NodeStatus]
    inside: dict[int, list[Mini]]  # child id → its children's colours, in code order


def _grandchildren(session: Session, parents: list[NodeRef],
                   levels: Iterable[Level]) -> list[NodeRef]:
    out = []
    names = sorted(lv.value for lv in levels)
    for i in range(0, len(parents), 900):
        for r in session.execute(
            sa.select(N.c.id, N.c.code, N.c.level, N.c.name, N.c.path, N.c.parent_id)
            .where(N.c.parent_id.in_([p.id for p in parents[i:i + 900]]),
                   N.c.level.in_(names))
            .order_by(N.c.code)
        ):
            out.append(NodeRef(int(r.id), r.code, Level(r.level), r.name, r.path, r.parent_id))
    return out


def _stored(session: Session, ids: list[int]) -> dict[int, WarningLevel]:
    out: dict[int, WarningLevel] = {}
    for i in range(0, len(ids), 900):
        out.update((int(r.node_id), WarningLevel[r.level]) for r in session.execute(
            sa.select(W.c.node_id, W.c.level).where(W.c.node_id.in_(ids[i:i + 900]))))
    return out


def map_below(session: Session, *, node: NodeRef, children: list[NodeRef], now: datetime,
              thresholds: Thresholds, levels: Iterable[Level],
              changed: list[tuple[int, WarningLevel]]) -> MapBelow:
    """Colours of the node, of its `children` and of their children. Colours that moved are
    appended to `changed` (core.cases.stats.remember_levels stores them) rather than written,
    so that drawing the map stays a read."""
    levels = list(levels)
    kids = _grandchildren(session, children, levels)
    depth = len(path_ids(node.path))  # a child's id sits here in a case's path
    low, high = subtree_bounds(node.path)
    home = C.c.node_path.concat("")  # grouping by the column would pick the path index
    totals = [0, 0]
    per: dict[int, list[int]] = {}
    for path, n, late in session.execute(
        sa.select(home, sa.func.count(), sa.func.count().filter(overdue_clause(now)))
        .where(C.c.node_path >= low, C.c.node_path < high,
               C.c.state.in_([State.open.value, State.accepted.value]))
        .group_by(home)
    ):
        n, late = int(n), int(late or 0)
        totals[0] += n
        totals[1] += late
        ids = path_ids(path)
        for i in ids[depth:depth + 2]:
            acc = per.setdefault(i, [0, 0])
            acc[0] += n
            acc[1] += late
    stored = _stored(session, [node.id, *(k.id for k in children), *(k.id for k in kids)])

    def status(n: NodeRef, u: int, o: int) -> NodeStatus:
        previous = stored.get(n.id)
        level = warning_level(unresolved=u, overdue=o, thresholds=thresholds,
                              previous=previous)
        if level is not previous:
            changed.append((n.id, level))
        return NodeStatus(n, u, o, level, previous)

    inside: dict[int, list[Mini]] = {}
    for k in kids:
        u, o = per.get(k.id, (0, 0))
        level = warning_level(unresolved=u, overdue=o, thresholds=thresholds,
                              previous=stored.get(k.id))
        inside.setdefault(k.parent_id or 0, []).append(Mini(k, u, o, level))
    return MapBelow(
        own=status(node, totals[0], totals[1]),
        children=[status(k, *per.get(k.id, (0, 0))) for k in children],
        inside=inside,
    )
