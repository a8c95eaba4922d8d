"""The progress board's numbers: a node and each of its children, households total / done /
by outcome / not yet and the share done, read from the counters (never from the items), and
on a 邻 the 邻长's own list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from core.campaigns import counters
from core.campaigns.marking import Item, items_of
from core.campaigns.model import TOTAL, Campaign
from core.clock import as_utc
from core.errors import InvalidInput
from core.hierarchy.model import Level
from core.hierarchy.queries import NodeRef, children, node_by_id


@dataclass(frozen=True)
class Row:
    node: NodeRef
    total: int
    by_outcome: tuple[int, ...]

    @property
    def done(self) -> int:
        return sum(self.by_outcome)

    @property
    def not_yet(self) -> int:
        return max(0, self.total - self.done)

    @property
    def pct(self) -> float | None:
        return round(100.0 * self.done / self.total, 1) if self.total else None


@dataclass(frozen=True)
class Board:
    campaign: Campaign
    own: Row
    children: list[Row]
    items: list[Item]  # on a 邻: its households
    colour_of: dict[int, str]


def colour(row: Row, *, elapsed: float) -> str:
    """Like the warning map: green on schedule, yellow, orange, red the further behind the
    share of time gone (`elapsed`, 0…1) the share done is."""
    if not row.total or row.done >= row.total:
        return "green"
    behind = elapsed - row.done / row.total
    if elapsed >= 1.0:
        return "red"
    if behind <= 0:
        return "green"
    return "yellow" if behind < 0.2 else "orange" if behind < 0.4 else "red"


def elapsed_share(c: Campaign, now: datetime) -> float:
    start, end = as_utc(c.started_at), as_utc(c.deadline_at)
    span = (end - start).total_seconds()
    return 1.0 if span <= 0 else min(1.0, max(0.0, (now - start).total_seconds() / span))


def board(s: Session, *, campaign: Campaign, node: NodeRef, now: datetime) -> Board:
    """The board at a node inside the campaign's subtree."""
    root = node_by_id(s, campaign.node_id)
    if not root.contains(node):
        raise InvalidInput("campaign_node_outside", name=node.name)
    assert campaign.id is not None
    kids = [k for k in children(s, node) if k.level is not Level.department]
    got = counters.of_nodes(s, campaign_id=campaign.id, node_ids=[node.id, *[k.id for k in kids]])
    width = len(campaign.outcomes)

    def row(n: NodeRef) -> Row:
        c = got.get(n.id, {})
        return Row(n, c.get(TOTAL, 0), tuple(c.get(i, 0) for i in range(width)))

    rows = [row(k) for k in kids]
    rows = [r for r in rows if r.total]  # a child with no households is not in the campaign
    items = items_of(s, campaign_id=campaign.id, node_ids=[node.id]) \
        if node.level is Level.neighborhood else []
    share = elapsed_share(campaign, now)
    own = row(node)
    colours = {r.node.id: colour(r, elapsed=share) for r in [own, *rows]}
    return Board(campaign, own, rows, items, colours)
