"""GET|POST /webhooks/wecom (the self-built app) and /webhooks/wecom/bot (a smart bot)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from bot.handlers.wechat.xmlsafe import MAX_XML
from bot.handlers.wecom.inbound import app_crypto, bot_crypto, handle_app, handle_bot, verify_url
from core.container import Container


def router(container: Container) -> APIRouter:
    r = APIRouter()
    has_bot = container.settings.wecom_bot_token is not None

    @r.get("/webhooks/wecom", tags=["webhooks"])
    async def wecom_verify(request: Request) -> Response:
        got = verify_url(app_crypto(container), dict(request.query_params))
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.post("/webhooks/wecom", tags=["webhooks"])
    async def wecom_callback(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_XML:
            return Response(status_code=413)
        got = await run_in_threadpool(handle_app, container, dict(request.query_params), body)
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.get("/webhooks/wecom/bot", tags=["webhooks"])
    async def wecom_bot_verify(request: Request) -> Response:
        if not has_bot:
            return Response(status_code=404)
        got = verify_url(bot_crypto(container), dict(request.query_params))
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.post("/webhooks/wecom/bot", tags=["webhooks"])
    async def wecom_bot_callback(request: Request) -> Response:
        if not has_bot:
            return Response(status_code=404)
        body = await request.body()
        if len(body) > MAX_XML:
            return Response(status_code=413)
        got = await run_in_threadpool(handle_bot, container, dict(request.query_params), body)
        return Response(got.body, status_code=got.status, media_type="text/plain")

    return r
