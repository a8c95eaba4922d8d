"""考核 means what it says: a seeded month (tests/support/kaoheset.py) counted by hand against
the rollups, the live count, the rankings, the 最美邻长 shortlist's minimum, the page and its
XLSX; and nobody reads a subtree that is not theirs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.model import Node, Person, Post
from core.hierarchy.queries import node_by_code
from core.kaohe import live, read
from core.rollup.refresh import refresh
from core.settings import Settings
from tests.cityfactory import City, build_city
from tests.support.kaoheset import EXPECTED, MONTH, seed
from tests.support.server import serve
from tests.support.xlsx_xml import live_formulas
from webhooks.app import create_app

TZ = ZoneInfo("Asia/Shanghai")
DISTRICT, TOWN, VILLAGE = "341602", "341602001", "341602001001"


def _other_town(engine: Engine, city: City) -> int:
    """A second town (古井镇) with an admin of its own; returns the admin's id."""
    with session_scope(engine) as s:
        town = Node(code="341602002", parent_id=city.nodes["district"], level="town",
                    name="古井镇", path="/")
        s.add(town)
        s.flush()
        district = s.get(Node, city.nodes["district"])
        assert district is not None and town.id is not None
        town.path = f"{district.path}{town.id}/"
        admin = Person(name="古井镇管理员", phone="13900000099")
        s.add(admin)
        s.flush()
        assert admin.id is not None
        s.add(Post(person_id=admin.id, node_id=town.id, role="admin"))
        return admin.id


@pytest.fixture
def month(engine: Engine, clock: FakeClock) -> dict[str, Any]:
    city = build_city(engine)
    ids = seed(engine, clock, city)
    other = _other_town(engine, city)
    refresh(engine, clock=clock, tz=TZ)
    refresh(engine, clock=clock, tz=TZ)  # the first one rebuilt; marks since then are cheap
    return {"city": city, "ids": ids, "other_admin": other}


def _counts(k: Any) -> dict[str, int]:
    return {f: getattr(k, f) for f in EXPECTED["total"]}


def _report(engine: Engine, code: str, min_cases: int) -> read.MonthReport:
    with session_scope(engine) as s:
        return read.month_report(s, scope=node_by_code(s, code), month=MONTH,
                                 min_cases=min_cases, all_leaders=True)


@pytest.mark.parametrize("code", [DISTRICT, TOWN])
def test_the_month_equals_the_hand_count(engine: Engine, month: dict[str, Any],
                                         code: str) -> None:
    rep = _report(engine, code, 1)
    assert _counts(rep.total) == EXPECTED["total"]
    for name, want in EXPECTED["rates"].items():
        assert getattr(rep.total, name) == pytest.approx(want), name
    people = {r.unit.name: r for r in rep.leaders.ranked}
    assert {n: _counts(r.k) for n, r in people.items()} == EXPECTED["leaders"]
    assert {n: r.k.score for n, r in people.items()} == EXPECTED["scores"]
    assert {r.unit.name: _counts(r.k) for r in rep.villages.ranked} == EXPECTED["villages"]
    assert {r.unit.name: r.k.score for r in rep.villages.ranked} == EXPECTED["village_scores"]
    assert {r.unit.name: _counts(r.k) for r in rep.departments.ranked} == \
        EXPECTED["departments"]
    # Every case was first routed to a 邻长: one tier, the whole month.
    assert [(role, _counts(k)) for role, k in rep.tiers] == \
        [("neighbor_leader", EXPECTED["total"])]


def test_a_village_reads_only_its_own_cases(engine: Engine, month: dict[str, Any]) -> None:
    rep = _report(engine, VILLAGE, 1)
    assert _counts(rep.total) == EXPECTED["villages"]["东关社区"]
    assert {r.unit.name for r in rep.leaders.ranked} == {"邻长小赵", "邻长小钱"}
    assert rep.villages.ranked == [] and rep.towns.ranked == []


def test_the_rollups_say_what_counting_the_cases_says(engine: Engine,
                                                      month: dict[str, Any]) -> None:
    for code in (DISTRICT, TOWN, VILLAGE):
        rolled = _report(engine, code, 1)
        with session_scope(engine) as s:
            counted = live.live_report(s, scope=node_by_code(s, code), month=MONTH, tz=TZ,
                                       min_cases=1)
        assert _counts(counted.total) == _counts(rolled.total), code
        for part in ("towns", "villages", "departments", "leaders"):
            a, b = getattr(rolled, part), getattr(counted, part)
            assert [(r.unit.name, r.rank, _counts(r.k)) for r in a.ranked] == \
                [(r.unit.name, r.rank, _counts(r.k)) for r in b.ranked], (code, part)


