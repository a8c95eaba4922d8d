"""A 邻长 at a door: one household, one outcome (a note or photo optional), saved at once;
and what the registry learns from it (已搬离, 有新增人员)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from core.campaigns import counters, events, registry
from core.campaigns.model import (
    ITEMS,
    MOVED,
    NEWCOMER,
    Campaign,
    CampaignEventKind,
    CampaignItem,
    Newcomer,
)
from core.campaigns.services import check_open, load, may_mark
from core.clock import Clock
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.hierarchy.queries import NodeRef, actor, node_by_id
from core.hierarchy.tree import normalize_phone

NOTE_MAX = 1000


@dataclass(frozen=True)
class Item:
    """One household as a checklist shows it."""

    id: int
    node_id: int
    address: str
    outcome: int | None
    note: str | None


def _item(s: Session, item_id: int, *, lock: bool) -> CampaignItem:
    q = sa.select(CampaignItem).where(ITEMS.c.id == item_id)
    if lock:
        q = q.with_for_update()
    item = s.execute(q).scalars().first()
    if item is None:
        raise NotFound("campaign_item_unknown", item=item_id)
    return item


def checked(s: Session, *, item_id: int, person_id: int, lock: bool = True
            ) -> tuple[CampaignItem, Campaign, NodeRef]:
    """The item, its campaign and its 邻, once the campaign is open and the item theirs."""
    item = _item(s, item_id, lock=lock)
    c = load(s, item.campaign_id)
    check_open(c)
    node = node_by_id(s, item.node_id)
    if not may_mark(actor(s, person_id), node):
        raise PermissionDenied("campaign_not_yours", name=node.name)
    return item, c, node


def mark(s: Session, *, item_id: int, outcome: int, person_id: int, clock: Clock,
         note: str | None = None) -> CampaignItem:
    """Give a household an outcome (a second press corrects the first)."""
    item, c, node = checked(s, item_id=item_id, person_id=person_id)
    if not 0 <= outcome < len(c.outcomes):
        raise InvalidInput("campaign_outcome_unknown", outcome=outcome)
    if c.outcomes[outcome] == NEWCOMER:
        raise InvalidInput("campaign_newcomer_needs_name")
    _set(s, item, c, node, outcome, person_id, clock)
    if note is not None:
        set_note(s, item=item, note=note)
    return item


def _set(s: Session, item: CampaignItem, c: Campaign, node: NodeRef, outcome: int,
         person_id: int, clock: Clock) -> None:
    now = clock.now()
    old = item.outcome
    assert c.id is not None
    counters.move(s, campaign_id=c.id, node_ids=counters.chain(node.path, c.node_id),
                  old=old, new=outcome)
    was_moved = old is not None and c.outcomes[old] == MOVED
    if c.outcomes[outcome] == MOVED and not was_moved:
        registry.mark_moved(s, node_id=item.node_id, address=item.address, now=now,
                            person_id=item.person_id)
    elif was_moved and c.outcomes[outcome] != MOVED:
        registry.unmark_moved(s, node_id=item.node_id, address=item.address,
                              person_id=item.person_id)
    item.outcome, item.marked_by, item.marked_at = outcome, person_id, now


def set_note(s: Session, *, item: CampaignItem, note: str | None = None,
             photo: str | None = None) -> None:
    if note is not None:
        note = note.strip()
        if len(note) > NOTE_MAX:
            raise InvalidInput("campaign_note_long", most=NOTE_MAX)
        item.note = note or None
    if photo is not None:
        item.photo = photo


def note(s: Session, *, item_id: int, person_id: int, text: str | None,
         photo: str | None = None) -> CampaignItem:
    """A note or a photo on a household already marked or not."""
    item, _, _ = checked(s, item_id=item_id, person_id=person_id)
    if not (text or "").strip() and not photo:
        raise InvalidInput("campaign_note_empty")
    set_note(s, item=item, note=text if (text or "").strip() else None, photo=photo)
    return item


def newcomer(s: Session, *, item_id: int, person_id: int, name: str, phone: str | None,
             clock: Clock) -> Newcomer:
    """有新增人员: the household is marked and the new person waits for the 组长."""
    item, c, node = checked(s, item_id=item_id, person_id=person_id)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("campaign_newcomer_name")
    norm = normalize_phone(phone) if phone else None
    if phone and norm is None:
        raise InvalidInput("campaign_newcomer_phone", phone=phone[:20])
    if NEWCOMER not in c.outcomes:
        raise InvalidInput("campaign_outcome_unknown", outcome=NEWCOMER)
    _set(s, item, c, node, c.outcomes.index(NEWCOMER), person_id, clock)
    assert c.id is not None and item.id is not None
    n = Newcomer(campaign_id=c.id, item_id=item.id, node_id=item.node_id, name=name,
                 phone=norm, reported_by=person_id, created_at=clock.now())
    s.add(n)
    s.flush()
    events.record(s, campaign_id=c.id, kind=CampaignEventKind.newcomer, at=clock.now(),
                  actor_id=person_id, detail={"newcomer": n.id})
    events.publish(s)
    return n


def items_of(s: Session, *, campaign_id: int, node_ids: list[int]) -> list[Item]:
    """A checklist: the households of these 邻, in address order."""
    q = (sa.select(ITEMS.c.id, ITEMS.c.node_id, ITEMS.c.address, ITEMS.c.outcome,
                   ITEMS.c.note)
         .where(ITEMS.c.campaign_id == campaign_id, ITEMS.c.node_id.in_(node_ids))
         .order_by(ITEMS.c.node_id, ITEMS.c.address, ITEMS.c.id))
    return [Item(*r) for r in s.execute(q)]
