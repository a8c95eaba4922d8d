"""The figures mean what they say: each one checked against a hand count of a seeded set of
cases (tests/support/figureset.py), through /api/figures, the figures page and the XLSX
export; for a village (counted live) and for the town and district (read from the rollups)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.rollup.refresh import refresh
from core.settings import Settings
from tests.cityfactory import build_city
from tests.support.figureset import EXPECTED, PERIOD, seed
from tests.support.server import serve
from webhooks.app import create_app


@pytest.fixture
def figures_world(engine: Engine, db_url: str, tmp_path: Path,
                  clock: FakeClock) -> Iterator[dict[str, Any]]:
    city = build_city(engine)
    seed(engine, clock, city)
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), timezone="Asia/Shanghai",
                  dashboard_min_cases=1)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    refresh(engine, clock=clock, tz=build_container(st, clock=clock, engine=engine).tz)
    with session_scope(engine) as s:
        token = accounts.issue_login_token(s, person_id=city["district_admin"],
                                           now=clock.now(), ttl=timedelta(minutes=15))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"/login/{token}").status_code == 303
        yield {"client": client, "city": city}


def _local_day(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()


NODES = [("341602001001", False), ("341602001", True), ("341602", True)]


@pytest.mark.parametrize(("code", "rolled"), NODES, ids=["village", "town", "district"])
def test_api_figures_equal_the_hand_count(figures_world: dict[str, Any], code: str,
                                          rolled: bool) -> None:
    got = figures_world["client"].get("/api/figures", params={"node": code, **PERIOD}).json()
    assert got["from_rollup"] is rolled
    assert (got["received"], got["closed"]) == (EXPECTED["received"], EXPECTED["closed"])
    assert got["resolution_rate"] == pytest.approx(EXPECTED["resolution_rate"])
    assert got["mean_rating"] == pytest.approx(EXPECTED["mean_rating"])
    # The 邻长 who let B's deadline pass missed it; the 片长 answered B by their own deadline.
    tiers = {t["role"]: (t["on_time"], t["late"], t["missed"], t["total"])
             for t in got["tiers"]}
    assert tiers == EXPECTED["tiers"]
    assert {t["role"]: t["escalations"] for t in got["tiers"] if t["escalations"]} == \
        EXPECTED["escalations"]
    # B's two stars are the 片长's: the 邻长 who never answered it is not rated for it.
    assert [(x["name"], x["rated"], x["mean"]) for x in got["rating_by_neighbor_leader"]] == \
        EXPECTED["leaders"]
    assert [(_local_day(w["start"]), w["received"], w["closed"], w["overdue_replies"])
            for w in got["weeks"]] == EXPECTED["weeks"]
    assert [(x["name"], x["received"], x["closed"]) for x in got["categories"]] == \
        EXPECTED["categories"]
    assert got["median_first_reply_s"] / 3600 == pytest.approx(
        EXPECTED["median_first_reply_h"], rel=0.021)
    assert got["median_close_s"] / 3600 == pytest.approx(EXPECTED["median_close_h"], rel=0.021)


def test_weeks_follow_the_chosen_range_from_its_monday(figures_world: dict[str, Any]) -> None:
    client = figures_world["client"]
    for code in ("341602001001", "341602001"):
        got = client.get("/api/figures", params={
            "node": code, "start": "2026-03-04", "end": "2026-03-12"}).json()
        # Wednesday to Wednesday: two columns from Monday 03-02, counting only days in range.
        assert [(_local_day(w["start"]), w["received"]) for w in got["weeks"]] == [
            ("2026-03-02", 0), ("2026-03-09", 1)], code


def _svg_values(html: str, svg_class: str) -> list[tuple[str, int]]:
    svg = re.search(rf'<svg class="chart {svg_class}".*?</svg>', html, re.S)
    assert svg is not None, svg_class
    root = ElementTree.fromstring(svg.group(0))
    return [(r.get("class") or "", int(r.get("data-value") or 0))
            for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("data-value")]


@pytest.mark.parametrize(("code", "rolled"), NODES[:2], ids=["village", "town"])
def test_the_page_and_its_charts_say_the_same(figures_world: dict[str, Any], code: str,
                                              rolled: bool) -> None:
    html = figures_world["client"].get("/dashboard/figures",
                                       params={"node": code, **PERIOD}).text
    assert re.search(r'id="k-received">3<', html) and re.search(r'id="k-rate">66.7%<', html)
    assert ("按日汇总" in html) is rolled
    trend = _svg_values(html, "trend")
    assert trend == [(k, v) for _, *week in EXPECTED["weeks"]
                     for k, v in zip(("received", "closed", "overdue_replies"), week,
                                     strict=True)]
    cats = _svg_values(html, "cats")
    assert cats == [(k, v) for _, *row in EXPECTED["categories"]
                    for k, v in zip(("received", "closed"), row, strict=True)]
    assert "<text" in html and "03-02" in html and "03-09" in html  # axis labels
    # The tier table: one stacked bar per tier, its parts the hand count.
    for role, (on_time, late, missed, _total) in EXPECTED["tiers"].items():
        row = re.search(rf'<tr data-role="{role}">(.*?)</tr>', html, re.S)
        assert row is not None, role
        assert f"{on_time} / {late} / {missed}" in row.group(1)
        parts = dict(re.findall(r'<rect class="(on_time|late|missed)"[^>]*data-value="(\d+)"',
                                row.group(1)))
        assert parts == {"on_time": str(on_time), "late": str(late), "missed": str(missed)}
    assert "style=" not in html.split("<main>", 1)[1]


def test_xlsx_rates_are_percentages_and_durations_hours(figures_world: dict[str, Any]) -> None:
    from openpyxl import load_workbook

    client = figures_world["client"]
    for code in ("341602001001", "341602001"):
        r = client.get("/dashboard/export/figures.xlsx", params={"node": code, **PERIOD})
        wb = load_workbook(io.BytesIO(r.content))
        rows = {row[0].value: row[1] for row in wb["概况"].iter_rows(min_row=2)}
        rate = rows["办结率"]
        assert rate.value == pytest.approx(2 / 3) and rate.number_format == "0.0%"
        for key, hours in (("首次答复用时中位数(小时)", EXPECTED["median_first_reply_h"]),
                           ("办结用时中位数(小时)", EXPECTED["median_close_h"])):
            cell = rows[key]
            assert cell.value == round(cell.value, 1), (key, cell.value)
            assert cell.value == pytest.approx(hours, abs=0.15), (key, cell.value)
        tiers = list(wb["各层级"].iter_rows(values_only=True))
        assert tiers[0][:5] == ("层级", "应答复", "按时", "超时答复", "未答复(超时转上级)")
        assert tiers[1][1:5] == (3, 1, 1, 1)
        ranking = load_workbook(io.BytesIO(client.get(
            "/dashboard/export/ranking.xlsx", params={"node": code, **PERIOD}).content))
        head, *ranked = list(ranking["考核排名"].iter_rows())
        col = [c.value for c in head].index("办结率")
        assert ranked and all(row[col].number_format == "0.0%" for row in ranked)
