"""GET|POST /webhooks/wechat: the Official Account's callback (plain or AES mode)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from bot.handlers.wechat.inbound import handle, verify_url
from bot.handlers.wechat.xmlsafe import MAX_XML
from core.container import Container


def router(container: Container) -> APIRouter:
    r = APIRouter()

    @r.get("/webhooks/wechat", tags=["webhooks"])
    async def wechat_verify(request: Request) -> Response:
        got = verify_url(container, dict(request.query_params))
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.post("/webhooks/wechat", tags=["webhooks"])
    async def wechat_callback(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_XML:
            return Response(status_code=413)
        got = await run_in_threadpool(handle, container, dict(request.query_params), body)
        return Response(got.body, status_code=got.status, media_type="text/plain")

    return r
