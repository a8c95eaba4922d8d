"""One Telegram update body, from a webhook POST or getUpdates: parse, store, handle."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.dispatch import process, record_unparsed
from bot.handlers.telegram.parse import Unparseable, parse_update
from core.container import Container

log = logging.getLogger(__name__)


def handle_body(c: Container, body: bytes) -> None:
    """Parse, store and handle one update body (sync: run it in a worker thread)."""
    now = c.clock.now()
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("telegram: body is not JSON (%s)", exc)
        return
    update_id = str(data.get("update_id")) if isinstance(data, dict) else "?"
    try:
        inbound = parse_update(data, now=now, bot_username=c.settings.telegram_bot_username)
    except Unparseable as exc:
        if isinstance(data, dict) and isinstance(data.get("update_id"), int):
            record_unparsed(c.engine, platform="telegram", update_id=update_id, payload=data,
                            now=now, error=str(exc))
        else:
            log.warning("telegram: %s", exc)
        return
    if inbound is None:
        record_unparsed(c.engine, platform="telegram", update_id=update_id, payload=data,
                        now=now, error="ignored: not a message we act on")
        return
    process(c.engine, inbound=inbound, payload=data, clock=c.clock, settings=c.settings)
