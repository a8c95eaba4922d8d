"""Notices: send one down the tree, a recipient's 收到, and where it stands.

A notice is a row, one recipient row per person, and events; the notifier (bot/notify) turns
the events into outbox rows, and the dispatcher delivers them like every other message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.policy import CasePolicy
from core.clock import as_utc
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Node, Person, Role
from core.hierarchy.queries import Actor, NodeRef, children, node_by_id
from core.hierarchy.scope import notice_refusal
from core.hierarchy.tree import subtree_bounds
from core.notices import events
from core.notices import relay as relays
from core.notices.audience import Target, parse_audience, targets, write_recipients
from core.notices.model import (
    NOTICE,
    RECIPIENT,
    Notice,
    NoticeEventKind,
    NoticeState,
    notice_key,
)
from core.outbox import OUT

MAX_TEXT = 2000


@dataclass(frozen=True)
class Sent:
    notice_id: int
    recipients: int
    by_role: dict[str, int]
    relay_households: int


def _checked(*, text: str, confirm: bool, deadline: datetime | None, now: datetime
             ) -> tuple[str, datetime | None]:
    words = (text or "").replace("\x00", "").strip()
    if not words:
        raise InvalidInput("notice_text_empty")
    if len(words) > MAX_TEXT:
        raise InvalidInput("notice_text_long", limit=MAX_TEXT)
    if deadline is not None:
        deadline = as_utc(deadline)
        if deadline <= now:
            raise InvalidInput("notice_deadline_past")
    return words, deadline if confirm else None


def may_send(*, who: Actor | None, node: NodeRef) -> None:
    """Refuse a sender outside their subtree."""
    why = notice_refusal(who, node)
    if why is not None:
        raise PermissionDenied("notice_outside", node=node.name)


def preview(session: Session, *, who: Actor | None, node: NodeRef,
            audience: Iterable[str], by_sms: bool = False) -> Sent:
    """How many people a notice would reach, per tier, without sending anything."""
    may_send(who=who, node=node)
    found = targets(session, node=node, audience=parse_audience(audience),
                    exclude=who.person.id if who else None, by_sms=by_sms)
    return _summary(0, found)


def _summary(notice_id: int, found: list[Target]) -> Sent:
    by_role: dict[str, int] = {}
    for t in found:
        by_role[t.role] = by_role.get(t.role, 0) + 1
    return Sent(notice_id, len(found), by_role, sum(t.relay_households for t in found))


def send(session: Session, *, who: Actor | None, node: NodeRef, audience: Iterable[str],
         text: str, confirm: bool, deadline: datetime | None, now: datetime,
         reping: timedelta, policy: CasePolicy, photo: str | None = None,
         document: str | None = None, relay_window: timedelta = timedelta(days=3),
         survey: bool = False, by_sms: bool = False) -> Sent:
    """Send a notice to the chosen tiers of `node`'s subtree; refused whole (nothing written)
    for an empty text, a past deadline, or an audience with nobody in it. Residents without a
    chat get a relay campaign (core/notices/relay.py), due at the deadline or `relay_window`;
    with `by_sms` (the deployment sends SMS) a resident with a phone gets the notice by text."""
    may_send(who=who, node=node)
    roles = parse_audience(audience)
    words, deadline = _checked(text=text, confirm=confirm, deadline=deadline, now=now)
    by_sms = by_sms and not survey  # a survey is answered with its five buttons, not by SMS
    reping_at = now + reping if confirm else None
    if reping_at is not None and deadline is not None and reping_at >= deadline:
        reping_at = None  # the deadline's list comes first; no reminder after it
    dues = [d for d in (reping_at, deadline) if d is not None]
    notice = Notice(node_id=node.id, author_id=who.person.id if who else None,
                    audience=[r.value for r in roles], text=words, photo=photo,
                    document=document, confirm=confirm, deadline=deadline, created_at=now,
                    reping_at=reping_at, next_due_at=min(dues) if dues else None,
                    recipients=0, policy=policy.to_json(), survey=survey)
    session.add(notice)
    session.flush()
    assert notice.id is not None
    by_role = write_recipients(session, notice_id=notice.id, node=node, audience=roles,
                               exclude=who.person.id if who else None, with_relay=not survey,
                               by_sms=by_sms)
    total = sum(by_role.values())
    if not total:
        raise InvalidInput("notice_nobody")  # the caller's transaction drops the notice row
    notice.recipients = total
    relay_n = int(session.execute(sa.select(sa.func.coalesce(sa.func.sum(
        RECIPIENT.c.relay_households), 0)).where(RECIPIENT.c.notice_id == notice.id))
        .scalar_one())
    events.record(session, notice_id=notice.id, kind=NoticeEventKind.sent, at=now,
                  actor_id=notice.author_id)
    if Role.resident in roles and not survey:
        relays.start_relay(session, notice=notice, node=node, now=now, window=relay_window,
                          policy=policy, by_sms=by_sms)
    return Sent(notice.id, total, by_role, relay_n)


def confirm(session: Session, *, notice_id: int, person_id: int, via: str,
            now: datetime) -> bool:
    """A recipient's 收到; False when they had already confirmed (nothing changes)."""
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound("notice_unknown", notice=notice_id)
    row = session.execute(sa.select(RECIPIENT.c.id, RECIPIENT.c.confirmed_at).where(
        RECIPIENT.c.notice_id == notice_id, RECIPIENT.c.person_id == person_id)).first()
    if row is None:
        raise PermissionDenied("notice_not_yours")
    if row.confirmed_at is not None:
        return False
    if not notice.confirm:
        raise InvalidInput("notice_no_confirm")
    if notice.state != NoticeState.open.value or (
            notice.deadline is not None and as_utc(notice.deadline) <= now):
        raise Conflict("notice_closed")
    done = session.execute(sa.update(RECIPIENT).where(
        RECIPIENT.c.id == row.id, RECIPIENT.c.confirmed_at.is_(None)).values(
        confirmed_at=now, confirmed_via=via[:16]))
    if not getattr(done, "rowcount", 1):
        return False  # a second press that raced the first
    events.record(session, notice_id=notice_id, kind=NoticeEventKind.confirmed, at=now,
                  actor_id=person_id, detail={"via": via[:16]})
    return True


