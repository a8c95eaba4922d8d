"""Rollup refreshes and rebuilds read the cases without holding SQLite's writer, and a fresh
deployment's first rebuild waits for the sweep's first pass: webhooks and deadlines do not
queue behind figures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import FakeClock
from core.db import writer_busy
from core.rollup import refresh
from core.rollup.model import DAY, STATE
from core.scheduler import ROLLUP_JOB_ID, SWEEP_JOB_ID, build_scheduler
from core.settings import Settings
from tests.casehelpers import open_case
from tests.cityfactory import build_city
from tests.rollupcheck import TZ


@contextmanager
def _case_reads(engine: Engine) -> Iterator[list[bool]]:
    """Whether the writer was held at each read of the cases table."""
    held: list[bool] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        text = " ".join(statement.split()).lower()
        if text.startswith("select") and "from cases" in text and "opened_at" in text:
            held.append(writer_busy(engine))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield held
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def test_rebuild_and_refresh_read_outside_the_writer(sqlite_engine: Engine,
                                                     clock: FakeClock) -> None:
    engine = sqlite_engine
    city = build_city(engine)
    open_case(engine, clock, city, resident="resident1", text="路灯坏了")
    with _case_reads(engine) as held:
        assert refresh.refresh(engine, clock=clock, tz=TZ).rebuilt
    assert held and not any(held), held
    clock.advance(timedelta(minutes=5))
    open_case(engine, clock, city, resident="resident3", text="垃圾没人收")
    with _case_reads(engine) as held:
        result = refresh.refresh(engine, clock=clock, tz=TZ)
    assert result.villages >= 1 and not result.rebuilt
    assert held and not any(held), held
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.sum(DAY.c.received))).scalar_one() == 2


def test_first_rollup_waits_for_the_first_sweep(engine: Engine, clock: FakeClock) -> None:
    build_city(engine)
    settings = Settings(_env_file=None, database_url=str(engine.url))  # type: ignore[call-arg]
    scheduler = build_scheduler(engine=engine, clock=clock, settings=settings)
    rollup, sweep = scheduler.get_job(ROLLUP_JOB_ID), scheduler.get_job(SWEEP_JOB_ID)
    assert rollup is not None and sweep is not None

    def refreshed() -> bool:
        with Session(engine) as s:
            row = s.execute(sa.select(STATE.c.refreshed_at).where(STATE.c.id == 1)).first()
        return row is not None and row.refreshed_at is not None

    rollup.func()
    assert not refreshed()  # the fresh database's rebuild did not start before the sweep
    sweep.func()
    rollup.func()
    assert refreshed()
