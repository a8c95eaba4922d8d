"""The database: engine construction, sessions and schema migration.

Statements built once: the queries every update runs (who wrote, their open case, the
notifier's batch reads, the outbox insert…) are built on first use by a `functools.cache`d
function with bound parameters (`sa.bindparam`, `expanding=True` for IN lists) and reused.
Building a SQLAlchemy statement (coercing each column and operator, then its cache key) cost
several times more CPU than running it on SQLite: 725 µs against 87 µs for the lookup of a
chat account (bench/bench_inbound_ceiling.py prints the CPU per update)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for SQLite (WAL, foreign keys on) or PostgreSQL (psycopg 3)."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so that
        # a transaction begins when SQLAlchemy says it does.
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _sqlite_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front, so a writer never fails half-way on a lock upgrade.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _ensure_sqlite_dir(url: str) -> None:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


_MEMO = "linzhang.memo"


def memo(session: Session, name: str) -> dict[Any, Any]:
    """A dict, by name, for what this transaction found out and may read again (a
    conversation, a duplicate search's finds). Forgotten when the transaction or a savepoint
    ends, since others may change it after; a flush's own subtransaction keeps it."""
    book: dict[str, dict[Any, Any]] | None = session.info.get(_MEMO)
    if book is None:
        book = session.info[_MEMO] = {}
        sa.event.listen(session, "after_transaction_end", _forget_memo)
    return book.setdefault(name, {})


def _forget_memo(session: Session, transaction: Any) -> None:
    if transaction.parent is None or transaction.nested:
        session.info.get(_MEMO, {}).clear()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


@contextmanager
def _one_writer(engine: Engine) -> Iterator[None]:
    """SQLite has one writer at a time; queueing this process's writers on a lock beats
    SQLite's busy handler, which sleeps and retries (seconds of tail latency under load)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _WRITERS_GUARD:
        lock = _WRITERS.setdefault(engine, threading.Lock())
    with lock:
        yield


def writer_busy(engine: Engine) -> bool:
    """Whether a thread of this process holds the SQLite writer now (never on PostgreSQL)."""
    with _WRITERS_GUARD:
        lock = _WRITERS.get(engine)
    return lock is not None and lock.locked()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that will write: on SQLite it holds the lock from the start."""
    with _one_writer(engine), engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """session_scope for a unit of work that writes (SQLite: BEGIN IMMEDIATE)."""
    with _one_writer(engine), engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with Session(bind=conn, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise


def alembic_config(connection: sa.Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


_MIGRATE_LOCK = 0x6C7A_6D67  # "lzmg"


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest migration."""
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Servers started at the same moment on an old schema take turns: the first
            # migrates, the others then find nothing left to do. Held until this commits.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
        # "heads": parallel branches of migrations apply until a merge revision joins them.
        command.upgrade(alembic_config(conn), "heads")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) if heads else None
