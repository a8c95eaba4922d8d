"""`linzhang demo`'s story: weeks of history behind the map and the figures, a handful of live
cases on short deadlines (so the town office is not flooded), five different people in the
panes of /demo."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import reports
from core.clock import FakeClock
from core.container import build_container
from core.demo_seed import demo_settings, seed
from core.hierarchy.model import Level
from core.hierarchy.queries import node_by_code
from tests.casehelpers import advance_and_sweep
from tests.support.demo_city import TOWN, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

MINUTE = timedelta(minutes=1)


def _seeded(engine: Engine, db_url: str, clock: FakeClock, tmp_path: Path):  # type: ignore[no-untyped-def]
    load_demo(engine)
    st = demo_settings(database_url=db_url, deadline="2m", media_dir=str(tmp_path / "media"))
    seed(engine, settings=st, clock=clock)
    return st


def test_the_demo_has_weeks_of_closed_and_rated_cases(engine: Engine, db_url: str,
                                                      clock: FakeClock, tmp_path: Path) -> None:
    _seeded(engine, db_url, clock, tmp_path)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT state, rating, opened_at FROM cases")).all()
    closed = [r for r in rows if r.state == "closed"]
    assert len(rows) >= 40
    assert len(closed) >= 0.75 * len(rows)
    assert sum(1 for r in closed if r.rating is not None) >= 0.8 * len(closed)
    oldest = min(datetime.fromisoformat(str(r.opened_at)) for r in rows)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=clock.now().tzinfo)
    assert clock.now() - oldest >= timedelta(weeks=4)
    open_now = [r for r in rows if r.state in ("open", "accepted")]
    assert 1 <= len(open_now) <= 6
    with Session(engine) as s:
        town = node_by_code(s, code=TOWN)
        ranked, too_few = reports.ranking(s, scope=town, level=Level.village,
                                          start=clock.now() - timedelta(days=30),
                                          end=clock.now() + MINUTE, min_cases=10)
    assert len(ranked) == 2 and too_few == []
    assert ranked[0].score != ranked[1].score  # the villages differ: a ranking that says something
    with engine.connect() as conn:  # and the by-category chart has more than one bar
        kinds = conn.execute(sa.text("SELECT count(DISTINCT category_id) FROM cases"
                                     " WHERE category_id IS NOT NULL")).scalar_one()
    assert kinds >= 5


def test_the_town_admin_is_not_flooded_in_the_first_twenty_minutes(
        engine: Engine, db_url: str, clock: FakeClock, tmp_path: Path) -> None:
    _seeded(engine, db_url, clock, tmp_path)
    admin = holder_of(engine, "admin", TOWN)

    def to_admin() -> int:
        with engine.connect() as conn:
            # A card_update edits a card already there: it is no new message on the phone.
            return int(conn.execute(sa.text(
                "SELECT COUNT(*) FROM outbox WHERE person_id = :p AND kind <> 'card_update'"),
                {"p": admin.person_id}).scalar_one())

    before = to_admin()
    advance_and_sweep(engine, clock, 20 * MINUTE, step=timedelta(seconds=30))
    sent = to_admin() - before
    assert sent <= 4, sent  # 8 with the old seed's eight live cases on two-minute deadlines


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_five_panes_are_five_people(engine: Engine, db_url: str, clock: FakeClock,
                                        tmp_path: Path) -> None:
    st = _seeded(engine, db_url, clock, tmp_path)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    import re

    with serve(app) as url:
        page = httpx.get(f"{url}/demo", timeout=30).text
    panes = [int(p) for p in re.findall(r'data-person="(\d+)"', page)]
    assert len(panes) == 5 and len(set(panes)) == 5, panes
    lin, group = "3416020010010101001", "3416020010010101"  # the first resident's 邻 and 组
    assert panes[1:] == [holder_of(engine, role, code).person_id for role, code in (
        ("neighbor_leader", lin), ("group_leader", group), ("secretary", VILLAGE1),
        ("admin", TOWN))]
