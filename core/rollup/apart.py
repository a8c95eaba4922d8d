"""A rollup rebuild's reading in a child process.

Computing a village's rows is Python over every case and escalation it ever had: run in the
server's scheduler thread, it holds the GIL while the webhooks' threads wait to take it back
after each SQL statement (a report makes dozens), so a full rebuild slowed every report by
hundreds of milliseconds. A child process reads and computes; the parent only swaps the rows
in, a village per short write transaction, as before (so SQLite keeps one writer per process).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import date, tzinfo
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from core.rollup.refresh import VillageDays

_ENGINES: dict[str, Engine] = {}  # in the child: one engine per database


# Below this many cases a rebuild takes less time in-process than starting a child does (a
# fresh server's first rebuild of a demo city: milliseconds, against a second for the child).
SMALL = 20_000


def can_go_apart(engine: Engine) -> bool:
    """Whether a child process can open the same database (not an in-memory SQLite)."""
    url = engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def pool() -> ProcessPoolExecutor:
    """One child, started fresh (spawn: nothing of this process's threads or connections),
    at a lower priority: on a machine with few cores the webhooks come first."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_background)


def _background() -> None:
    os.nice(10)


def pool_for(engine: Engine, *, cases: int, apart_from: int | None
             ) -> ProcessPoolExecutor | None:
    """The child a rebuild reads in: for a database of at least `apart_from` cases (None:
    never) that a child can open."""
    if apart_from is None or cases < apart_from or not can_go_apart(engine):
        return None
    return pool()


def read_village(pool: ProcessPoolExecutor | None, engine: Engine, *, village_id: int,
                 village_path: str, first: date, last: date, tz: tzinfo) -> VillageDays:
    """One village's rows, computed in the child when there is one, else here."""
    if pool is not None:
        return pool.submit(compute_village, url_of(engine), village_id, village_path, first,
                           last, tz).result()
    from core.rollup.refresh import compute

    with engine.connect() as conn:
        computed = compute(conn, village_id=village_id, village_path=village_path,
                           first=first, last=last, tz=tz)
        conn.rollback()
    return computed


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def compute_village(url: str, village_id: int, village_path: str, first: date, last: date,
                    tz: tzinfo) -> VillageDays:
    """In the child: one village's rollup rows (reads only)."""
    from core.db import make_engine

    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = make_engine(url)
    return read_village(None, engine, village_id=village_id, village_path=village_path,
                        first=first, last=last, tz=tz)
