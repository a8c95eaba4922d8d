"""GET|POST /webhooks/wecom (the self-built app) and /webhooks/wecom/bot (a smart bot)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from bot.handlers.wecom.inbound import (
    BOT_PLATFORM,
    app_crypto,
    bot_crypto,
    handle_app,
    handle_bot,
    verify_url,
)
from bot.handlers.xml_safe import MAX_XML
from core.container import Container
from webhooks import webhook_docs as docs


def router(container: Container) -> APIRouter:
    r = APIRouter()
    has_bot = container.settings.wecom_bot_token is not None

    @r.get("/webhooks/wecom", tags=["webhooks"], response_class=PlainTextResponse,
            responses=docs.WEBHOOK_RESPONSES, openapi_extra=docs.URL_CHECK)
    async def wecom_verify(request: Request) -> Response:
        # The nonce is remembered in the database: off the event loop.
        got = await run_in_threadpool(verify_url, container, app_crypto(container),
                                      dict(request.query_params))
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.post("/webhooks/wecom", tags=["webhooks"], response_class=PlainTextResponse,
            responses=docs.WEBHOOK_RESPONSES, openapi_extra=docs.XML_CALLBACK)
    async def wecom_callback(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_XML:
            return Response(media_type="text/plain", status_code=413)
        got = await run_in_threadpool(handle_app, container, dict(request.query_params), body)
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.get("/webhooks/wecom/bot", tags=["webhooks"], response_class=PlainTextResponse,
            responses=docs.WEBHOOK_RESPONSES, openapi_extra=docs.URL_CHECK)
    async def wecom_bot_verify(request: Request) -> Response:
        if not has_bot:
            return Response(media_type="text/plain", status_code=404)
        got = await run_in_threadpool(verify_url, container, bot_crypto(container),
                                      dict(request.query_params), platform=BOT_PLATFORM)
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.post("/webhooks/wecom/bot", tags=["webhooks"], response_class=PlainTextResponse,
            responses=docs.WEBHOOK_RESPONSES, openapi_extra=docs.WECOM_BOT)
    async def wecom_bot_callback(request: Request) -> Response:
        if not has_bot:
            return Response(media_type="text/plain", status_code=404)
        body = await request.body()
        if len(body) > MAX_XML:
            return Response(media_type="text/plain", status_code=413)
        got = await run_in_threadpool(handle_bot, container, dict(request.query_params), body)
        return Response(got.body, status_code=got.status, media_type="text/plain")

    return r
