"""Open311 bad input answers as the spec says (403 for the api_key, 404 for what does not
exist, 400 for the rest, always the spec's error array in the asked format), and a key never
reads or files outside its subtree; the operator's CLI makes, lists and revokes keys."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree as SafeET
from sqlalchemy.engine import Engine

from core.clock import FakeClock
from core.db import session_scope
from core.open311 import keys
from tests.casehelpers import get, open_case
from tests.integration.test_cli_import import linzhang, set_up_city
from tests.open311site import Site, open311_site


@pytest.fixture
def site(engine: Engine, clock: FakeClock, tmp_path: Path) -> Iterator[Site]:
    with open311_site(engine, clock, tmp_path) as s:
        yield s


def _errors(r: httpx.Response, fmt: str) -> list[dict[str, Any]]:
    if fmt == "xml":
        assert r.headers["content-type"] == "text/xml; charset=utf-8"
        root = SafeET.fromstring(r.content)
        assert root.tag == "errors" and all(e.tag == "error" for e in root)
        return [{"code": int(e.findtext("code")), "description": e.findtext("description")}
                for e in root]
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    return r.json()  # type: ignore[no-any-return]


def _post(site: Site, fmt: str, **fields: str) -> httpx.Response:
    return httpx.post(f"{site.base}/requests.{fmt}", data=fields)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_missing_wrong_or_revoked_key_is_403_with_the_spec_error_array(
        site: Site, engine: Engine, clock: FakeClock, fmt: str) -> None:
    good = {"service_code": "1", "description": "井盖丢了"}
    for key, words in ((None, "缺少"), ("o311_nope", "无效"), ("x" * 5000, "无效")):
        r = _post(site, fmt, **good, **({"api_key": key} if key else {}))
        assert r.status_code == 403
        [err] = _errors(r, fmt)
        assert err["code"] == 403 and words in err["description"]
    with session_scope(engine) as s:
        keys.revoke_key(s, name="东关APP", now=clock.now())
    for r in (_post(site, fmt, api_key=site.v1_key, **good),
              httpx.get(f"{site.base}/requests.{fmt}", params={"api_key": site.v1_key})):
        assert r.status_code == 403
        assert "吊销" in _errors(r, fmt)[0]["description"]
    r = _post(site, fmt, api_key=site.v1_key, **good)
    en = httpx.post(f"{site.base}/requests.{fmt}", data={"api_key": site.v1_key, **good},
                    headers={"Accept-Language": "en"})
    assert "revoked" in _errors(en, fmt)[0]["description"]
    # Reads without a key are refused the same way (they are residents' problems).
    r = httpx.get(f"{site.base}/servicerequestupdates.{fmt}")
    assert r.status_code == 403 and _errors(r, fmt)[0]["code"] == 403


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_service_codes_that_do_not_exist_or_are_missing(site: Site, fmt: str) -> None:
    r = _post(site, fmt, api_key=site.town_key, service_code="999", description="x")
    assert r.status_code == 404 and "999" in _errors(r, fmt)[0]["description"]
    r = _post(site, fmt, api_key=site.town_key, description="x")
    assert r.status_code == 400 and "service_code" in _errors(r, fmt)[0]["description"]
    r = httpx.get(f"{site.base}/services/abc.{fmt}")
    assert r.status_code == 404 and _errors(r, fmt)[0]["code"] == 404


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_malformed_coordinates_and_too_long_descriptions_are_400(site: Site, fmt: str) -> None:
    base = {"api_key": site.town_key, "service_code": "1", "description": "x"}
    for bad in ({"lat": "north", "long": "115.7"}, {"lat": "91", "long": "115.7"},
                {"lat": "nan", "long": "115.7"}, {"lat": "33.8", "long": "-181"},
                {"lat": "33.8"}):
        r = _post(site, fmt, **{**base, **bad})
        assert r.status_code == 400, bad
        assert _errors(r, fmt)[0]["code"] == 400
    r = _post(site, fmt, **{**base, "description": "坑" * 4001})
    assert r.status_code == 400 and "4000" in _errors(r, fmt)[0]["description"]
    r = _post(site, fmt, **{**base, "email": "a" * 301})
    assert r.status_code == 400 and "email" in _errors(r, fmt)[0]["description"]
    r = _post(site, fmt, **{**base, "description": "坑" * 4000})
    assert r.status_code == 200


def test_a_place_we_cannot_find_goes_to_the_town_office_and_says_so(
        site: Site, engine: Engine) -> None:
    cases = {}
    for name, where in (("point", {"lat": "10.0", "long": "10.0"}),
                        ("address", {"address_string": "火星路1号"}),
                        ("nothing", {})):
        r = _post(site, "json", api_key=site.v1_key, service_code="1", description="x", **where)
        assert r.status_code == 200, r.text
        cases[name] = r.json()[0]
    for answer in cases.values():
        case = get(engine, int(answer["service_request_id"]))
        assert case.holder_id == site.city["town_admin"]  # the town office of 东关社区's key
        assert "花戏楼街道" in answer["service_notice"]
    assert "坐标" in cases["point"]["service_notice"]
    assert "地址" in cases["address"]["service_notice"]
    assert "未提供位置" in cases["nothing"]["service_notice"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_reads_never_reach_outside_the_keys_subtree(site: Site, engine: Engine,
                                                    clock: FakeClock, fmt: str) -> None:
    east = _post(site, "json", api_key=site.v1_key, service_code="1", description="东边",
                 address_id="3416020010010101001").json()[0]["service_request_id"]
    west = _post(site, "json", api_key=site.v2_key, service_code="1", description="西边",
                 address_id="3416020010020101001").json()[0]["service_request_id"]
    chat = open_case(engine, clock, site.city, text="居民聊天里反映的")  # not via Open311

    def ids(key: str, **params: str) -> list[str]:
        r = httpx.get(f"{site.base}/requests.{fmt}", params={"api_key": key, **params})
        assert r.status_code == 200, r.text
        if fmt == "xml":
            return [e.findtext("service_request_id") for e in SafeET.fromstring(r.content)]
        return [x["service_request_id"] for x in r.json()]

    assert ids(site.town_key) == [east, west]
    assert ids(site.v1_key) == [east]
    # Asking for the other village's subtree, or for its request by id, gets nothing of it.
    assert ids(site.v1_key, jurisdiction_id="341602001002") == []
    assert ids(site.v1_key, service_request_id=f"{west},{east},{chat}") == [east]
    assert ids(site.v1_key, jurisdiction_id="341602") == [east]  # above the scope: the scope
    assert ids(site.town_key, jurisdiction_id="341602001002") == [west]
    r = httpx.get(f"{site.base}/requests/{west}.{fmt}", params={"api_key": site.v1_key})
    assert r.status_code == 404
    r = httpx.get(f"{site.base}/requests/{chat}.{fmt}", params={"api_key": site.town_key})
    assert r.status_code == 404
    # Filing into another subtree is refused.
    r = _post(site, fmt, api_key=site.v1_key, service_code="1", description="x",
              jurisdiction_id="341602001002")
    assert r.status_code == 403
    ups = httpx.get(f"{site.base}/servicerequestupdates.json",
                    params={"api_key": site.v2_key}).json()
    assert {u["service_request_id"] for u in ups} <= {west}


def test_bad_formats_dates_and_statuses_are_400(site: Site) -> None:
    r = httpx.get(f"{site.base}/services.html")
    assert r.status_code == 400 and r.json()[0]["code"] == 400
    key = {"api_key": site.town_key}
    for params in ({"start_date": "2026-11-01"}, {"start_date": "2026-11-01T00:00:00"},
                   {"end_date": "yesterday"}, {"status": "pending"},
                   {"start_date": "0001-01-01T00:00:00+01:00"},
                   {"end_date": "9999-12-31T23:59:59-01:00"},
                   {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
                   {"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}):
        r = httpx.get(f"{site.base}/requests.xml", params={**key, **params})
        assert r.status_code == 400, params
        assert SafeET.fromstring(r.content)[0].findtext("code") == "400"
    r = httpx.post(f"{site.base}/requests.json", content=b"--x\r\n",
                   headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code in (400, 403)
    assert r.json()[0]["code"] == r.status_code


def test_the_cli_creates_lists_and_revokes_keys(tmp_path: Path) -> None:
    set_up_city(tmp_path)
    bad = linzhang(tmp_path, "open311", "key", "create", "--name", "12345", "--scope", "999")
    assert bad.returncode == 1 and "999" in bad.stderr and not bad.stdout
    made = linzhang(tmp_path, "open311", "key", "create", "--name", "12345",
                    "--scope", "341602001")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("o311_") and len(key) > 30
    again = linzhang(tmp_path, "open311", "key", "create", "--name", "12345",
                     "--scope", "341602001")
    assert again.returncode == 1
    listed = linzhang(tmp_path, "open311", "key", "list")
    assert listed.returncode == 0 and "12345\t" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout and key[:10] in listed.stdout
    assert linzhang(tmp_path, "open311", "key", "revoke", "--name", "12345").returncode == 0
    assert "revoked" in linzhang(tmp_path, "open311", "key", "list").stdout
    gone = linzhang(tmp_path, "open311", "key", "revoke", "--name", "12345")
    assert gone.returncode == 1
    with closing(sqlite3.connect(tmp_path / "city.db")) as db:
        [(stored,)] = db.execute("SELECT key_hash FROM open311_client").fetchall()
    assert stored == hashlib.sha256(key.encode()).hexdigest()  # only its hash is kept
