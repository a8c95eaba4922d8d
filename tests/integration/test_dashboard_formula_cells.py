"""The dashboard's Excel downloads hold names users typed: a town named like a formula reaches
the reader's spreadsheet as text, over the real app and HTTP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.rollup.refresh import refresh
from core.settings import Settings
from tests.casehelpers import open_case
from tests.cityfactory import build_city
from tests.support.server import serve
from tests.support.xlsx_xml import live_formulas, text_cells
from webhooks.app import create_app

TOWN_NAME = '=HYPERLINK("http://x","点我")'
VILLAGE_NAME = "@SUM(1+1)*cmd|' /C calc'!A0"


def test_figures_weekly_and_ranking_xlsx_write_names_as_text(
        engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    city = build_city(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE node SET name = :n WHERE id = :i"),
                     {"n": TOWN_NAME, "i": city.nodes["town"]})
        conn.execute(sa.text("UPDATE node SET name = :n WHERE id = :i"),
                     {"n": VILLAGE_NAME, "i": city.nodes["v1"]})
    open_case(engine, clock, city, text="路灯坏了")
    refresh(engine, clock=clock, tz=ZoneInfo("Asia/Shanghai"))
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url="http://dash.test")
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    with session_scope(engine) as s:
        token = accounts.issue_login_token(s, person_id=city["town_admin"], now=clock.now(),
                                           ttl=timedelta(minutes=15))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as town:
        assert town.get(f"/login/{token}").status_code == 303
        books = {kind: town.get(f"/dashboard/export/{kind}.xlsx")
                 for kind in ("figures", "weekly", "ranking")}
    for kind, r in books.items():
        assert r.status_code == 200, kind
        assert live_formulas(r.content) == [], kind
    assert text_cells(books["figures"].content)[TOWN_NAME] == ("inlineStr", False, True)
    assert text_cells(books["ranking"].content)[VILLAGE_NAME] == ("inlineStr", False, True)
