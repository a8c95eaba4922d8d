"""The per-update reads stay bounded by one resident's or one case's own rows: their plans
use the indexes that say so (a scan here grows with the database's age).

SQLite plans by its fixed heuristics, so its plan on an empty database is the plan at any size.
PostgreSQL plans by table statistics: test_hot_path_plans.py checks its plans for the reads of
an update over tables filled and analyzed, bench/bench_age.py prints them at 1 M cases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases.services import case_to_append_to
from core.settings import Settings
from tests.fakes.timer import FakeClock


def _captured(engine: Engine, run: Any) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)
    return seen


def _plan(engine: Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(r[-1]) for r in cur.fetchall())


@pytest.fixture
def append_plan(sqlite_engine: Engine, clock: FakeClock) -> Iterator[str]:
    engine = sqlite_engine
    settings = Settings(_env_file=None, database_url=str(engine.url))  # type: ignore[call-arg]

    def run() -> None:
        with Session(engine) as s:
            case_to_append_to(s, clock=clock, settings=settings, resident_id=1)

    (statement, parameters), = _captured(engine, run)
    yield _plan(engine, statement, parameters)


def test_append_reads_the_cases_own_events(append_plan: str) -> None:
    assert "ix_case_event_kind_at" not in append_plan, append_plan
    line = next(x for x in append_plan.splitlines() if "case_event" in x)
    assert "case_id=?" in line, append_plan
    assert "SCAN" not in append_plan.replace("SCAN CONSTANT ROW", ""), append_plan
