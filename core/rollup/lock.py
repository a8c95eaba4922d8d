"""One rollup refresher at a time: a session advisory lock on PostgreSQL (held across the short
transactions of one refresh), a lock per engine in this process on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_ADVISORY_KEY = 0x6C7A_726F  # "lzro": one refresher at a time on PostgreSQL
_LOCAL: dict[Engine, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


@contextmanager
def refresher(engine: Engine) -> Iterator[bool]:
    """Whether this process may refresh now: one refresher at a time (PostgreSQL: a session
    advisory lock, held across the short transactions of one refresh)."""
    if engine.dialect.name != "postgresql":
        with _LOCAL_GUARD:
            lock = _LOCAL.setdefault(engine, threading.Lock())
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
        return
    with engine.connect() as conn:
        mine = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(_ADVISORY_KEY)))
                    .scalar())
        conn.commit()
        try:
            yield mine
        finally:
            if mine:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(_ADVISORY_KEY)))
                conn.commit()
