"""Shared fixtures: real SQLite files, the real PostgreSQL server, a fake clock."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.clock import FakeClock
from core.db import make_engine, migrate

PG_ADMIN_URL = os.environ.get(
    "LINZHANG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("LINZHANG_REQUIRE_POSTGRES") == "1"


def _pg_available() -> str | None:
    """None when the server answers, else why not."""
    try:
        eng = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # any failure means: no server to test against
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(autouse=True, scope="session")
def _notifier() -> None:
    """Case events reach the rollups and the notifier, as the composition root wires them."""
    from bot import notify

    notify.install()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable PostgreSQL, or a skip (a failure when CI requires it)."""
    why = _pg_available()
    if why is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (LINZHANG_REQUIRE_POSTGRES=1) but: {why}")
        pytest.skip(f"PostgreSQL tests did not run: no server at {PG_ADMIN_URL} ({why})")
    return PG_ADMIN_URL


def create_pg_database(admin_url: str, *, template: str | None = None,
                       prefix: str = "linzhang_t_") -> str:
    """A fresh database on the server (empty, or a copy of `template`); returns its URL."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # From the template: WAL_LOG (PostgreSQL 15's default) copies through the WAL with no
        # checkpoint, which under two busy workers beat FILE_COPY's checkpoints (0.47 s
        # against 1.1 s a copy, and a cheaper DROP afterwards).
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'
                             + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    name = sa.engine.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# A test that takes an engine gets its database as a copy of one migrated once per test
# process (CREATE DATABASE … TEMPLATE; a file copy for SQLite): the migrations run once, not
# for each of some 700 tests. A test that takes only a URL still gets an empty database.
_MIGRATED: set[str] = set()
_WANTS_SCHEMA = frozenset({"engine", "sqlite_engine"})


def _wants_schema(request: pytest.FixtureRequest) -> bool:
    return bool(_WANTS_SCHEMA & set(request.fixturenames))


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """A database migrated to the newest schema, the template of each test's copy."""
    url = create_pg_database(pg_server, prefix="linzhang_tpl_")
    eng = make_engine(url, poolclass=sa.pool.NullPool)
    migrate(eng)
    eng.dispose()
    try:
        yield str(sa.engine.make_url(url).database)
    finally:
        drop_pg_database(pg_server, url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "linzhang.db"
    eng = make_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    migrate(eng)
    with eng.connect() as conn:  # everything into the main file, so copying it is enough
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


@pytest.fixture
def pg_url(pg_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    template = request.getfixturevalue("pg_template") if _wants_schema(request) else None
    url = create_pg_database(pg_server, template=template)
    if template:
        _MIGRATED.add(url)
    try:
        yield url
    finally:
        _MIGRATED.discard(url)
        drop_pg_database(pg_server, url)


@pytest.fixture
def sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    path = tmp_path / "linzhang.db"
    url = f"sqlite:///{path}"
    if _wants_schema(request):
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        _MIGRATED.add(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")  # type: ignore[no-any-return]
    return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    if db_url not in _MIGRATED:
        migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    if sqlite_url not in _MIGRATED:
        migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _is_pg(report) -> bool:  # type: ignore[no-untyped-def]
    return "postgres" in getattr(report, "keywords", {}) or "postgres" in report.nodeid


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    # Read from the reports, not from module state: under pytest-xdist the tests ran in
    # worker processes and only their reports reach this (controller) process.
    stats = terminalreporter.stats
    skipped = [
        r for r in stats.get("skipped", [])
        if "PostgreSQL tests did not run" in str(getattr(r, "longrepr", ""))
    ]
    if skipped:
        longrepr = skipped[0].longrepr
        why = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        why = why.removeprefix("Skipped: ").removeprefix("PostgreSQL tests did not run: ")
        terminalreporter.write_sep(
            "!", f"{len(skipped)} PostgreSQL tests did NOT run: {why}", yellow=True)
        return
    ran = sum(1 for r in stats.get("passed", []) + stats.get("failed", [])
              if r.when == "call" and _is_pg(r))
    if ran:
        terminalreporter.write_line(f"PostgreSQL tests ran ({ran} tests).")
