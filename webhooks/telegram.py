"""POST /webhooks/telegram: check the secret, store and deduplicate, run the flow, answer 200."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from bot.handlers.jsonsafe import too_deep
from bot.handlers.telegram.inbound import handle_body
from core.container import Container
from webhooks import webhook_docs as docs

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20  # Telegram updates are small; anything bigger is not from Telegram


def router(container: Container) -> APIRouter:
    r = APIRouter()
    secret = container.settings.telegram_webhook_secret

    @r.post("/webhooks/telegram", tags=["webhooks"], status_code=200,
            response_class=PlainTextResponse, responses=docs.WEBHOOK_RESPONSES,
            openapi_extra=docs.TELEGRAM)
    async def telegram_webhook(request: Request) -> Response:
        if secret is None:
            return Response(media_type="text/plain", status_code=404)
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            log.warning("telegram webhook: wrong secret token from %s",
                        request.client.host if request.client else "?")
            return Response(media_type="text/plain", status_code=403)
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response(media_type="text/plain", status_code=413)
        if too_deep(body):
            # Telegram redelivers anything but a 200 for a day; garbage is dropped with a 200.
            log.warning("telegram: update nested too deep, dropped")
            return Response(media_type="text/plain", status_code=200)
        await run_in_threadpool(handle_body, container, body)
        return Response(media_type="text/plain", status_code=200)

    return r
