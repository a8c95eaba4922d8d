"""The composition root: settings in, a ready FastAPI app out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bot import notify
from core.cases import duplicates
from core.clock import Clock
from core.container import Container, build_container
from core.db import migrate
from core.settings import Settings
from webhooks import (
    campaigns,
    checklist,
    dashboard,
    dashboard_hotline,
    dashboard_invites,
    dashboard_kaohe,
    dashboard_notices,
    dashboard_policies,
    http_errors,
    metrics,
    open311,
    sms,
    telegram,
    webchat,
    webhook_docs,
    wechat,
    wecom,
)
from webhooks.body_limits import BodyLimitMiddleware, limits_of
from webhooks.security_headers import install as install_security_headers

log = logging.getLogger(__name__)


def _warm_up(state: dict[str, str]) -> None:
    state["words"] = "loading"
    try:
        duplicates.warm_up()
    except Exception:  # the first report then loads it itself; say why it could not now
        state["words"] = "failed"
        log.exception("loading the word-cutting dictionary at start failed")
        return
    state["words"] = "ready"


def watched_platforms(settings: Settings) -> list[str]:
    """The chat platforms whose heartbeats are watched: the configured ones but the web chat
    (our own page: nothing outside can go silent)."""
    from bot.dispatcher.recipients import configured_platforms

    # SMS replies are rare by nature: a quiet day says nothing about the provider.
    return sorted(configured_platforms(settings) - {"web", "sms"})


async def _settle(task: asyncio.Task[None]) -> None:
    """Wait out a start-up task at shutdown (a worker thread cannot be cancelled)."""
    await task


def create_app(settings: Settings, *, clock: Clock | None = None,
               container: Container | None = None, run_jobs: bool = True,
               polling: bool = False) -> FastAPI:
    """Build the whole application; nothing starts until the ASGI lifespan runs.

    `run_jobs=False` leaves the deadline sweep and the senders to the caller (tests drive
    them by hand with a fake clock)."""
    c = container or build_container(settings, clock=clock)
    # Every case change, from chat, dashboard, API or sweep, ends in the one notifier.
    notify.install()
    # The word-cutting dictionary: loaded beside the start (lazy: on first use), for /healthz.
    words = {"words": "lazy"}
    from bot.dispatcher.recipients import configured_platforms
    from bot.handlers.sms import urgent

    # Urgent categories text the town's duty officer (bot/handlers/sms/urgent.py).
    urgent.install(settings if "sms" in configured_platforms(settings)
                   else settings.model_copy(update={"sms_urgent_categories": ""}))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from core.scheduler import add_channel_watch, build_scheduler

        migrate(c.engine)
        scheduler = build_scheduler(engine=c.engine, clock=c.clock, settings=c.settings)
        add_channel_watch(scheduler, engine=c.engine, clock=c.clock, settings=c.settings,
                          counters=c.counters, platforms=watched_platforms(c.settings))
        stoppers = []
        if run_jobs:
            scheduler.start()
            from core.leader import start_leader

            # One leader among the workers for once-per-deployment jobs (core/leader.py).
            c.leader, stop_leader = start_leader(c.engine)
            stoppers.append(stop_leader)
            from bot.dispatcher.runtime import start_dispatcher

            # One dispatcher: a transport per configured platform, and unreachable people.
            stoppers += start_dispatcher(c, web_hub=webchat.hub_of(app), polling=polling)
            # The duplicate check cuts words with jieba, whose dictionary takes a second or
            # more to load: loaded beside the start, not inside the first resident's report.
            warming = asyncio.create_task(asyncio.to_thread(_warm_up, words))
            stoppers.append(lambda: _settle(warming))
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
    http_errors.install(app)  # a domain error from any route: its status and sentence
    # Outside every route: bodies are capped and timed while they stream in.
    app.add_middleware(BodyLimitMiddleware, limits=limits_of(c.settings))
    app.include_router(telegram.router(c))
    webhook_docs.document_errors(app)  # our own 422s say why in one sentence
    app.include_router(dashboard.router(c))
    app.include_router(campaigns.router(c))
    app.include_router(checklist.router(c))  # a 邻长's checklist page behind its signed link
    app.include_router(webchat.router(c))
    app.include_router(dashboard_invites.router(c))
    app.include_router(dashboard_notices.router(c))
    app.include_router(dashboard_policies.router(c))
    app.include_router(dashboard_kaohe.router(c))
    app.include_router(dashboard_hotline.router(c))  # the 12345 / town operator's console
    app.include_router(metrics.router(c))
    app.include_router(open311.router(c))  # GeoReport v2 for 12345 and other client systems
    if c.settings.sms_callback_token is not None:
        app.include_router(sms.router(c))  # Tencent Cloud SMS replies (上行)
    if c.settings.wechat_token is not None:
        app.include_router(wechat.router(c))
    if c.settings.wecom_token is not None:
        app.include_router(wecom.router(c))

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """503 when the database is gone or the deadline sweep has fallen behind; 200 with
        `"status": "degraded"` while the media store cannot take files (reports still work)."""
        from sqlmodel import Session

        from core.heartbeats import channels
        from core.media.store import MediaStore
        from core.ops import stall_limit, stalled_since, sweep_lag

        try:
            with Session(c.engine) as session:
                lag = sweep_lag(session, now=c.clock.now()).total_seconds()
                since = stalled_since(session)  # an episode the stall watch alerted about
                chans = {ch.platform: ch.as_json() for ch in channels(
                    session, platforms=watched_platforms(c.settings), now=c.clock.now(),
                    silence=c.settings.channel_silence)}
        except sa.exc.SQLAlchemyError as exc:
            log.error("health check: database unreachable: %s", exc)
            return JSONResponse({"status": "down", "database": "unreachable"}, status_code=503)
        stall = {"stalled_since": since.isoformat()} if since is not None else {}
        media_problem = MediaStore.from_settings(c.settings).probe()
        media: dict[str, str] = {"media": "ok"}
        if media_problem is not None:
            log.error("health check: media store degraded: %s", media_problem)
            media = {"media": "degraded", "media_problem": media_problem.split(":")[0]}
        # Two sweep intervals (and a little grace for a busy machine) is "fallen behind".
        limit = stall_limit(c.settings.sweep_interval).total_seconds()
        if run_jobs and lag > limit:
            log.error("health check: the sweep is %.0f s behind", lag)
            return JSONResponse({"status": "behind", "sweep_lag_seconds": round(lag, 1),
                                 **stall, **media, "channels": chans}, status_code=503)
        # Not a 503: every worker shares MEDIA_DIR, so a balancer would take them all out and
        # stop the reports too, which still become cases (their files marked failed).
        status = "ok" if media_problem is None else "degraded"
        # A silent channel is told to the admins and shown here, not a 503: the other
        # platforms and the web chat still work.
        return JSONResponse({"status": status, "sweep_lag_seconds": round(lag, 1), **stall,
                             **media, "channels": chans, **words})

    install_security_headers(app, c.settings)  # keep last: the outermost middleware
    return app
