"""Typed phone numbers: they prove nothing, so they may at most attach a resident's chat
account, and only once the resident's 邻长 (or, with no 邻长, the nearest leader or admin above)
confirms with one tap. Leaders, departments and admins are never bound this way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from core.errors import PermissionDenied, StaleAction
from core.hierarchy.model import BindRequest, Proof, Role
from core.hierarchy.queries import (
    Actor,
    NodeRef,
    PersonRef,
    actor,
    chain_for_node,
    identities_of,
    person_by_phone,
)
from core.hierarchy.services import link_identity

# Per chat account and per resident: typing numbers must not page a 邻长 without end.
REQUESTS_PER_DAY = 3


@dataclass(frozen=True)
class Asked:
    """A request waiting for a tap: whom to ask, about whom, where they live."""

    request: BindRequest
    resident: PersonRef
    home: NodeRef
    confirmers: tuple[PersonRef, ...]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def ask(session: Session, *, phone: str, platform: str, external_id: str, chat_id: str,
        now: datetime) -> Asked | None:
    """A bind request for the resident with this phone, or None when nothing may be asked
    (no such person, a person holding any other post, no one to confirm, too many tries)."""
    pid = person_by_phone(session, phone)
    if pid is None:
        return None
    who = actor(session, pid)
    homes = who.residences()
    if not homes or any(r is not Role.resident for r, _ in who.posts):
        return None
    day = now - timedelta(days=1)
    by_sender = session.exec(select(sa.func.count()).select_from(BindRequest).where(
        BindRequest.platform == platform, BindRequest.external_id == external_id,
        BindRequest.created_at > day)).one()
    about_them = session.exec(select(sa.func.count()).select_from(BindRequest).where(
        BindRequest.person_id == pid, BindRequest.created_at > day)).one()
    if by_sender >= REQUESTS_PER_DAY or about_them >= REQUESTS_PER_DAY:
        return None
    filled = chain_for_node(session, homes[0]).filled()
    if not filled:
        return None
    # The lowest tier someone can actually be reached on: a 邻长 with no chat account yet
    # cannot tap, so the 组长 (and so on up to the admins) is asked instead.
    reachable = [st for st in filled if any(
        not gone for h in st.holders for _, _, gone in identities_of(session, h.id))]
    step = (reachable or filled)[0]
    for old in session.exec(select(BindRequest).where(
            BindRequest.platform == platform, BindRequest.external_id == external_id,
            BindRequest.state == "open")):
        old.state = "superseded"
    req = BindRequest(platform=platform, external_id=external_id, chat_id=chat_id,
                      person_id=pid, created_at=now)
    session.add(req)
    session.flush()
    return Asked(req, who.person, homes[0], step.holders)


def decide(session: Session, *, by: Actor, request_id: int, yes: bool, now: datetime,
           ttl: timedelta) -> tuple[BindRequest, NodeRef]:
    """The 邻长's (or a leader's or admin's above) answer; binds the account on 是."""
    req = session.get(BindRequest, request_id)
    if req is None or req.state != "open" or _aware(req.created_at) + ttl <= now:
        raise StaleAction("binding_settled")
    homes = actor(session, req.person_id).residences()
    home = homes[0] if homes else None
    if home is None or not (by.leads(home) or by.is_admin_of(home)):
        raise PermissionDenied("binding_not_yours")
    req.state, req.decided_by, req.decided_at = ("confirmed" if yes else "refused"), \
        by.person.id, now
    if yes:
        # Whoever tapped 是, the account came by a typed number: a resident's, never more.
        link_identity(session, person_id=req.person_id, platform=req.platform,
                      external_id=req.external_id, now=now, proof=Proof.resident_confirmed)
    session.flush()
    return req, home


def open_requests(session: Session, *, by: Actor, now: datetime, ttl: timedelta,
                  limit: int = 100) -> list[tuple[BindRequest, str, NodeRef]]:
    """Requests still waiting for a tap that `by` may answer (an admin's dashboard)."""
    rows = session.exec(select(BindRequest).where(
        BindRequest.state == "open", BindRequest.created_at > now - ttl,
    ).order_by(sa.text("bind_request.id DESC")).limit(limit * 4)).all()
    out = []
    for req in rows:
        who = actor(session, req.person_id)
        homes = who.residences()
        if homes and (by.is_admin_of(homes[0]) or by.leads(homes[0])):
            out.append((req, who.person.name, homes[0]))
    return out[:limit]
