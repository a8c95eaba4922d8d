"""Invite codes: a 邻's link (and QR poster) that makes whoever follows it a resident there."""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from core.errors import InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Level, Post, Role
from core.hierarchy.queries import Actor, NodeRef, node_by_id

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no look-alikes on a printed poster


class Invite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    node_id: int = Field(foreign_key="node.id", index=True)
    created_by: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    uses: int = 0
    revoked: bool = False


def invite_for(session: Session, *, by: Actor, node: NodeRef, now: datetime) -> Invite:
    """The standing invite of a neighborhood, made on first ask (its 邻长 or anyone above)."""
    if node.level is not Level.neighborhood:
        raise InvalidInput("invite_neighborhood_only")
    if not (by.leads(node) or by.is_admin_of(node)):
        raise PermissionDenied("invite_not_yours")
    existing = session.exec(select(Invite).where(
        Invite.node_id == node.id, Invite.revoked == False  # noqa: E712
    ).order_by(sa.text("id"))).first()
    if existing is not None:
        return existing
    invite = Invite(code="j" + "".join(secrets.choice(ALPHABET) for _ in range(10)),
                    node_id=node.id, created_by=by.person.id, created_at=now)
    session.add(invite)
    session.flush()
    return invite


def redeem(session: Session, *, code: str, person_id: int) -> NodeRef:
    """Make the person a resident of the invite's neighborhood; returns that neighborhood."""
    code = code.strip()
    if not code or len(code) > 64:
        raise InvalidInput("invite_malformed")
    invite = session.exec(select(Invite).where(Invite.code == code)).first()
    if invite is None or invite.revoked:
        raise NotFound("invite_unknown")
    node = node_by_id(session, invite.node_id)
    held = session.exec(select(Post).where(
        Post.person_id == person_id, Post.role == Role.resident.value, Post.node_id == node.id
    )).first()
    if held is None:
        session.add(Post(person_id=person_id, node_id=node.id, role=Role.resident.value))
    invite.uses += 1
    session.flush()
    return node