def awaiting(session: Session, *, person_id: int, now: datetime) -> list[int]:
    """The open notices this person has not yet said 收到 to, newest first."""
    q = (sa.select(NOTICE.c.id).join(RECIPIENT, RECIPIENT.c.notice_id == NOTICE.c.id)
         .where(RECIPIENT.c.person_id == person_id, RECIPIENT.c.confirmed_at.is_(None),
                NOTICE.c.confirm.is_(True), NOTICE.c.state == NoticeState.open.value,
                sa.or_(NOTICE.c.deadline.is_(None), NOTICE.c.deadline > now))
         .order_by(NOTICE.c.id.desc()))
    return [int(x) for x in session.execute(q).scalars()]


@dataclass
class Counts:
    recipients: int = 0
    delivered: int = 0
    confirmed: int = 0
    unreachable: int = 0
    relay_households: int = 0


@dataclass
class Status:
    notice: Notice
    node: NodeRef
    totals: Counts
    children: list[tuple[NodeRef, Counts]] = field(default_factory=list)
    relay: relays.Progress | None = None  # the households its 邻长 tell, when it has a relay


def status(session: Session, *, notice_id: int, viewer_scopes: list[NodeRef] | None
           ) -> Status:
    """Totals and per-child-node counts of recipients, delivered, confirmed, unreachable;
    `viewer_scopes` None is the console, else the notice's node must lie in one of them."""
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound("notice_unknown", notice=notice_id)
    node = node_by_id(session, notice.node_id)
    if viewer_scopes is not None and not any(s.contains(node) for s in viewer_scopes):
        raise NotFound("notice_unknown", notice=notice_id)  # no oracle for others' notices
    kids = children(session, node)
    n: sa.Table = Node.__table__  # type: ignore[attr-defined]
    which = sa.case(*[((n.c.path >= lo) & (n.c.path < hi), k.id)
                      for k in kids for lo, hi in [subtree_bounds(k.path)]],
                    else_=sa.literal(0)) if kids else sa.literal(0)
    key = sa.literal(f"notice{notice_id}:p") + sa.cast(RECIPIENT.c.person_id, sa.String)
    q = (sa.select(which.label("child"), sa.func.count(),
                   sa.func.sum(sa.case((OUT.c.status == "sent", 1), else_=0)),
                   sa.func.count(RECIPIENT.c.confirmed_at),
                   sa.func.sum(sa.case((OUT.c.status == "dead", 1),
                                       (OUT.c.id.is_(None), 1), else_=0)),
                   sa.func.sum(RECIPIENT.c.relay_households))
         .select_from(RECIPIENT)
         .join(n, n.c.id == RECIPIENT.c.node_id)
         .outerjoin(OUT, OUT.c.dedupe_key == key)
         .where(RECIPIENT.c.notice_id == notice_id)
         .group_by(which))
    by_child: dict[int, Counts] = {}
    totals = Counts()
    for child, total, sent, confirmed, dead, relay in session.execute(q):
        c = Counts(int(total), int(sent or 0), int(confirmed or 0), int(dead or 0),
                   int(relay or 0))
        by_child[int(child)] = c
        for f in ("recipients", "delivered", "confirmed", "unreachable", "relay_households"):
            setattr(totals, f, getattr(totals, f) + getattr(c, f))
    return Status(notice, node, totals, [(k, by_child.get(k.id, Counts())) for k in kids],
                  relays.progress(session, notice_id=notice_id))


