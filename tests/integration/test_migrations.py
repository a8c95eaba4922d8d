"""Alembic's migrations build exactly the schema the models describe, on both engines."""

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core.db import alembic_config, current_revision, make_engine, migrate


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    assert _diff(engine) == []


def test_migrate_is_idempotent_and_reversible(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    head = current_revision(engine)
    migrate(engine)
    assert current_revision(engine) == head
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate(engine)
    assert current_revision(engine) == head
    assert _diff(engine) == []
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_servers_starting_together_on_postgres_migrate_once(pg_url: str) -> None:
    """Eight servers' worth of engines migrate a fresh database at the same moment: they take
    turns on an advisory lock, so none trips over tables another is creating (without the
    lock, this fails with DuplicateTable on alembic_version)."""
    import threading

    engines = [make_engine(pg_url) for _ in range(8)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        start.wait()
        try:
            migrate(engine)
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    import time

    threads = [threading.Thread(target=run, args=(e,), daemon=True) for e in engines]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60  # a bounded wait: racing migrations can also hang
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert errors == [] and not any(t.is_alive() for t in threads), errors
    assert current_revision(engines[0]) == "0018_dupe_memo"
    for e in engines:
        e.dispose()
