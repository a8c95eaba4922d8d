"""POST /webhooks/sms: Tencent Cloud SMS's reply (上行) callback."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bot.handlers.sms.inbound import MAX_BODY, handle
from core.container import Container


def router(container: Container) -> APIRouter:
    r = APIRouter()

    @r.post("/webhooks/sms", tags=["webhooks"])
    async def sms_reply(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"result": 1, "errmsg": "too large"}, status_code=413)
        got = await run_in_threadpool(handle, container, dict(request.query_params), body)
        return JSONResponse(got.body, status_code=got.status)

    return r
