"""Replay protection for signed callbacks (WeChat, WeCom): a fresh timestamp, one body per nonce.

WeChat's plain-mode signature covers only token + timestamp + nonce, not the body: anyone who
read one callback's query string (an access log, a proxy) could sign any other body with it.
So a callback is admitted only when its timestamp is within the allowed skew of our clock and
its (timestamp, nonce) has not come with another body before. The same body again is let
through: WeChat's retries of a message may reuse the query, and the MsgId dedupe answers them
`success` without doing anything twice. Nonces live in the database so that every worker
shares them, and are forgotten once their timestamp could no longer be accepted.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

_TIMESTAMP = re.compile(r"\d{1,12}")
_NONCE = re.compile(r"[0-9A-Za-z_-]{1,64}")


class CallbackNonce(SQLModel, table=True):
    """One (timestamp, nonce) a platform signed, with the digest of the body it came with."""

    __tablename__ = "callback_nonce"
    __table_args__ = (sa.Index("ix_callback_nonce_seen_at", "seen_at"),)
    platform: str = Field(sa_column=sa.Column(sa.String(16), primary_key=True))
    timestamp: str = Field(sa_column=sa.Column(sa.String(12), primary_key=True))
    nonce: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    digest: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    seen_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


NONCES: sa.Table = CallbackNonce.__table__  # type: ignore[attr-defined]


def digest_of(*parts: bytes | str) -> str:
    """What a callback carried (method, body), as the digest kept with its nonce."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def stale(*, timestamp: str, now: datetime, skew: timedelta) -> str | None:
    """Why a callback's timestamp is refused (not a number, too old, in the future), or None."""
    if not _TIMESTAMP.fullmatch(timestamp or ""):
        return "no timestamp"
    when = datetime.fromtimestamp(int(timestamp), UTC)
    if when < now - skew:
        return f"timestamp {int((now - when).total_seconds())} s old"
    if when > now + skew:
        return f"timestamp {int((when - now).total_seconds())} s in the future"
    return None


def admit(session: Session, *, platform: str, timestamp: str, nonce: str, digest: str,
          now: datetime, skew: timedelta) -> str | None:
    """Remember a signed callback's nonce; None when it may be handled, else why not."""
    why = stale(timestamp=timestamp, now=now, skew=skew)
    if why is not None:
        return why
    if not _NONCE.fullmatch(nonce or ""):
        return "no nonce"
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    key = {"platform": platform, "timestamp": timestamp, "nonce": nonce}
    session.execute(insert(NONCES).values(**key, digest=digest, seen_at=now)
                    .on_conflict_do_nothing())
    first = session.execute(sa.select(NONCES.c.digest).where(
        *(NONCES.c[k] == v for k, v in key.items()))).scalar_one()
    # A nonce must be kept while its timestamp could still pass: at most 2 × skew after
    # it was first seen (it was within skew of the clock then).
    session.execute(sa.delete(NONCES).where(NONCES.c.seen_at < now - 2 * skew))
    return None if first == digest else "nonce already used with another body"
