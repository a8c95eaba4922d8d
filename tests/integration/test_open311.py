"""Open311 GeoReport v2 under /open311/v2/: the spec's own example requests answer as the spec
documents (XML and JSON), a client written from the spec files and reads back a request, and a
posted request becomes a case routed like any report, its source recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from defusedxml import ElementTree as SafeET
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.cases import actions
from core.cases.model import Case, CaseEvent
from core.clock import FakeClock
from core.open311.model import Open311Request
from tests.casehelpers import do, get, kinds
from tests.open311site import ADDRESS, N1_POINT, Site, open311_site
from tests.support.open311_client import GeoReport, GeoReportError

# The spec's POST example body (GeoReport_v2, "POST Service Request", Example Request).
SPEC_POST = ("api_key=xyz&jurisdiction_id=city.gov&service_code=001&lat=37.76524078"
             "&long=-122.4212043&address_string=1234+5th+street&email=smit333%40sfgov.edu"
             "&device_id=tt222111&account_id=123456&first_name=john&last_name=smith"
             "&phone=111111111&description=A+large+sinkhole+is+destroying+the+street"
             "&media_url=http%3A%2F%2Ffarm3.static.flickr.com%2F2002%2F2212426634_5ed477a060.jpg"
             "&attribute[WHISPAWN]=123456&attribute[WHISDORN]=COISL001")
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture
def site(engine: Engine, clock: FakeClock, tmp_path: Path) -> Iterator[Site]:
    with open311_site(engine, clock, tmp_path) as s:
        yield s


def _xml(r: httpx.Response) -> Any:
    assert r.headers["content-type"] == "text/xml; charset=utf-8"
    assert r.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return SafeET.fromstring(r.content)


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_the_spec_examples_answer_as_documented(site: Site, fmt: str) -> None:
    base = site.base
    # GET Service List: https://api.city.gov/dev/v2/services.xml?jurisdiction_id=city.gov
    r = httpx.get(f"{base}/services.{fmt}?jurisdiction_id=city.gov")
    assert r.status_code == 200
    wanted = {"service_code", "service_name", "description", "metadata", "type", "keywords",
              "group"}
    if fmt == "xml":
        root = _xml(r)
        assert root.tag == "services" and [e.tag for e in root] == ["service"] * 3
        assert {e.tag for e in root[0]} == wanted
        assert root[0].findtext("metadata") == "false"
        assert root[0].findtext("type") == "realtime"
    else:
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert len(r.json()) == 3 and set(r.json()[0]) == wanted
    # GET Service Definition: services/033.xml — ours are the category ids.
    r = httpx.get(f"{base}/services/001.{fmt}?jurisdiction_id=city.gov")
    assert r.status_code == 200
    if fmt == "xml":
        root = _xml(r)
        assert root.tag == "service_definition" and root.findtext("service_code") == "1"
        assert root.find("attributes") is not None
    else:
        assert r.json() == {"service_code": "1", "attributes": []}
    # POST Service Request, the example body verbatim: api_key=xyz is no key of ours, and the
    # spec's own error example is what comes back.
    r = httpx.post(f"{base}/requests.{fmt}", content=SPEC_POST, headers=FORM)
    assert r.status_code == 403
    errors = ([{"code": int(e.findtext("code")), "description": e.findtext("description")}
               for e in _xml(r)] if fmt == "xml" else r.json())
    assert errors[0]["code"] == 403 and errors[0]["description"]
    # ... and with our key: filed (San Francisco is nowhere in the tree: the town office).
    body = SPEC_POST.replace("api_key=xyz", f"api_key={site.town_key}")
    r = httpx.post(f"{base}/requests.{fmt}", content=body, headers=FORM)
    assert r.status_code == 200, r.text
    if fmt == "xml":
        root = _xml(r)
        assert root.tag == "service_requests" and root[0].tag == "request"
        got = {e.tag: e.text for e in root[0]}
    else:
        got = r.json()[0]
    assert set(got) == {"service_request_id", "service_notice", "account_id"}
    assert got["account_id"] == "123456"
    assert "花戏楼街道" in got["service_notice"]
    sid = got["service_request_id"]
    # GET Service Requests: the sample URL (2010: nothing then), then the one just filed.
    # (httpx would drop a URL's own query beside params=: the key goes into the URL too.)
    key = f"&api_key={site.town_key}"
    r = httpx.get(f"{base}/requests.{fmt}?start_date=2010-05-24T00:00:00Z"
                  f"&end_date=2010-06-24T00:00:00Z&status=open&jurisdiction_id=city.gov{key}")
    assert r.status_code == 200
    assert (len(_xml(r)) if fmt == "xml" else len(r.json())) == 0
    r = httpx.get(f"{base}/requests/{sid}.{fmt}?jurisdiction_id=city.gov{key}")
    assert r.status_code == 200
    row = ({e.tag: e.text for e in _xml(r)[0]} if fmt == "xml" else r.json()[0])
    assert {"service_request_id", "status", "status_notes", "service_name", "service_code",
            "description", "agency_responsible", "service_notice", "requested_datetime",
            "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
            "long", "media_url"} == set(row)
    assert row["status"] == "open" and row["service_code"] == "1"
    assert row["description"] == "A large sinkhole is destroying the street"
    assert row["requested_datetime"] == "2026-11-23T10:00:00+08:00"  # ISO 8601, with offset
    assert row["media_url"].startswith("http://farm3.static.flickr.com/")
    # GET service_request_id from a token: tokens/123456.xml — ours is the request's own id.
    r = httpx.get(f"{base}/tokens/{sid}.{fmt}?jurisdiction_id=city.gov")
    assert r.status_code == 200
    tok = ({e.tag: e.text for e in _xml(r)[0]} if fmt == "xml" else r.json()[0])
    assert tok == {"service_request_id": sid, "token": sid}
    r = httpx.get(f"{base}/tokens/123456.{fmt}?jurisdiction_id=city.gov")
    assert r.status_code == 404


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_spec_client_files_a_request_and_reads_the_answers_back(
        site: Site, engine: Engine, clock: FakeClock, fmt: str) -> None:
    client = GeoReport(site.base, site.town_key, fmt=fmt)
    services = {s["service_name"]: s["service_code"] for s in client.services()}
    posted = client.post_request(service_code=services["公共设施"], lat=str(N1_POINT[0]),
                                 long=str(N1_POINT[1] + 0.0005), description="路灯不亮了",
                                 first_name="明", last_name="李", phone="13700000000")
    sid = posted["service_request_id"]
    assert "一邻" in posted["service_notice"] and "邻长" in posted["service_notice"]
    # Routed like any report: to n1's 邻长, the source recorded.
    case = get(engine, int(sid))
    assert case.holder_id == site.city["leader1"] and case.state == "open"
    with Session(engine) as s:
        row = s.get(Open311Request, int(sid))
        assert row is not None and row.placed_by == "coordinates" and row.phone == "13700000000"
    assert kinds(engine, int(sid))[0] == "opened"
    with Session(engine) as s:
        opened = s.exec(select(CaseEvent).where(CaseEvent.case_id == int(sid))).first()
        assert opened is not None and opened.via == "open311:12345热线"
    clock.advance(timedelta(minutes=30))
    do(engine, actions.reply, clock=clock, case_id=int(sid), person_id=site.city["leader1"],
       version=case.version, text="明天上午来修")
    clock.advance(timedelta(hours=20))
    do(engine, actions.resolve, clock=clock, case_id=int(sid), person_id=site.city["leader1"],
       version=get(engine, int(sid)).version, note="已换灯泡")
    # Read back: the request is closed (resolved) with the holder's last words as notes ...
    mine = client.request(sid)
    assert mine["status"] == "closed" and mine["status_notes"] == "已换灯泡"
    assert mine["agency_responsible"] == "一邻"
    assert [r["service_request_id"] for r in client.requests(status="closed")] == [sid]
    assert client.requests(status="open") == []
    assert client.token(sid)["service_request_id"] == sid
    # ... and FixMyStreet's updates say what happened, in order, with the answers.
    ups = client.updates()
    # (A first answer accepts the case too: its own update, without words.)
    assert [(u["status"], u["description"] or "") for u in ups] == [
        ("in_progress", ""), ("in_progress", "明天上午来修"), ("fixed", "已换灯泡")]
    assert all(u["service_request_id"] == sid for u in ups)
    assert ups[1]["updated_datetime"] == "2026-11-23T10:30:00+08:00"
    assert client.updates(start_date="2026-11-24T00:00:00+08:00") == ups[2:]


def test_a_request_is_placed_by_address_by_grid_code_and_by_boundary(
        site: Site, engine: Engine) -> None:
    client = GeoReport(site.base, site.town_key, fmt="json")
    by_address = client.post_request(service_code="3", address_string=ADDRESS.replace(
        "3号楼", "3号楼 "), description="楼道堆物")
    assert get(engine, int(by_address["service_request_id"])).holder_id == site.city["leader1"]
    by_code = client.post_request(service_code="3", address_id="3416020010010101002",
                                  description="楼道堆物")
    assert get(engine, int(by_code["service_request_id"])).holder_id == site.city["leader2"]
    # A grid code outside the key's subtree places nothing: the key's town office.
    v1 = GeoReport(site.base, site.v1_key, fmt="json")
    outside = v1.post_request(service_code="3", address_id="3416020010020101001",
                              description="x")
    case = get(engine, int(outside["service_request_id"]))
    assert case.holder_id == site.city["town_admin"]
    assert "花戏楼街道" in outside["service_notice"]
    # The filing key still reads it back, though the case sits above its village.
    assert v1.request(outside["service_request_id"])["status"] == "open"
    with pytest.raises(GeoReportError) as err:
        GeoReport(site.base, site.v2_key, fmt="json").request(outside["service_request_id"])
    assert err.value.status == 404


def test_xml_answers_stay_parseable_whatever_a_client_wrote(site: Site) -> None:
    client = GeoReport(site.base, site.town_key, fmt="xml")
    posted = client.post_request(service_code="1", description="灯\x01坏了\x0b <b>&amp;")
    assert client.request(posted["service_request_id"])["description"] == "灯坏了 <b>&amp;"


def test_a_point_inside_a_boundary_goes_to_that_node(site: Site, engine: Engine) -> None:
    import json

    import sqlalchemy as sa

    from core.hierarchy.boundaries import B

    ring = [[116.0, 34.0], [116.1, 34.0], [116.1, 34.1], [116.0, 34.1], [116.0, 34.0]]
    with engine.begin() as conn:
        conn.execute(sa.insert(B).values(
            node_id=site.city.nodes["n3"], geometry=json.dumps(
                {"type": "Polygon", "coordinates": [ring]}), shape="{}",
            west=116.0, south=34.0, east=116.1, north=34.1))
    client = GeoReport(site.base, site.town_key, fmt="xml")
    posted = client.post_request(service_code="1", lat="34.05", long="116.05",
                                 description="河道有垃圾")
    case: Case = get(engine, int(posted["service_request_id"]))
    assert case.holder_id == site.city["leader3"]
    assert (case.latitude, case.longitude) == (34.05, 116.05)


def test_a_filed_request_tells_its_holder_who_filed_it_and_writes_nothing_to_the_system(
        site: Site, engine: Engine) -> None:
    client = GeoReport(site.base, site.town_key, fmt="json")
    posted = client.post_request(service_code="3", address_string=ADDRESS,
                                 description="楼道堆物挡路")
    case_id = int(posted["service_request_id"])
    leader = site.city["leader1"]
    with engine.connect() as conn:
        system = conn.execute(sa.text("SELECT resident_id FROM cases WHERE id = :c"),
                              {"c": case_id}).scalar_one()
        to_system = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE person_id = :p"),
                                 {"p": system}).scalar_one()
        card = conn.execute(sa.text(
            "SELECT text FROM outbox WHERE person_id = :p AND case_id = :c ORDER BY id"),
            {"p": leader, "c": case_id}).scalars().first()
    assert to_system == 0  # the system reads answers back; no chat message for it
    assert card is not None and "楼道堆物挡路" in card
    assert "来自12345热线" in card and "无法通过聊天联系" not in card, card
