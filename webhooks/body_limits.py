"""Request bodies are capped while they stream in, and must arrive within a deadline.

A route that calls `await request.body()` holds the whole body in memory before it can look
at its length: 400 MB sent to an unauthenticated WeChat callback cost the server 946 MB. So
one ASGI middleware, outside every route, refuses a body before it is read:

- a `Content-Length` over the path's limit is answered 413 at once (nothing is read);
- a body without one (chunked) is counted as it arrives, and the read stops at the limit;
- a body that has not fully arrived `HTTP_BODY_TIMEOUT` after the request began is answered
  408 (a client trickling bytes would otherwise hold a connection and a task forever).

Limits are per path prefix (first match wins); the web chat's uploads get the media limits,
everything else a small cap. Refusals carry `Connection: close`, so the rest of a refused body
is never read into the server. Only the body is bounded here: the waits for a disconnect that
follow it (event streams) are left alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from bot.handlers.xml_safe import MAX_XML
from core.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOO_LARGE = "请求内容太大（上限{mb}），请压缩或分开发送"
TOO_SLOW = "请求内容传得太慢，已超时，请重试"
BAD_LENGTH = "请求的 Content-Length 无效"


class BodyRefused(HTTPException):
    """Raised from `receive` when a body passes its limit or its deadline. An HTTPException,
    so FastAPI's body parsing hands it on as it is (not as "error parsing the body")."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status_code=status, detail=message, headers={"Connection": "close"})


@dataclass(frozen=True)
class Limits:
    """(path prefix, most bytes) pairs, checked in order; `default` for every other path."""

    rules: tuple[tuple[str, int], ...]
    default: int
    deadline: float  # seconds from the request's start until its body must be complete

    def for_path(self, path: str) -> int:
        for prefix, most in self.rules:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return most
        return self.default


def limits_of(settings: Settings) -> Limits:
    """The deployment's limits: callbacks as small as a callback is, uploads as media allow."""
    upload = settings.max_photo_bytes + settings.max_voice_bytes + (1 << 20)  # + the fields
    callback = min(MAX_XML, settings.http_max_body_bytes)
    # A notice from the dashboard may carry a photo and a document.
    notice = settings.max_photo_bytes + settings.max_document_bytes + (1 << 20)
    return Limits(rules=(("/webhooks/wechat", callback), ("/webhooks/wecom", callback),
                         ("/chat/send", upload), ("/dashboard/notices", notice)),
                  default=settings.http_max_body_bytes,
                  deadline=settings.http_body_timeout.total_seconds())


def _size(most: int) -> str:
    return f"{most / 2**20:.0f}MB" if most >= 2**20 else f"{most // 1024}KB"


class BodyLimitMiddleware:
    """Pure ASGI: wraps `receive` with a counting, deadline-bound reader."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most = self.limits.for_path(scope.get("path", ""))
        length = _content_length(scope)
        if length is None:
            await _refuse(send, 400, BAD_LENGTH)
            return
        if length > most:
            await _refuse(send, 413, TOO_LARGE.format(mb=_size(most)))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.deadline
        chunked = any(k == b"transfer-encoding" for k, _ in scope.get("headers", ()))
        state = {"read": 0, "done": length == 0 and not chunked, "started": False}

        async def bounded_receive() -> Message:
            if state["done"]:
                return await receive()  # after the body: a disconnect, wait as long as it takes
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                raise BodyRefused(408, TOO_SLOW) from None
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > most:
                    raise BodyRefused(413, TOO_LARGE.format(mb=_size(most)))
                state["done"] = not message.get("more_body", False)
            else:
                state["done"] = True
            return message

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                if not state["done"]:
                    # Answered before its body was read (a wrong secret, a refusal): close the
                    # connection rather than read the rest of it.
                    message = {**message, "headers": [*message.get("headers", ()),
                                                      (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except BodyRefused as exc:
            if not state["started"]:
                await _refuse(send, exc.status_code, str(exc.detail))


def _content_length(scope: Scope) -> int | None:
    """The declared length (0 when none is given); None when it is not a number."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return 0


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"ok": False, "error": message, "detail": message},
                      ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