def test_a_later_answer_reaches_the_month_on_the_next_refresh(engine: Engine, clock: FakeClock,
                                                             month: dict[str, Any]) -> None:
    from core.cases import actions
    from tests.casehelpers import do, get

    e = month["ids"]["E"]  # opened 03-31 20:00 local, still waiting: not judged yet
    clock.set(clock.now().replace(hour=13))  # 21:00 local on 03-31, inside its 4 h limit
    do(engine, actions.reply, clock=clock, case_id=e, person_id=month["city"]["leader1"],
       version=get(engine, e).version, text="明早来看")
    assert refresh(engine, clock=clock, tz=TZ).marks > 0  # marks only, no rebuild
    total = _report(engine, DISTRICT, 1).total
    assert (total.judged, total.signed) == (EXPECTED["total"]["judged"] + 1,
                                            EXPECTED["total"]["signed"] + 1)
    assert total.accept_rate == pytest.approx(4 / 6)


def test_rankings_put_the_best_score_first_and_leave_small_units_out(
        engine: Engine, month: dict[str, Any]) -> None:
    rep = _report(engine, DISTRICT, 2)
    assert [(r.rank, r.unit.name) for r in rep.leaders.ranked] == [(1, "邻长小钱"),
                                                                  (2, "邻长小赵")]
    assert [r.unit.name for r in rep.leaders.too_few] == ["邻长小冯"]
    assert [r.unit.name for r in rep.villages.ranked] == ["东关社区"]
    assert [r.unit.name for r in rep.villages.too_few] == ["西关社区"]
    # The town with cases is ranked; the other town, without any, is listed.
    assert [r.unit.name for r in rep.towns.ranked] == ["花戏楼街道"]
    assert [r.unit.name for r in rep.towns.too_few] == ["古井镇"]
    assert rep.departments.ranked == [] and len(rep.departments.too_few) == 1
    # The page's read keeps those under the minimum on the database, only counted.
    with session_scope(engine) as s:
        page_read = read.month_report(s, scope=node_by_code(s, DISTRICT), month=MONTH,
                                      min_cases=2)
    assert [r.unit.name for r in page_read.leaders.ranked] == ["邻长小钱", "邻长小赵"]
    assert len(page_read.leaders.too_few) == 1


@pytest.mark.parametrize(("min_cases", "names"), [
    (1, ["邻长小钱", "邻长小赵", "邻长小冯"]), (2, ["邻长小钱", "邻长小赵"]), (3, ["邻长小赵"]),
    (5, ["邻长小赵"]), (6, [])])
def test_the_shortlist_keeps_the_minimum_volume_rule(engine: Engine, month: dict[str, Any],
                                                     min_cases: int, names: list[str]) -> None:
    # 小赵 has 5 cases over the year (A B E F, and H in April), 小钱 2, 小冯 1.
    with session_scope(engine) as s:
        sl = read.shortlist(s, scope=node_by_code(s, DISTRICT), year=2026, min_cases=min_cases)
    got = {town.name: [r.unit.name for r in rows] for town, rows in sl.towns}
    assert got == ({"花戏楼街道": names} if names else {})


@pytest.fixture
def site(engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock,
         month: dict[str, Any]) -> Iterator[dict[str, Any]]:
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), timezone="Asia/Shanghai",
                  dashboard_min_cases=2)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)

    def login(client: httpx.Client, person: int) -> httpx.Client:
        with session_scope(engine) as s:
            token = accounts.issue_login_token(s, person_id=person, now=clock.now(),
                                               ttl=timedelta(minutes=15))
        assert client.get(f"/login/{token}").status_code == 303
        return client

    with serve(app) as url:
        yield {"url": url, "login": login, **month}


@contextmanager
def _client(site: dict[str, Any], who: int | None = None) -> Iterator[httpx.Client]:
    """A client on the site, signed in as `who` (None: not signed in)."""
    with httpx.Client(base_url=site["url"], timeout=30) as client:
        yield site["login"](client, who) if who is not None else client


