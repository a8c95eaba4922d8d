"""Counted attempts under hashed keys, shared by every worker through the database: refused
dashboard sign-ins, wrong web chat codes, codes sent. A limit is "at most N under this key
within this window"; only a hash of each key is stored, so the table names no phone number
and no address.

Check and record happen in one write transaction: SQLite's writers are serialised already,
and on PostgreSQL the keys' advisory locks make concurrent requests count one after another,
so twenty parallel requests cannot all see "2 of 3" and all pass.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from core.clock import as_utc
from core.errors import TooManyAttempts
from core.hierarchy.tree import normalize_phone
from core.leader import lock_key

# No limit looks further back than this; older rows are deleted as new ones come in.
KEEP = timedelta(days=1)


class LoginFailure(SQLModel, table=True):
    """One counted attempt under a hashed key (named for its first use, refused sign-ins)."""

    __tablename__ = "login_failure"
    __table_args__ = (sa.Index("ix_login_failure_key_at", "key_hash", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


LF: sa.Table = LoginFailure.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Limit:
    """At most `most` attempts under `key` within `window`."""

    key: str
    most: int
    window: timedelta


def phone_of(text: str) -> str | None:
    """The number a spelling stands for (full-width digits and "＋86" too), or None: what a
    limit counts, so that no spelling of a number gets tries of its own."""
    norm = normalize_phone(unicodedata.normalize("NFKC", text))
    return norm if norm is not None and norm.isascii() else None


def key_hash(key: str) -> str:
    """What the table keeps of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def serialise(session: Session, *, keys: Iterable[str]) -> None:
    """Make concurrent check-and-record of these keys take turns (PostgreSQL; SQLite's single
    writer does it already). Sorted, so two requests never wait on each other in a circle."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for k in sorted({lock_key("attempts:" + key) for key in keys}):
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": k})


def count(session: Session, *, key: str, since: datetime) -> tuple[int, datetime | None]:
    """How many attempts under `key` came after `since`, and the oldest of them."""
    row = session.execute(sa.select(sa.func.count(), sa.func.min(LF.c.at)).where(
        LF.c.key_hash == key_hash(key), LF.c.at > since)).one()
    return int(row[0]), (as_utc(row[1]) if row[1] is not None else None)


def wait_seconds(session: Session, *, limit: Limit, now: datetime) -> int:
    """0 while `limit` has room; else the seconds until its oldest attempt ages out."""
    n, oldest = count(session, key=limit.key, since=now - limit.window)
    if n < limit.most:
        return 0
    assert oldest is not None
    return max(60, int((oldest + limit.window - now).total_seconds()) + 1)


def check(session: Session, *, limits: Sequence[Limit], now: datetime, key: str) -> None:
    """Refuse (TooManyAttempts, message `key` with `minutes`) while any limit is full."""
    wait = max((wait_seconds(session, limit=lim, now=now) for lim in limits), default=0)
    if wait:
        raise TooManyAttempts(key, retry_after=wait, minutes=(wait + 59) // 60)


def record(session: Session, *, keys: Iterable[str], now: datetime) -> None:
    """Count one attempt under each key (and forget what no limit looks at any more)."""
    for key in keys:
        session.add(LoginFailure(key_hash=key_hash(key), at=now))
    session.execute(sa.delete(LF).where(LF.c.at <= now - KEEP))
    session.flush()
