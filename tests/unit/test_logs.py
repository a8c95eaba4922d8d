"""Log lines: one JSON object a line when LOG_FORMAT=json, and no secret in any of them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.logs import Redactor, configure_logging, secrets_of
from core.settings import Settings

BOT_TOKEN = "123456789:AAHsecret-bot-token-abcdefghijklmnop"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {n: logging.getLogger(n).level for n in ("alembic", "apscheduler", "httpx")}
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        for name, lvl in quiet.items():
            logging.getLogger(name).setLevel(lvl)


def test_json_lines_parse_with_extras_and_tracebacks(root_logging: None) -> None:
    buf = io.StringIO()
    configure_logging(level="info", fmt="json", stream=buf)
    log = logging.getLogger("linzhang.test")
    log.info("工单#%s 已受理", 12, extra={"case_id": 12, "platform": "telegram"})
    log.debug("below the level: not written")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("sweep failed")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "工单#12 已受理"  # readable Chinese, not \\u escapes
    assert "工单#12" in lines[0]
    assert first["level"] == "INFO" and first["logger"] == "linzhang.test"
    assert first["ts"].endswith("+00:00") and first["case_id"] == 12
    assert first["platform"] == "telegram"
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_text_format_is_the_default(root_logging: None) -> None:
    buf = io.StringIO()
    configure_logging(stream=buf)
    logging.getLogger("linzhang.test").warning("plain %s", "text")
    assert buf.getvalue().rstrip().endswith("WARNING linzhang.test: plain text")


def test_a_host_that_configured_logging_keeps_it_unless_forced(root_logging: None) -> None:
    assert logging.getLogger().handlers  # pytest's own capture handlers
    assert configure_logging(stream=io.StringIO(), force=False) is None


def test_secrets_and_credential_shapes_are_redacted(root_logging: None) -> None:
    settings = Settings(_env_file=None, telegram_bot_token=BOT_TOKEN,
                        telegram_webhook_secret="hook-secret-42",
                        wechat_app_secret="wx-app-secret-77",
                        database_url="postgresql+psycopg://lz:db-pass-99@db/lz")
    assert set(secrets_of(settings)) == {BOT_TOKEN, "hook-secret-42", "wx-app-secret-77",
                                         "db-pass-99"}
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf, secrets=secrets_of(settings), verbose=True)
    log = logging.getLogger("httpx")
    log.info('HTTP Request: POST %s "HTTP/1.1 200 OK"',
             f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage")
    log.warning("token fetch: /cgi-bin/token?grant_type=client_credential&appid=wx1"
                "&secret=unknown-to-settings-1&x=1 and ?access_token=ACCESS-abc123")
    log.warning('127.0.0.1 - "GET /login/AbCdEfGh12345678_- HTTP/1.1" 303')
    log.warning('127.0.0.1 - "POST /checklist/12.345.1764806400.Zq3-xY_9AbCdEfGhIjKlMn/mark '
                'HTTP/1.1" 303')
    try:
        raise ConnectionError("refused: wx-app-secret-77 / hook-secret-42")
    except ConnectionError:
        log.exception("call failed", extra={"header": "Cookie: lz_dash=sessval-123456"})
    text = buf.getvalue()
    for value in (BOT_TOKEN, "hook-secret-42", "wx-app-secret-77", "unknown-to-settings-1",
                  "ACCESS-abc123", "AbCdEfGh12345678_-", "sessval-123456",
                  "Zq3-xY_9AbCdEfGhIjKlMn"):
        assert value not in text
    assert "/bot***/sendMessage" in text and "secret=***&x=1" in text
    assert "/login/***" in text and "/checklist/***" in text
    assert all(json.loads(line) for line in text.splitlines())


def test_redactor_leaves_ordinary_text_alone() -> None:
    r = Redactor(["x", "long-secret"])  # "x" is too short to be a real secret
    assert r("fix the lamp at 12:30, long-secret") == "fix the lamp at 12:30, ***"


def test_personal_numbers_are_masked_unless_allowed() -> None:
    line = "sendMessage {'text': '幸福路18号2单元301 王阿姨 13955501234 路灯坏了'} long-secret"
    masked = Redactor(["long-secret"])(line)
    assert "13955501234" not in masked and "2单元301" not in masked
    assert "139****1234" in masked and "幸福路**号***" in masked and "路灯坏了" in masked
    assert masked.endswith("***")
    allowed = Redactor(["long-secret"], personal_data=True)(line)
    assert "13955501234" in allowed and "18号2单元301" in allowed
    assert "long-secret" not in allowed  # secrets go whatever the setting
    # Times, ports and ids of an ordinary line are no phone numbers.
    plain = "2026-12-01T09:38:18.272+00:00 127.0.0.1:8000 case 1234567 update 998877665"
    assert Redactor()(plain) == plain
