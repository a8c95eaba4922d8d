"""满意度测评 through the notices, the flows and the 考核 scorecard, on both databases: the
survey reaches each resident with a chat once, a press records one answer, a second press
changes it (never counting twice), anyone else's press is refused politely, and the results
show on the scorecard (with 需调整 under the threshold) and in its XLSX."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound, Press
from core import accounts
from core.cases.policy import CasePolicy
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope, write_session
from core.errors import PermissionDenied
from core.hierarchy.model import ChatIdentity
from core.hierarchy.queries import actor, node_by_code
from core.kaohe import read
from core.notices import survey
from core.rollup.refresh import refresh
from core.settings import Settings
from tests.cityfactory import City, add_person, build_city
from tests.support.kaoheset import MONTH, seed
from tests.support.server import serve
from webhooks.app import create_app

TOWN, VILLAGE = "341602001", "341602001001"
SURVEY_DAY = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
_ids = itertools.count(1)
# Residents with a chat: the seeded four, and five more neighbours of 邻长小赵 (一邻).
EXTRA = [f"一邻居民{i}" for i in range(1, 6)]
RESIDENTS = ["resident1", "resident2", "resident3", "resident4", *EXTRA]


@pytest.fixture
def town(engine: Engine, clock: FakeClock) -> City:
    city = build_city(engine)
    seed(engine, clock, city)
    for key in EXTRA:
        add_person(engine, city, key=key, role="resident", node="n1")
    with session_scope(engine) as s:
        for key in [*RESIDENTS, "leader1"]:
            s.add(ChatIdentity(person_id=city[key], platform="wechat", external_id=f"wx-{key}"))
    refresh(engine, clock=clock, tz=ZoneInfo("Asia/Shanghai"))  # the scorecard's cases
    clock.set(SURVEY_DAY)
    return city


def _start(engine: Engine, clock: FakeClock, city: City, who: str = "town_admin",
           node: str = TOWN) -> int:
    with write_session(engine) as s:
        sent = survey.start(s, who=actor(s, city[who]), node=node_by_code(s, node),
                            text="满意度测评：您对本邻邻长的工作满意吗？", now=clock.now(),
                            policy=CasePolicy())
    return sent.notice_id


def _press(engine: Engine, clock: FakeClock, key: str, notice_id: int, score: int) -> list[str]:
    """A press of one of the survey's buttons on WeChat; the replies it got."""
    uid = f"s{next(_ids)}"
    msg = Inbound(platform="wechat", update_id=uid, chat_id=f"wx-{key}",
                  sender_id=f"wx-{key}", received_at=clock.now(), message_id=uid,
                  press=Press("survey_rate", notice_id, 0, arg=str(score)))
    assert process(engine, inbound=msg, payload={"MsgId": uid}, clock=clock, settings=SETTINGS)
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT text FROM outbox WHERE dedupe_key LIKE :k"
                                         " ORDER BY id"), {"k": f"in:wechat:{uid}:%"}).scalars())


def _answers(engine: Engine) -> list[tuple[int, int, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(  # type: ignore[misc]
            "SELECT person_id, leader_id, score FROM survey_answer ORDER BY person_id"))]


def test_the_survey_reaches_each_resident_once_with_five_buttons(
        engine: Engine, clock: FakeClock, town: City) -> None:
    nid = _start(engine, clock, town)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT person_id, text, actions FROM outbox WHERE dedupe_key LIKE :k"),
            {"k": f"notice{nid}:p%"}).all()
        roles = conn.execute(sa.text("SELECT DISTINCT role FROM notice_recipient"
                                     " WHERE notice_id = :n"), {"n": nid}).scalars().all()
    assert sorted(int(r.person_id) for r in rows) == sorted(town[k] for k in RESIDENTS)
    assert roles == ["resident"]  # nobody is asked to pass on a survey about themselves
    for r in rows:
        acts = r.actions if isinstance(r.actions, list) else json.loads(r.actions)
        assert [(a["action"], a["arg"], a["label"]) for a in acts] == [
            ("survey_rate", str(n), f"{n}分") for n in range(1, 6)]
        assert "请为您所在邻的邻长打分" in r.text


def test_a_press_records_one_answer_and_a_second_changes_it(
        engine: Engine, clock: FakeClock, town: City) -> None:
    nid = _start(engine, clock, town)
    assert _press(engine, clock, "resident1", nid, 4) == ["已记录：4分。谢谢您的评价！"]
    assert _answers(engine) == [(town["resident1"], town["leader1"], 4)]
    clock.advance(timedelta(minutes=5))
    assert _press(engine, clock, "resident1", nid, 2) == ["已改为2分。"]
    assert _press(engine, clock, "resident1", nid, 2) == ["您已打过2分，无需再按。"]
    assert _answers(engine) == [(town["resident1"], town["leader1"], 2)]
    # 居民吴 of 二邻 rates 邻长小钱, not 邻长小赵.
    _press(engine, clock, "resident3", nid, 5)
    assert _answers(engine)[-1] == (town["resident3"], town["leader2"], 5)
    with session_scope(engine) as s:
        got = survey.results(s, scope=node_by_code(s, TOWN), start=SURVEY_DAY,
                             end=SURVEY_DAY + timedelta(days=1))
    assert {k: (r.answers, r.mean) for k, r in got.items()} == {
        town["leader1"]: (1, 2.0), town["leader2"]: (1, 5.0)}


