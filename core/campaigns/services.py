"""Starting, extending and closing a campaign; who may start one where.

A campaign's households are the distinct addresses of the (not moved) residents under each 邻
of its node, written with one INSERT … SELECT, and its counters with a few more
(core/campaigns/counters.py): a Bozhou-size city is a handful of statements, not 400 k objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.campaigns import counters, events
from core.campaigns.model import (
    CAMPAIGNS,
    DEFAULT_OUTCOMES,
    ITEMS,
    MAX_OUTCOMES,
    TOTAL,
    Campaign,
    CampaignEventKind,
    CampaignItem,
    CampaignState,
)
from core.cases.policy import CasePolicy, out_of_quiet
from core.clock import Clock, as_utc
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Level, Role
from core.hierarchy.queries import Actor, NodeRef, actor, node_by_id, nodes_by_ids
from core.hierarchy.tree import subtree_bounds

TITLE_MAX, ADDRESS_MAX, OUTCOME_MAX = 200, 300, 20


def may_start(who: Actor | None, node: NodeRef) -> bool:
    """An admin on their subtree, a 书记 on their village's; `who` None is the console (and
    the notices relay, which checked its own sender)."""
    if who is None:
        return True
    return who.is_admin_of(node) or any(
        r is Role.secretary and n.contains(node) for r, n in who.posts)


def may_mark(who: Actor, node: NodeRef) -> bool:
    """A household is marked by its 邻's 邻长, a leader above it, or an admin of it."""
    return who.leads(node) or who.is_admin_of(node)


def _outcomes(outcomes: Sequence[str] | None) -> list[str]:
    names = [o.strip() for o in (outcomes or DEFAULT_OUTCOMES)]
    if not 2 <= len(names) <= MAX_OUTCOMES or any(not o or len(o) > OUTCOME_MAX for o in names) \
            or len(set(names)) != len(names):
        raise InvalidInput("campaign_outcomes_bad", most=MAX_OUTCOMES, longest=OUTCOME_MAX)
    return names


def start_campaign(s: Session, *, node_id: int, title: str, instructions: str,
                   outcomes: Sequence[str] | None, deadline: datetime, started_by: int | None,
                   clock: Clock, households: Iterable[tuple[int, str]] | None = None,
                   policy: CasePolicy | None = None, notice_id: int | None = None,
                   persons: Iterable[tuple[int, str, int]] = ()) -> Campaign:
    """Start a campaign on a node: one item per household under each of its 邻 (or only the
    given (邻 node id, address) pairs, and (邻, label, person id) items of people without an
    address), counters for the board, and every 邻长 told; `notice_id` makes it a relay."""
    now = clock.now()
    title = (title or "").strip()
    if not title:
        raise InvalidInput("campaign_title_empty")
    if len(title) > TITLE_MAX:
        raise InvalidInput("campaign_title_long", most=TITLE_MAX)
    if deadline.tzinfo is None:
        raise InvalidInput("campaign_deadline_naive")
    if deadline <= now:
        raise InvalidInput("campaign_deadline_past")
    names = _outcomes(outcomes)
    node = node_by_id(s, node_id)
    if node.level is Level.department:
        raise InvalidInput("campaign_on_department", name=node.name)
    who = actor(s, started_by) if started_by is not None else None
    if not may_start(who, node):
        raise PermissionDenied("campaign_outside", name=node.name)
    pol = policy or CasePolicy()
    c = Campaign(node_id=node.id, title=title, instructions=(instructions or "").strip(),
                 outcomes=names, started_by=started_by, started_at=now, deadline_at=deadline,
                 policy=pol.to_json(), notice_id=notice_id)
    c.next_due_at = first_due(pol, now, deadline)
    s.add(c)
    s.flush()
    assert c.id is not None
    if households is None:
        _all_households(s, c.id, node)
    else:
        _given_households(s, c.id, node, households, persons)
    if not s.execute(sa.select(ITEMS.c.id).where(ITEMS.c.campaign_id == c.id).limit(1)).first():
        raise InvalidInput("campaign_no_households", name=node.name)
    counters.build(s, campaign_id=c.id, root_id=node.id)
    events.record(s, campaign_id=c.id, kind=CampaignEventKind.started, at=now,
                  actor_id=started_by)
    events.publish(s)
    return c


def first_due(policy: CasePolicy, start: datetime, deadline: datetime) -> datetime:
    """Half time (out of quiet hours) while a nag is allowed, else the deadline."""
    if policy.nags_per_tier <= 0:
        return deadline
    return min(out_of_quiet(policy, start + (deadline - start) / 2), deadline)


def _all_households(s: Session, campaign_id: int, node: NodeRef) -> None:
    low, high = subtree_bounds(node.path)
    s.execute(sa.text(
        "INSERT INTO campaign_item (campaign_id, node_id, address)"
        " SELECT DISTINCT :c, x.node_id, x.address FROM post x JOIN node n ON n.id = x.node_id"
        " WHERE n.path >= :low AND n.path < :high AND n.level = 'neighborhood'"
        " AND x.role = 'resident' AND x.moved_at IS NULL"
        " AND x.address IS NOT NULL AND x.address <> ''"), {"c": campaign_id, "low": low,
                                                            "high": high})