@dataclass(frozen=True)
class RosterRow:
    """One recipient of a notice, as the sender chases the missing ones."""

    name: str
    role: str
    node: str  # the name of the node of the post it was sent for
    state: str  # confirmed | waiting | unreachable | undelivered (not yet sent)
    confirmed_at: datetime | None
    via: str | None
    relay_households: int


def roster(session: Session, *, notice_id: int, viewer_scopes: list[NodeRef] | None
           ) -> list[RosterRow]:
    """Every recipient of a notice with where they stand, by node and name; the same scope
    rule as `status` (someone else's notice is unknown, not forbidden)."""
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound("notice_unknown", notice=notice_id)
    node = node_by_id(session, notice.node_id)
    if viewer_scopes is not None and not any(s.contains(node) for s in viewer_scopes):
        raise NotFound("notice_unknown", notice=notice_id)
    n: sa.Table = Node.__table__  # type: ignore[attr-defined]
    p: sa.Table = Person.__table__  # type: ignore[attr-defined]
    key = sa.literal(f"notice{notice_id}:p") + sa.cast(RECIPIENT.c.person_id, sa.String)
    q = (sa.select(p.c.name, RECIPIENT.c.role, n.c.name, n.c.path, OUT.c.status,
                   RECIPIENT.c.confirmed_at, RECIPIENT.c.confirmed_via,
                   RECIPIENT.c.relay_households)
         .select_from(RECIPIENT)
         .join(p, p.c.id == RECIPIENT.c.person_id)
         .join(n, n.c.id == RECIPIENT.c.node_id)
         .outerjoin(OUT, OUT.c.dedupe_key == key)
         .where(RECIPIENT.c.notice_id == notice_id)
         .order_by(n.c.path, p.c.name, RECIPIENT.c.id))
    out = []
    for name, role, node_name, _path, sent, at, via, relay in session.execute(q):
        state = ("confirmed" if at is not None else "unreachable" if sent in ("dead", None)
                 else "waiting" if sent == "sent" else "undelivered")
        out.append(RosterRow(str(name), str(role), str(node_name), state,
                             as_utc(at) if at is not None else None, via, int(relay or 0)))
    return out


def names_of(session: Session, person_ids: Iterable[int]) -> dict[int, str]:
    ids = list(set(person_ids))
    p: sa.Table = Person.__table__  # type: ignore[attr-defined]
    out: dict[int, str] = {}
    for i in range(0, len(ids), 5000):
        out.update(dict(session.execute(sa.select(p.c.id, p.c.name).where(
            p.c.id.in_(ids[i:i + 5000]))).all()))
    return out


__all__ = ["Counts", "Role", "RosterRow", "Sent", "Status", "awaiting", "confirm", "may_send",
           "notice_key", "preview", "roster", "send", "status"]
