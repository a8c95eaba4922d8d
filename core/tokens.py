"""Platform access tokens shared by every worker, refreshed by one of them at a time.

WeChat and WeCom hand out one access token per app (2 h); a second refresh invalidates the
first after a grace period and both count against a small daily quota, so the token lives in
the database and a short lease (`lock_until`) lets exactly one process fetch a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from core.clock import Clock, as_utc
from core.db import write_session
from core.errors import Conflict

# A token this close to its expiry is treated as expired (calls take time; clocks drift).
MARGIN = timedelta(minutes=5)
LOCK = timedelta(seconds=30)


class ApiToken(SQLModel, table=True):
    """One cached token per key (platform + app id)."""

    __tablename__ = "api_token"
    key: str = Field(sa_column=sa.Column(sa.String(120), primary_key=True))
    value: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    lock_until: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


TOK: sa.Table = ApiToken.__table__  # type: ignore[attr-defined]

# Fetch a fresh token from the platform: (token, lifetime in seconds).
Fetch = Callable[[], tuple[str, int]]


def cached(engine: Engine, *, key: str, now: datetime) -> str | None:
    """The stored token when it is still good, else None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(TOK.c.value, TOK.c.expires_at).where(TOK.c.key == key)).first()
    if row is None or row.value is None or row.expires_at is None:
        return None
    return str(row.value) if as_utc(row.expires_at) - MARGIN > now else None


def store(engine: Engine, *, key: str, value: str, expires_in: int, now: datetime) -> None:
    """Keep a token (e.g. one the platform's client fetched by itself)."""
    with write_session(engine) as s:
        _upsert(s, key)
        s.execute(sa.update(TOK).where(TOK.c.key == key).values(
            value=value, expires_at=now + timedelta(seconds=expires_in), lock_until=None))


def _upsert(s: object, key: str) -> None:
    from sqlmodel import Session

    assert isinstance(s, Session)
    # Two workers may create the row at the same moment: the second must not fail on it.
    from sqlalchemy.dialects import postgresql, sqlite

    pg = s.get_bind().dialect.name == "postgresql"
    ins = postgresql.insert(TOK) if pg else sqlite.insert(TOK)
    s.execute(ins.values(key=key).on_conflict_do_nothing(index_elements=["key"]))


def _take_lock(engine: Engine, key: str, now: datetime) -> bool:
    with write_session(engine) as s:
        _upsert(s, key)
        got = s.execute(sa.update(TOK).where(
            TOK.c.key == key, sa.or_(TOK.c.lock_until.is_(None), TOK.c.lock_until <= now)
        ).values(lock_until=now + LOCK))
        return bool(got.rowcount)  # type: ignore[attr-defined]


def token(engine: Engine, *, key: str, fetch: Fetch, clock: Clock, stale: str | None = None,
          wait: Callable[[float], None] | None = None, attempts: int = 60) -> str:
    """A good token: the cached one unless it is `stale` (the platform refused it), else one
    fetched by this process while it holds the lease, or by whichever process holds it."""
    for _ in range(attempts):
        now = clock.now()
        have = cached(engine, key=key, now=now)
        if have is not None and have != stale:
            return have
        if _take_lock(engine, key, now):
            try:
                have = cached(engine, key=key, now=now)
                if have is not None and have != stale:
                    return have  # another process refreshed between our read and the lease
                value, expires_in = fetch()
            except BaseException:
                with write_session(engine) as s:
                    s.execute(sa.update(TOK).where(TOK.c.key == key).values(lock_until=None))
                raise
            store(engine, key=key, value=value, expires_in=expires_in, now=clock.now())
            return value
        if wait is not None:
            wait(0.2)  # another process is fetching: its token will be in the table shortly
    raise Conflict("token_refreshing", key=key)


def invalidate(engine: Engine, *, key: str) -> None:
    """Forget a token the platform no longer accepts."""
    with write_session(engine) as s:
        s.execute(sa.update(TOK).where(TOK.c.key == key).values(value=None, expires_at=None))