def _given_households(s: Session, campaign_id: int, node: NodeRef,
                      households: Iterable[tuple[int, str]],
                      persons: Iterable[tuple[int, str, int]] = ()) -> None:
    pairs = {(int(n), (a or "").strip()[:ADDRESS_MAX]) for n, a in households}
    pairs = {(n, a) for n, a in pairs if a}
    alone = {(int(n), (a or "").strip()[:ADDRESS_MAX], int(p)) for n, a, p in persons}
    if any(not a for _, a, _ in alone):
        raise InvalidInput("campaign_address_empty")
    wanted = {n for n, _ in pairs} | {n for n, _, _ in alone}
    found = nodes_by_ids(s, wanted)
    bad = [n for n in wanted if n not in found or found[n].level is not Level.neighborhood
           or not node.contains(found[n])]
    if bad:
        raise InvalidInput("campaign_household_outside", node=sorted(bad)[0])
    rows: list[dict[str, object]] = [
        {"campaign_id": campaign_id, "node_id": n, "address": a, "person_id": None}
        for n, a in sorted(pairs)]
    rows += [{"campaign_id": campaign_id, "node_id": n, "address": a, "person_id": p}
             for n, a, p in sorted(alone)]
    for i in range(0, len(rows), 5000):
        s.execute(sa.insert(ITEMS), rows[i:i + 5000])


def load(s: Session, campaign_id: int, *, lock: bool = False) -> Campaign:
    q = sa.select(Campaign).where(CAMPAIGNS.c.id == campaign_id)
    if lock:
        q = q.with_for_update()
    c = s.execute(q).scalars().first()
    if c is None:
        raise NotFound("campaign_unknown", campaign=campaign_id)
    return c


def check_open(c: Campaign) -> None:
    if c.state != CampaignState.open.value:
        raise Conflict("campaign_closed", title=c.title)


def add_household(s: Session, *, campaign_id: int, node_id: int, address: str,
                  person_id: int, clock: Clock) -> CampaignItem:
    """A 邻长 adds a household the registry did not know."""
    c = load(s, campaign_id)
    check_open(c)
    node = node_by_id(s, node_id)
    root = node_by_id(s, c.node_id)
    if node.level is not Level.neighborhood or not root.contains(node):
        raise InvalidInput("campaign_household_outside", node=node.code)
    if not may_mark(actor(s, person_id), node):
        raise PermissionDenied("campaign_not_yours", name=node.name)
    address = (address or "").strip()
    if not address:
        raise InvalidInput("campaign_address_empty")
    if len(address) > ADDRESS_MAX:
        raise InvalidInput("campaign_address_long", most=ADDRESS_MAX)
    if s.execute(sa.select(ITEMS.c.id).where(ITEMS.c.campaign_id == c.id,
                                             ITEMS.c.node_id == node.id,
                                             ITEMS.c.address == address)).first():
        raise Conflict("campaign_address_known", address=address)
    item = CampaignItem(campaign_id=campaign_id, node_id=node.id, address=address,
                        added_by=person_id)
    s.add(item)
    s.flush()
    assert c.id is not None
    counters.move(s, campaign_id=c.id, node_ids=counters.chain(node.path, c.node_id),
                  old=None, new=TOTAL)
    return item


def close_campaign(s: Session, *, campaign_id: int, person_id: int | None,
                   clock: Clock) -> Campaign:
    """End a campaign: presses on its checklists are refused from now on."""
    c = load(s, campaign_id, lock=True)
    check_open(c)
    node = node_by_id(s, c.node_id)
    if not may_start(actor(s, person_id) if person_id is not None else None, node):
        raise PermissionDenied("campaign_outside", name=node.name)
    c.state = CampaignState.closed.value
    c.closed_at = clock.now()
    c.next_due_at = None
    return c


def open_campaigns_for(s: Session, *, who: Actor) -> list[Campaign]:
    """The open campaigns with households on a 邻 this person leads as 邻长, newest first."""
    mine = [n.id for r, n in who.posts if r is Role.neighbor_leader]
    if not mine:
        return []
    # Through the unique (campaign_id, node_id, address) index, campaign by campaign.
    has_mine = sa.exists().where(ITEMS.c.campaign_id == CAMPAIGNS.c.id,
                                 ITEMS.c.node_id.in_(mine))
    q = sa.select(Campaign).where(CAMPAIGNS.c.state == CampaignState.open.value, has_mine
                                  ).order_by(CAMPAIGNS.c.id.desc())
    return list(s.execute(q).scalars())


def overdue(c: Campaign, now: datetime) -> bool:
    return as_utc(c.deadline_at) <= now
