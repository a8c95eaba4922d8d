"""Logging for `linzhang serve` and friends: text or JSON lines, with secrets redacted.

Secrets reach log lines through libraries more than through our own code: httpx logs every
request URL, and Telegram's URLs carry the bot token (`/bot<TOKEN>/sendMessage`); urllib3
logs WeChat's `?secret=` and `?access_token=` query strings at DEBUG, and its connection
errors repeat them in tracebacks; uvicorn's access log shows `/login/<one-time token>` and
`/checklist/<signed link>`. So the redaction runs on the finished line (message, arguments,
traceback and extras alike), in the formatter of the one root handler that everything
propagates to.

Residents' phone, ID and house numbers reach log lines the same way (the Bot API's debug line
carries every message text, a parse error repeats the update): they are masked on the finished
line too (core/privacy.mask_text), unless LOG_PERSONAL_DATA=true.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import SecretStr

from core.privacy import mask_text

MASK = "***"
# Shorter values (a test's "x") would blank out ordinary words.
MIN_SECRET = 6
PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A bot token in a Bot API URL (/bot<id>:<secret>/method, /file/bot<id>:<secret>/path).
    (re.compile(r"(/bot)\d+:[\w-]+"), rf"\1{MASK}"),
    # A bare bot token anywhere else.
    (re.compile(r"\b\d{5,}:[\w-]{30,}"), MASK),
    # Credentials in query strings (WeChat/WeCom token fetches and every API call).
    (re.compile(r"(?i)\b((?:access_|corp)?(?:token|secret)|password|api_key)=[^&\s\"'<>]+"),
     rf"\1={MASK}"),
    # Dashboard one-time login links.
    (re.compile(r"(/login/)[\w-]{8,}"), rf"\1{MASK}"),
    # A 邻长's checklist link (/checklist/<campaign>.<person>.<expiry>.<signature>).
    (re.compile(r"(/checklist/)\d+\.[\w.-]{8,}"), rf"\1{MASK}"),
    # Cookies and authorization headers, should a library ever log them.
    (re.compile(r"(?i)((?:set-)?cookie|authorization)([\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
     rf"\1\2{MASK}"),
]
# Attributes every LogRecord has; anything else on a record came in as `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class Redactor:
    """Blanks known secret values and credential-shaped text out of a line, and masks personal
    numbers in it unless `personal_data` is allowed."""

    def __init__(self, secrets: Iterable[str] = (), *, personal_data: bool = False) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET}
        # Longest first, so a secret that contains another is blanked whole.
        self.secrets = sorted(values, key=len, reverse=True)
        self.personal_data = personal_data

    def __call__(self, text: str) -> str:
        for value in self.secrets:
            if value in text:
                text = text.replace(value, MASK)
        for pattern, repl in PATTERNS:
            text = pattern.sub(repl, text)
        return text if self.personal_data else mask_text(text)


def secrets_of(settings: Any) -> list[str]:
    """Every secret value in the settings (SecretStr fields) and the database password."""
    found = [v.get_secret_value() for v in vars(settings).values() if isinstance(v, SecretStr)]
    from sqlalchemy.engine import make_url

    try:
        password = make_url(settings.database_url).password
    except Exception:  # an unparsable URL fails later, where it is used, with a clear error
        password = None
    if password:
        found.append(str(password))
    return [v for v in found if v]


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, the extras, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then redacts the whole line (tracebacks included)."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self.inner, self.redactor = inner, redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.inner.format(record))


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that would bury our own lines unless debugging: migrations at start-up, the
# sweep's scheduler every second, one httpx line per message sent.
QUIET = ("alembic", "apscheduler", "httpx")


def configure_logging(*, level: str | int = "INFO", fmt: str = "text",
                      secrets: Iterable[str] = (), stream: IO[str] | None = None,
                      verbose: bool = False, force: bool = True,
                      personal_data: bool = False) -> logging.Handler | None:
    """Replace the root handlers with one (text or JSON, redacting); returns that handler."""
    root = logging.getLogger()
    if root.handlers and not force:
        # Like logging.basicConfig: a host that set up logging already (a test runner) keeps it.
        return None
    handler = logging.StreamHandler(stream or sys.stderr)
    inner = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(RedactingFormatter(inner, Redactor(secrets,
                                                            personal_data=personal_data)))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else
                  (level.upper() if isinstance(level, str) else level))
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    return handler
