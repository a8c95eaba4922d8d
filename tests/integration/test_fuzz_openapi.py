"""schemathesis against /openapi.json over real loopback HTTP: every documented operation (the
dashboard's JSON API and the Telegram / WeChat / WeCom webhooks) gets generated requests,
signed in as a town admin (cookie and CSRF header, so the API is exercised beyond 401) and
with the Telegram secret (so bodies reach the parser). Checks: never a 5xx, every documented
answer matches its schema and content type, and every request is answered within a timeout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.open311 import keys
from core.settings import Settings
from tests.casehelpers import open_case
from tests.cityfactory import build_city
from tests.support.server import serve
from tests.support.wechat import (
    DOC_AES_KEY,
    DOC_APP_ID,
    DOC_TOKEN,
    WECOM_AES_KEY,
    WECOM_CORP_ID,
    WECOM_TOKEN,
)
from webhooks.app import create_app

SECRET = "fuzz-secret"
EXAMPLES = 60  # per operation; 15 operations
TIMEOUT = 10.0  # seconds per request: a hang fails the test


@pytest.fixture
def site(engine: Engine, tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    city = build_city(engine)
    for i in range(3):
        open_case(engine, clock, city, text=f"路灯坏了{i}")
    st = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url="http://dash.test",
                  telegram_webhook_secret=SecretStr(SECRET),
                  wechat_app_id=DOC_APP_ID, wechat_token=SecretStr(DOC_TOKEN),
                  wechat_encoding_aes_key=SecretStr(DOC_AES_KEY),
                  wecom_corp_id=WECOM_CORP_ID, wecom_agent_id="1",
                  wecom_token=SecretStr(WECOM_TOKEN),
                  wecom_encoding_aes_key=SecretStr(WECOM_AES_KEY),
                  wecom_bot_token=SecretStr("bot-token"),
                  wecom_bot_encoding_aes_key=SecretStr(DOC_AES_KEY))
    container = build_container(st, clock=clock, engine=engine)
    app = create_app(st, clock=clock, container=container, run_jobs=False)
    with session_scope(engine) as s:
        token = accounts.issue_login_token(s, person_id=city["town_admin"], now=clock.now(),
                                           ttl=timedelta(minutes=15))
        open311_key = keys.create_key(s, name="fuzz", scope_code="341602001", now=clock.now())
    with serve(app) as url, httpx.Client(base_url=url, timeout=TIMEOUT) as browser:
        signed_in = browser.get(f"/login/{token}")
        assert signed_in.status_code == 303
        cookie = browser.cookies["lz_dash"]
        csrf = browser.get("/api/me").json()["csrf_token"]
        doc = browser.get("/openapi.json").json()
        yield {"url": url, "cookie": cookie, "csrf": csrf, "doc": doc, "open311_key": open311_key}


def test_the_webhooks_are_in_the_openapi_document(site: dict[str, Any]) -> None:
    paths = site["doc"]["paths"]
    assert "requestBody" in paths["/webhooks/telegram"]["post"]
    for path in ("/webhooks/wechat", "/webhooks/wecom"):
        assert {"get", "post"} <= set(paths[path])
        assert "application/xml" in paths[path]["post"]["requestBody"]["content"]
    assert "/api/cases/{case_id}/{action}" in paths


def test_every_operation_survives_generated_requests(site: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(site["doc"])
    session = requests.Session()
    session.cookies.set("lz_dash", site["cookie"])
    headers = {"X-CSRF-Token": site["csrf"], "X-Telegram-Bot-Api-Secret-Token": SECRET}
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(("/api/", "/webhooks/")):
            continue  # the web chat's own routes are the web chat tests' business
        labels.append(operation.label)

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(base_url=site["url"], session=session, headers=headers,
                                   timeout=TIMEOUT, checks=checks)

        run()
    assert len(labels) >= 15, labels
    assert any("/webhooks/telegram" in x for x in labels)
    assert any("/api/cases/{case_id}/{action}" in x for x in labels)


def _with_key(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """The document with every api_key (query or form field) fixed to a valid key and the
    posted service codes to ours, so that generated requests get past the 403 and the 404 and
    reach the parsers and the case engine."""
    for item in doc["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                if param["name"] == "api_key":
                    param["schema"] = {"type": "string", "enum": [key]}
                    param["required"] = True
            form = op.get("requestBody", {}).get("content", {}).get(
                "application/x-www-form-urlencoded")
            if form is not None:
                props = form["schema"]["properties"]
                props["api_key"] = {"type": "string", "enum": [key]}
                # Real service codes too (else nearly every body stops at the 404).
                props["service_code"] = {"type": "string", "enum": ["1", "2", "3", "x"]}
    return doc


def test_the_open311_routes_survive_generated_requests(site: dict[str, Any],
                                                       engine: Engine) -> None:
    doc = _with_key(site["doc"], site["open311_key"])
    paths = [p for p in doc["paths"] if p.startswith("/open311/v2/")]
    assert len(paths) == 6, paths  # requests.{fmt} takes GET and POST: 7 operations
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/open311/"):
            continue
        labels.append(operation.label)

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(base_url=site["url"], session=session, timeout=TIMEOUT,
                                   checks=checks)

        run()
    assert len(labels) == 7 and any("POST /open311/v2/requests" in x for x in labels)
    with engine.connect() as conn:  # generated bodies got past the key and became cases
        filed = conn.execute(sa.text("SELECT count(*) FROM open311_request")).scalar_one()
    assert filed > 0