def test_the_page_shows_the_month_and_its_rankings(site: dict[str, Any]) -> None:
    with _client(site, site["city"]["district_admin"]) as client:
        html = client.get("/dashboard/kaohe", params={"node": DISTRICT, "month": MONTH}).text
    for kpi, shown in (("accept", "60.0%"), ("ontime", "66.7%"), ("satisfied", "75.0%"),
                       ("visit", "80.0%"), ("redo", "40.0%"), ("overdue", "1")):
        assert f'id="k-{kpi}">{shown}<' in html, kpi
    assert html.index("邻长小钱") < html.index("邻长小赵")
    assert "样本不足未排名：邻长小冯" not in html  # the page only counts them
    assert "样本不足未排名：1 人" in html
    assert "花戏楼街道" in html and "东关社区" in html and 'class="on">考核' in html


def test_the_xlsx_has_every_row_as_numbers_and_no_formulas(site: dict[str, Any]) -> None:
    from openpyxl import load_workbook

    with _client(site, site["city"]["district_admin"]) as client:
        r = client.get("/dashboard/kaohe/export.xlsx", params={"node": DISTRICT,
                                                               "month": MONTH})
        short = client.get("/dashboard/kaohe/shortlist.xlsx",
                           params={"node": DISTRICT, "year": "2026"})
    assert r.status_code == 200 and live_formulas(r.content) == []
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["概况", "各层级", "乡镇排名", "村社区排名", "部门排名", "邻长考核"]
    summary = {row[0]: row[1] for row in wb["概况"].iter_rows(min_row=2, values_only=True)}
    assert summary["签收率"] == pytest.approx(0.6) and summary["超期件数"] == 1
    assert wb["概况"]["B6"].number_format == "0.0%"
    leaders = list(wb["邻长考核"].iter_rows(values_only=True))
    assert leaders[0][:5] == ("名次", "乡镇(街道)", "村(社区)", "邻长", "收到")
    assert [(x[0], x[3], x[4]) for x in leaders[1:]] == [
        (1, "邻长小钱", 2), (2, "邻长小赵", 4), (None, "邻长小冯", 1)]
    assert leaders[1][1:3] == ("花戏楼街道", "东关社区")
    villages = list(wb["村社区排名"].iter_rows(values_only=True))
    assert [(x[0], x[1], x[2]) for x in villages[1:]] == [
        (1, VILLAGE, "东关社区"), (None, "341602001002", "西关社区")]
    assert short.status_code == 200
    rows = list(load_workbook(io.BytesIO(short.content))["最美邻长"].iter_rows(values_only=True))
    assert [(x[0], x[1], x[3]) for x in rows[1:]] == [(1, "花戏楼街道", "邻长小钱"),
                                                      (2, "花戏楼街道", "邻长小赵")]


@pytest.mark.parametrize("path", ["/dashboard/kaohe", "/dashboard/kaohe/export.xlsx",
                                  "/dashboard/kaohe/shortlist",
                                  "/dashboard/kaohe/shortlist.xlsx"])
def test_an_official_reads_only_their_own_subtree(site: dict[str, Any], path: str) -> None:
    with _client(site, site["other_admin"]) as client:
        assert client.get(path, params={"node": TOWN}).status_code == 403
        assert client.get(path, params={"node": "341602002"}).status_code == 200
        # Without a node: their own town, which holds none of the seeded cases.
        own = client.get(path, params={"month": MONTH} if "shortlist" not in path else {})
        assert own.status_code == 200 and "邻长小赵" not in own.text
    with _client(site, site["city"]["secretary2"]) as client:  # 西关社区's 书记
        assert client.get(path, params={"node": VILLAGE}).status_code == 403
    with _client(site) as client:
        r = client.get(path, params={"node": TOWN})
        assert r.status_code == 303 and r.headers["location"] == "/login"


@pytest.mark.parametrize(("params", "said"), [
    ({"month": "2026-13"}, "“2026-13”不是有效的月份"), ({"month": "2026-3"}, "YYYY-MM"),
    ({"month": "march"}, "YYYY-MM"), ({"month": "2026-03-01"}, "YYYY-MM")])
def test_a_bad_month_is_a_400_that_says_why(site: dict[str, Any], params: dict[str, str],
                                            said: str) -> None:
    with _client(site, site["city"]["district_admin"]) as client:
        for path in ("/dashboard/kaohe", "/dashboard/kaohe/export.xlsx"):
            r = client.get(path, params={"node": DISTRICT, **params})
            assert r.status_code == 400 and said in r.json()["detail"], (path, r.text)
        r = client.get("/dashboard/kaohe/shortlist", params={"year": "20x6"})
        assert r.status_code == 400 and "不是有效的年份" in r.json()["detail"]