def test_someone_the_survey_was_not_sent_to_is_refused_politely(
        engine: Engine, clock: FakeClock, town: City) -> None:
    nid = _start(engine, clock, town, who="secretary2", node="341602001002")  # 西关社区 only
    replies = _press(engine, clock, "resident1", nid, 5)  # a resident of 东关社区
    assert len(replies) == 1 and "您不在这次测评的居民名单中" in replies[0]
    replies = _press(engine, clock, "leader1", nid, 5)  # a 邻长 pressing a forwarded copy
    assert "您不在这次测评的居民名单中" in replies[0]
    assert _answers(engine) == []
    with write_session(engine) as s, pytest.raises(PermissionDenied):
        survey.start(s, who=actor(s, town["secretary2"]), node=node_by_code(s, VILLAGE),
                     text="测评", now=clock.now(), policy=CasePolicy())


def _all_rate(engine: Engine, clock: FakeClock, nid: int, score: int) -> None:
    for key in ("resident1", "resident2", *EXTRA):  # the seven residents of 一邻 (邻长小赵)
        _press(engine, clock, key, nid, score)
    _press(engine, clock, "resident3", nid, 5)  # one answer for 邻长小钱: too few to flag


def test_the_results_reach_the_scorecard_and_flag_who_needs_adjusting(
        engine: Engine, clock: FakeClock, town: City) -> None:
    nid = _start(engine, clock, town)
    _all_rate(engine, clock, nid, 2)
    _press(engine, clock, "resident1", nid, 4)  # changed: (4 + 2 × 6) / 7 = 2.29
    with session_scope(engine) as s:
        rep = read.month_report(s, scope=node_by_code(s, TOWN), month=MONTH, min_cases=1,
                                tz=UTC, adjust=read.Adjust(3.0, 5))
    zhao = rep.survey[town["leader1"]]
    assert (zhao.answers, round(zhao.mean, 2)) == (7, 2.29)
    assert rep.survey[town["leader2"]].answers == 1
    assert [r.unit.name for r in rep.adjust] == ["邻长小赵"]
    with session_scope(engine) as s:  # seven answers: asked for eight, nobody is flagged
        rep8 = read.month_report(s, scope=node_by_code(s, TOWN), month=MONTH, min_cases=1,
                                 tz=UTC, adjust=read.Adjust(3.0, 8))
    assert rep8.adjust == []


@pytest.fixture
def site(engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock,
         town: City) -> Iterator[dict[str, Any]]:
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), timezone="Asia/Shanghai",
                  dashboard_min_cases=1)
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    with session_scope(engine) as s:
        token = accounts.issue_login_token(s, person_id=town["town_admin"], now=clock.now(),
                                           ttl=timedelta(minutes=15))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"/login/{token}").status_code == 303
        yield {"client": client, "city": town}


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m is not None
    return m.group(1)


def test_an_official_starts_it_on_the_dashboard_and_reads_it_on_the_scorecard(
        engine: Engine, clock: FakeClock, site: dict[str, Any]) -> None:
    from openpyxl import load_workbook

    client = site["client"]
    html = client.get("/dashboard/kaohe", params={"node": TOWN, "month": MONTH}).text
    assert "向居民发起测评" in html and "本月没有需调整的邻长" in html
    form = {"csrf": _csrf(html), "node_code": TOWN, "month": MONTH, "text": ""}
    assert client.post("/dashboard/kaohe/survey", data={**form, "csrf": "x"}).status_code == 403
    # A subtree the official does not hold: refused, in words, nothing sent.
    r = client.post("/dashboard/kaohe/survey", data={**form, "node_code": "341603"})
    assert r.status_code == 303 and "msg=" in r.headers["location"]
    r = client.post("/dashboard/kaohe/survey", data=form)
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/notices/")
    nid = int(r.headers["location"].rsplit("/", 1)[1])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM notice WHERE survey")).scalar() == 1
    _all_rate(engine, clock, nid, 2)
    html = client.get("/dashboard/kaohe", params={"node": TOWN, "month": MONTH}).text
    assert "2.00（7人）" in html and '<b class="warn">需调整</b>' in html
    assert "5.00（1人）" in html
    book = client.get("/dashboard/kaohe/export.xlsx", params={"node": TOWN, "month": MONTH})
    rows = list(load_workbook(io.BytesIO(book.content))["邻长考核"].iter_rows(values_only=True))
    tail = {x[3]: x[-3:] for x in rows[1:]}
    assert rows[0][-3:] == ("测评均分", "测评人数", "测评结论")
    assert tail["邻长小赵"] == (2.0, 7, "需调整") and tail["邻长小钱"] == (5.0, 1, None)
    # The receipts page counts the answers as confirmations.
    receipt = client.get(f"/dashboard/notices/{nid}").text
    assert "<td>合计</td><td>9</td>" in receipt.replace("\n", "")
