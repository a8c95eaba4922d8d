"""The composition root: settings in, a ready FastAPI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from core.clock import Clock
from core.container import Container, build_container
from core.db import migrate
from core.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, clock: Clock | None = None,
               container: Container | None = None) -> FastAPI:
    """Build the whole application; nothing starts until the ASGI lifespan runs."""
    c = container or build_container(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(c.engine)
        log.info("linzhang ready on %s", c.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            c.engine.dispose()

    app = FastAPI(title="linzhang", version="0.1.0", lifespan=lifespan)
    app.state.container = c
    from webhooks import telegram

    app.include_router(telegram.router(c))

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        try:
            with c.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            log.error("health check: database unreachable: %s", exc)
            return JSONResponse({"status": "down", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
