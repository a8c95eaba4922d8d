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
               container: Container | None = None, run_jobs: bool = True,
               polling: bool = False) -> FastAPI:
    """Build the whole application; nothing starts until the ASGI lifespan runs.

    `run_jobs=False` leaves the deadline sweep and the senders to the caller (tests drive
    them by hand with a fake clock)."""
    c = container or build_container(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from core.scheduler import build_scheduler

        migrate(c.engine)
        scheduler = build_scheduler(engine=c.engine, clock=c.clock, settings=c.settings)
        stoppers = []
        if run_jobs:
            scheduler.start()
            if c.settings.telegram_bot_token is not None:
                from bot.handlers.telegram.runtime import start_telegram

                stoppers.append(start_telegram(c, polling=polling))
        log.info("linzhang ready on %s", c.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            for stop in stoppers:
                await stop()
            if scheduler.running:
                scheduler.shutdown(wait=True)
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
