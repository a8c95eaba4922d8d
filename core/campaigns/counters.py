"""The per-node counters of a campaign (campaign_count): built in a few INSERT … SELECT
statements when the campaign starts, then moved by one household at a time as 邻长 mark, so
the board reads a node and its children, never the items beneath them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from core.campaigns.model import COUNTS, TOTAL
from core.hierarchy.tree import path_ids

# Bottom up: each level's counters are summed into its parents.
_LEVELS_UP = ("neighborhood", "group", "area", "village", "town")


def build(session: Session, *, campaign_id: int, root_id: int) -> None:
    """Household totals of every node from the 邻 up to the campaign's node."""
    session.execute(sa.text(
        "INSERT INTO campaign_count (campaign_id, node_id, outcome, n)"
        " SELECT :c, node_id, :t, COUNT(*) FROM campaign_item WHERE campaign_id = :c"
        " GROUP BY node_id"), {"c": campaign_id, "t": TOTAL})
    for level in _LEVELS_UP:
        session.execute(sa.text(
            "INSERT INTO campaign_count (campaign_id, node_id, outcome, n)"
            " SELECT :c, n.parent_id, :t, SUM(k.n) FROM campaign_count k"
            " JOIN node n ON n.id = k.node_id"
            " WHERE k.campaign_id = :c AND k.outcome = :t AND n.level = :lv AND n.id <> :root"
            " AND n.parent_id IS NOT NULL GROUP BY n.parent_id"),
            {"c": campaign_id, "t": TOTAL, "lv": level, "root": root_id})


def chain(node_path: str, root_id: int) -> list[int]:
    """The node and its ancestors up to the campaign's node (the counters one mark moves)."""
    ids = path_ids(node_path)
    return ids[ids.index(root_id):] if root_id in ids else ids[-1:]


def move(session: Session, *, campaign_id: int, node_ids: list[int], old: int | None,
         new: int | None) -> None:
    """One household leaves outcome `old` (None: unmarked, TOTAL: joins) for `new`."""
    if old == new:
        return
    if old is not None:
        session.execute(sa.update(COUNTS).where(
            COUNTS.c.campaign_id == campaign_id, COUNTS.c.node_id.in_(node_ids),
            COUNTS.c.outcome == old).values(n=COUNTS.c.n - 1))
    if new is None:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(COUNTS).values([{"campaign_id": campaign_id, "node_id": n, "outcome": new,
                                   "n": 1} for n in node_ids])
    session.execute(stmt.on_conflict_do_update(
        index_elements=["campaign_id", "node_id", "outcome"], set_={"n": COUNTS.c.n + 1}))


def of_nodes(session: Session, *, campaign_id: int, node_ids: list[int]) -> \
        dict[int, dict[int, int]]:
    """node id → {outcome (TOTAL for the household total): count}."""
    out: dict[int, dict[int, int]] = {n: {} for n in node_ids}
    rows = session.execute(sa.select(COUNTS.c.node_id, COUNTS.c.outcome, COUNTS.c.n).where(
        COUNTS.c.campaign_id == campaign_id, COUNTS.c.node_id.in_(node_ids)))
    for node_id, outcome, n in rows:
        out[node_id][outcome] = n
    return out
