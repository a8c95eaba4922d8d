"""GET|POST /webhooks/wechat: the Official Account's callback (plain or AES mode)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from bot.handlers.wechat.inbound import handle, verify_url
from bot.handlers.xml_safe import MAX_XML
from core.container import Container
from webhooks import webhook_docs as docs


def router(container: Container) -> APIRouter:
    r = APIRouter()

    @r.get("/webhooks/wechat", tags=["webhooks"], response_class=PlainTextResponse,
            responses=docs.WEBHOOK_RESPONSES, openapi_extra=docs.URL_CHECK)
    async def wechat_verify(request: Request) -> Response:
        # The nonce is remembered in the database: off the event loop.
        got = await run_in_threadpool(verify_url, container, dict(request.query_params))
        return Response(got.body, status_code=got.status, media_type="text/plain")

    @r.post("/webhooks/wechat", tags=["webhooks"], response_class=PlainTextResponse,
            responses=docs.WEBHOOK_RESPONSES, openapi_extra=docs.XML_CALLBACK)
    async def wechat_callback(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_XML:
            return Response(media_type="text/plain", status_code=413)
        got = await run_in_threadpool(handle, container, dict(request.query_params), body)
        return Response(got.body, status_code=got.status, media_type="text/plain")

    return r
