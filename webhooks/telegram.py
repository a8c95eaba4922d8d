"""POST /webhooks/telegram: check the secret, store and deduplicate, run the flow, answer 200."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from bot.dispatch import process, record_unparsed
from bot.handlers.telegram.parse import Unparseable, parse_update
from core.container import Container

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20  # Telegram updates are small; anything bigger is not from Telegram


def router(container: Container) -> APIRouter:
    r = APIRouter()
    secret = container.settings.telegram_webhook_secret

    @r.post("/webhooks/telegram", tags=["webhooks"], status_code=200)
    async def telegram_webhook(request: Request) -> Response:
        if secret is None:
            return Response(status_code=404)
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            log.warning("telegram webhook: wrong secret token from %s",
                        request.client.host if request.client else "?")
            return Response(status_code=403)
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response(status_code=413)
        await run_in_threadpool(handle_body, container, body)
        return Response(status_code=200)

    return r


def handle_body(c: Container, body: bytes) -> None:
    """Parse, store and handle one update body (sync: runs in a worker thread)."""
    now = c.clock.now()
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("telegram webhook: body is not JSON (%s)", exc)
        return
    update_id = str(data.get("update_id")) if isinstance(data, dict) else "?"
    try:
        inbound = parse_update(data, now=now, bot_username=c.settings.telegram_bot_username)
    except Unparseable as exc:
        if isinstance(data, dict) and isinstance(data.get("update_id"), int):
            record_unparsed(c.engine, platform="telegram", update_id=update_id, payload=data,
                            now=now, error=str(exc))
        else:
            log.warning("telegram webhook: %s", exc)
        return
    if inbound is None:
        record_unparsed(c.engine, platform="telegram", update_id=update_id, payload=data,
                        now=now, error="ignored: not a message we act on")
        return
    process(c.engine, inbound=inbound, payload=data, clock=c.clock, settings=c.settings)
