"""What a campaign feeds back into the registry (同步更新维护平台数据).

已搬离 sets `post.moved_at` on the household's resident posts: the rows are kept (history,
cases, a mistaken mark undone), but every path that routes to residents or lists them reads
only posts with `moved_at IS NULL` (core/hierarchy/queries.py: `actor`, `residence_of`; the
next campaign's households). 有新增人员 becomes a member row only when a leader of the
household's 组 confirms it with one tap.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.campaigns.model import Newcomer
from core.clock import Clock
from core.errors import Conflict, NotFound, PermissionDenied
from core.hierarchy.model import Person, Post, Role
from core.hierarchy.queries import actor, node_by_id
from core.hierarchy.services import create_person

POST = Post.__table__  # type: ignore[attr-defined]


def _household(node_id: int, address: str, person_id: int | None) -> sa.ColumnElement[bool]:
    # An item of a person without an address (a notice's relay) is that person's post alone.
    where = POST.c.person_id == person_id if person_id is not None else POST.c.address == address
    return sa.and_(POST.c.node_id == node_id, where, POST.c.role == Role.resident.value)


def mark_moved(s: Session, *, node_id: int, address: str, now: datetime,
               person_id: int | None = None) -> int:
    """The household's residents moved away: kept, no longer routed to or listed."""
    res = s.execute(sa.update(POST).where(
        _household(node_id, address, person_id), POST.c.moved_at.is_(None)).values(moved_at=now))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def unmark_moved(s: Session, *, node_id: int, address: str,
                 person_id: int | None = None) -> None:
    """A 已搬离 corrected to another outcome: the residents are back."""
    s.execute(sa.update(POST).where(
        _household(node_id, address, person_id), POST.c.moved_at.is_not(None)
    ).values(moved_at=None))


def decide_newcomer(s: Session, *, newcomer_id: int, person_id: int, accept: bool,
                    clock: Clock) -> Newcomer:
    """A leader above the household confirms (a member row is written) or refuses."""
    n = s.get(Newcomer, newcomer_id, with_for_update=True)
    if n is None:
        raise NotFound("campaign_newcomer_unknown", newcomer=newcomer_id)
    if n.state != "pending":
        raise Conflict("campaign_newcomer_decided", name=n.name)
    node = node_by_id(s, n.node_id)
    who = actor(s, person_id)
    # Above the 邻: its 邻长 reported it, so the 组长 (or higher, or an admin) decides.
    above = any(r in (Role.group_leader, Role.area_leader, Role.secretary)
                and p.contains(node) for r, p in who.posts)
    if not (above or who.is_admin_of(node)):
        raise PermissionDenied("campaign_newcomer_not_yours", name=n.name)
    now = clock.now()
    n.state, n.decided_by, n.decided_at = ("confirmed" if accept else "refused"), person_id, now
    if accept:
        from core.campaigns.model import CampaignItem

        item = s.get(CampaignItem, n.item_id)
        people = Person.__table__  # type: ignore[attr-defined]
        found = s.execute(sa.select(Person).where(people.c.phone == n.phone)).scalars().first() \
            if n.phone else None
        p = found or create_person(s, name=n.name, phone=n.phone, now=now)
        s.flush()
        assert p.id is not None
        post = s.execute(sa.select(Post).where(
            POST.c.person_id == p.id, POST.c.node_id == n.node_id,
            POST.c.role == Role.resident.value)).scalars().first()
        if post is None:
            s.add(Post(person_id=p.id, node_id=n.node_id, role=Role.resident.value,
                       address=item.address if item else None))
        else:
            post.moved_at = None
            post.address = item.address if item else post.address
        n.person_id = p.id
    return n


def pending_for(s: Session, *, newcomer_ids: list[int]) -> list[Newcomer]:
    table = Newcomer.__table__  # type: ignore[attr-defined]
    return list(s.execute(sa.select(Newcomer).where(table.c.id.in_(newcomer_ids))).scalars())
