"""api_keys of Open311 client systems: made by the operator's CLI, scoped to a subtree,
revocable. Only a SHA-256 of a key is stored; a key is found by its hash and compared in
constant time (as core/accounts.py keeps login tokens)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Person
from core.hierarchy.queries import NodeRef, node_by_code, node_by_id
from core.open311.model import CLIENTS, Open311Client

PREFIX = "o311_"
MAX_NAME = 60
MAX_KEY = 200  # longer than any key we hand out: refused before hashing


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Client:
    """An authenticated client system and the subtree its key may file into and read."""

    id: int
    name: str
    scope: NodeRef
    person_id: int


@dataclass(frozen=True)
class KeyRow:
    """One key as `linzhang open311 key list` shows it (never the key itself)."""

    name: str
    prefix: str
    scope_code: str
    created_at: datetime
    revoked_at: datetime | None


def create_key(session: Session, *, name: str, scope_code: str, now: datetime) -> str:
    """Make a client system and its api_key; the key is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput("open311_name_invalid", most=MAX_NAME)
    scope = node_by_code(session, scope_code.strip())  # NotFound: node_unknown
    if session.execute(sa.select(CLIENTS.c.id).where(CLIENTS.c.name == name)).first():
        raise Conflict("open311_name_taken", name=name)
    key = PREFIX + secrets.token_urlsafe(24)
    person = Person(name=name, created_at=now)
    session.add(person)
    session.flush()
    assert person.id is not None
    session.add(Open311Client(name=name, key_hash=_digest(key), key_prefix=key[:10],
                              scope_node_id=scope.id, person_id=person.id, created_at=now))
    session.flush()
    return key


def revoke_key(session: Session, *, name: str, now: datetime) -> None:
    """Revoke a client's key: from now on it is refused (403)."""
    done = session.execute(sa.update(CLIENTS).where(
        CLIENTS.c.name == name.strip(), CLIENTS.c.revoked_at.is_(None)).values(revoked_at=now))
    if not done.rowcount:  # type: ignore[attr-defined]
        raise NotFound("open311_client_unknown", name=name)
    from core.open311 import hooks

    hooks.forget()  # a revoked client's hook hears of nothing more


def list_keys(session: Session) -> list[KeyRow]:
    """Every client system, revoked ones too, oldest first."""
    from core.hierarchy.model import Node

    nodes: sa.Table = Node.__table__  # type: ignore[attr-defined]
    q = (sa.select(CLIENTS.c.name, CLIENTS.c.key_prefix, nodes.c.code, CLIENTS.c.created_at,
                   CLIENTS.c.revoked_at)
         .join(nodes, nodes.c.id == CLIENTS.c.scope_node_id).order_by(CLIENTS.c.id))
    return [KeyRow(*row) for row in session.execute(q)]


def authenticate(session: Session, *, api_key: str | None) -> Client:
    """The client system an api_key belongs to; PermissionDenied when it is missing, unknown
    or revoked (the spec's 403)."""
    if not api_key:
        raise PermissionDenied("open311_key_missing")
    if len(api_key) > MAX_KEY:
        raise PermissionDenied("open311_key_invalid")
    digest = _digest(api_key)
    row = session.execute(sa.select(CLIENTS).where(CLIENTS.c.key_hash == digest)).first()
    # The lookup is by hash already; the digest compare keeps a timing difference out too.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise PermissionDenied("open311_key_invalid")
    if row.revoked_at is not None:
        raise PermissionDenied("open311_key_revoked")
    return Client(id=row.id, name=row.name, scope=node_by_id(session, row.scope_node_id),
                  person_id=row.person_id)
