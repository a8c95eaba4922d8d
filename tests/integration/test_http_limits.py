"""Request bodies are refused before they are read: a claimed length over the cap at once, a
chunked body at the cap, a body still arriving at the deadline; deeply nested JSON is a clean
refusal on the Telegram and WeCom bot webhooks (real HTTP on loopback, raw sockets)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.handlers.xml_safe import MAX_XML, xml_fields
from core.clock import FakeClock
from core.container import build_container
from core.settings import Settings
from tests.support.rawhttp import chunked, request
from tests.support.server import serve
from tests.support.wechat import (
    DOC_AES_KEY,
    DOC_APP_ID,
    DOC_TOKEN,
    WECOM_AES_KEY,
    WECOM_CORP_ID,
    WECOM_TOKEN,
    fresh_nonce,
    stamp,
)
from webhooks.app import create_app

SECRET = "limits-secret"
BOT_TOKEN, BOT_AES = "bot-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DEADLINE = 0.3  # seconds: HTTP_BODY_TIMEOUT where a test trickles a body past it
# Elsewhere a deadline that a loaded machine (parallel test workers) never misses by accident.
EASY_DEADLINE = 10.0
# A 60,000-deep body on a loaded 2-core machine can take longer than httpx's 5 s default.
post = functools.partial(httpx.post, timeout=60)
TG = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
# Every route that takes a body, and its cap.
UPLOAD = 20 * 2**20 + 20 * 2**20 + 2**20  # photo + voice + the form's fields
ROUTES = [("/webhooks/telegram", 2**20), ("/webhooks/wechat", MAX_XML),
          ("/webhooks/wecom", MAX_XML), ("/webhooks/wecom/bot", MAX_XML),
          ("/chat/send", UPLOAD), ("/chat/press", 2**20), ("/chat/phone", 2**20),
          ("/chat/code", 2**20), ("/dashboard/cases/1/accept", 2**20), ("/login", 2**20),
          ("/logout", 2**20), ("/api/cases/1/accept", 2**20), ("/api/passwords", 2**20)]


@dataclass
class Site:
    url: str
    engine: Engine
    clock: FakeClock
    bot: WeComCrypto


@contextmanager
def _site(engine: Engine, tmp_path: Path, clock: FakeClock, deadline: float) -> Iterator[Site]:
    settings = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"),
                        telegram_webhook_secret=SecretStr(SECRET),
                        wechat_app_id=DOC_APP_ID, wechat_token=SecretStr(DOC_TOKEN),
                        wechat_encoding_aes_key=SecretStr(DOC_AES_KEY),
                        wecom_corp_id=WECOM_CORP_ID, wecom_agent_id="1",
                        wecom_token=SecretStr(WECOM_TOKEN),
                        wecom_encoding_aes_key=SecretStr(WECOM_AES_KEY),
                        wecom_bot_token=SecretStr(BOT_TOKEN),
                        wecom_bot_encoding_aes_key=SecretStr(BOT_AES),
                        http_body_timeout=deadline)
    c = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=c, run_jobs=False)) as url:
        yield Site(url, engine, clock, WeComCrypto(BOT_TOKEN, BOT_AES, ""))


@pytest.fixture
def site(engine: Engine, tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    with _site(engine, tmp_path, clock, EASY_DEADLINE) as s:
        yield s


@pytest.fixture
def strict_site(engine: Engine, tmp_path: Path, clock: FakeClock) -> Iterator[Site]:
    with _site(engine, tmp_path, clock, DEADLINE) as s:
        yield s


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM inbound_update")).scalar_one())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # HTTP only
@pytest.mark.parametrize(("path", "cap"), ROUTES)
def test_a_claimed_length_over_the_cap_is_refused_before_a_byte_is_read(
        site: Site, path: str, cap: int) -> None:
    for claimed in (400 * 2**20, cap + 1):
        got = request(site.url, path, timeout=5, headers={
            **TG, "Content-Length": str(claimed)})  # ... and the body never comes
        assert got.status == 413, (path, claimed, got.head[:200])
        assert b"connection: close" in got.head.lower()
        assert "上限" in json.loads(got.body)["error"]  # a sentence, not a bare status


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/webhooks/wechat", "/webhooks/wecom", "/webhooks/wecom/bot",
                                  "/webhooks/telegram", "/api/passwords"])
def test_a_chunked_body_is_stopped_at_the_cap(site: Site, path: str) -> None:
    cap = dict(ROUTES)[path]
    piece = b"<" * 65536
    # 64 MB is offered and never finished: an answer at all means the read stopped at the cap,
    # and the client stopped sending well before the end (what the sockets buffer, at most).
    got = request(site.url, path, headers={**TG, "Transfer-Encoding": "chunked"},
                  chunks=chunked(piece, 1024), timeout=10)
    assert got.status == 413, got.head[:200]
    assert cap < got.sent < 32 * 2**20, got.sent
    assert stored(site.engine) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_trickling_body_is_answered_408_at_the_deadline(strict_site: Site) -> None:
    site = strict_site
    body = json.dumps({"update_id": 1, "message": {"text": "x" * 200}}).encode()
    # One byte every 50 ms: never idle long, but never done within the deadline either.
    got = request(site.url, "/webhooks/telegram",
                  headers={**TG, "Content-Length": str(len(body))},
                  chunks=(body[i:i + 1] for i in range(len(body))), pace=0.05, timeout=10)
    assert got.status == 408, got.head[:200]
    assert DEADLINE <= got.seconds < DEADLINE + 2.0
    assert got.sent < len(body)
    assert stored(site.engine) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_body_within_the_deadline_and_cap_is_handled(site: Site) -> None:
    body = json.dumps({"update_id": 7, "message": {"message_id": 1, "date": 0, "text": "hi",
                       "chat": {"id": 5, "type": "private"},
                       "from": {"id": 5, "is_bot": False, "first_name": "王"}}}).encode()
    got = request(site.url, "/webhooks/telegram",
                  headers={**TG, "Content-Length": str(len(body))}, chunks=[body])
    assert got.status == 200
    assert stored(site.engine) == 1


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [990, 5000, 60_000])
def test_deeply_nested_json_to_telegram_is_dropped_with_200(site: Site, depth: int) -> None:
    body = '{"update_id": 5, "message": ' + nested(depth) + "}"
    r = post(f"{site.url}/webhooks/telegram", content=body, headers=TG)
    assert r.status_code == 200  # Telegram would redeliver anything else for a day
    assert stored(site.engine) == 0


@pytest.mark.parametrize("depth", [990, 5000, 60_000])
def test_deeply_nested_json_to_the_wecom_bot(site: Site, depth: int) -> None:
    bot = f"{site.url}/webhooks/wecom/bot"
    # Unsigned: refused before the body is parsed at all.
    assert post(bot, content='{"encrypt": ' + nested(depth) + "}").status_code == 403
    assert post(bot, content=nested(depth)).status_code == 403
    # Signed (the signature covers the encrypted field, so the envelope is read first).
    query = {"msg_signature": "0" * 40, "timestamp": stamp(site.clock),
             "nonce": fresh_nonce()}
    r = post(bot, params=query, content='{"encrypt": ' + nested(depth) + "}")
    assert r.status_code == 400
    # A validly signed message whose decrypted JSON nests too deep.
    nonce, ts = fresh_nonce(), stamp(site.clock)
    fields = xml_fields(site.bot.encrypt_message('{"msgid": "m2", "x": ' + nested(depth) + "}",
                                                 nonce, ts))
    r = post(bot, params={"msg_signature": fields["MsgSignature"], "timestamp": ts,
                                "nonce": nonce}, content=json.dumps({"encrypt": fields["Encrypt"]}))
    assert r.status_code == 400
    assert stored(site.engine) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/chat/press", "/chat/phone", "/chat/code"])
def test_deeply_nested_json_to_the_web_chat_is_a_clean_400(site: Site, path: str) -> None:
    with httpx.Client(base_url=site.url) as browser:
        page = browser.get("/chat").text
        csrf = page.split('data-csrf="', 1)[1].split('"', 1)[0]
        r = browser.post(path, content=nested(5000), headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400 and r.json()["error"]
