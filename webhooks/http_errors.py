"""Domain errors as HTTP answers: one exception handler per error type on the app, each
answering as an HTTPException would, with the error's sentence (bot/flows/texts.py) as
`detail`. A route just lets the error rise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from starlette.responses import Response

from bot.flows.refusals import sentence
from core.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    MediaStoreUnavailable,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
)

# The nearest type in an error's MRO decides (Starlette looks handlers up that way).
STATUS: dict[type[DomainError], int] = {
    NotFound: 404, PermissionDenied: 403, Conflict: 409, InvalidInput: 422,
    TooManyAttempts: 429, MediaStoreUnavailable: 503, DomainError: 400,
}


def as_http(exc: DomainError, status: int) -> HTTPException:
    """The HTTPException a domain error answers as (the dashboard's Chinese sentence)."""
    headers = ({"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts)
               else None)
    return HTTPException(status, sentence(exc, "zh"), headers=headers)


def install(app: FastAPI) -> None:
    """Register one handler per domain error type."""
    for kind, status in STATUS.items():
        app.add_exception_handler(kind, _handler(status))


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return await http_exception_handler(request, as_http(exc, status))
    return handle
