"""The dispatcher in the server: one loop (loop.py) per transport the deployment runs, each
platform's own background work beside it (file fetchers, polling, menus), and the settling of
rows nobody can reach (lifespan tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.dispatcher.loop import Dispatcher
from bot.dispatcher.reach import settle_unreachable
from bot.dispatcher.recipients import configured_platforms
from bot.dispatcher.transport import Transport
from core.container import Container

log = logging.getLogger(__name__)
Stopper = Callable[[], Awaitable[None]]
Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Platform:
    """What a platform brings to the server: its transport, the background work of its own
    (each runs until the event is set) and what to close at the end."""

    transport: Transport
    tasks: list[Task] = field(default_factory=list)
    close: Callable[[], Awaitable[None]] | None = None


def fetcher(c: Container, platform: str, fetch: Callable[[str], bytes]) -> Task:
    """A media fetcher for a platform whose client downloads synchronously (wechatpy)."""
    from bot.media_fetch import run_fetcher

    async def download(ref: str, size: int | None) -> bytes:
        return await asyncio.to_thread(fetch, ref)

    async def go(stop: asyncio.Event) -> None:
        await run_fetcher(c.engine, platform=platform, download=download,
                          settings=c.settings, clock=c.clock, stop=stop, interval=0.5)

    return go


async def watch_unreachable(c: Container, *, configured: frozenset[str], stop: asyncio.Event,
                            interval: float = 1.0) -> None:
    """Settle rows for people no configured platform reaches, until `stop` is set."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(settle_unreachable, c.engine, configured=configured,
                                    clock=c.clock, settings=c.settings)
        except Exception:
            log.exception("settling unreachable rows failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def platforms(c: Container, *, web_hub: Any, polling: bool) -> list[Platform]:
    """The platforms this deployment runs (the web chat and the status webhooks always)."""
    from bot.handlers.web.transport import WebTransport
    from bot.handlers.webhook.transport import WebhookTransport

    configured = configured_platforms(c.settings)
    out: list[Platform] = []
    if "telegram" in configured:
        from bot.handlers.telegram.runtime import telegram_platform

        out.append(telegram_platform(c, polling=polling))
    if "wechat" in configured:
        from bot.handlers.wechat.runtime import wechat_platform

        out.append(wechat_platform(c))
    if "wecom" in configured:
        from bot.handlers.wecom.runtime import wecom_platform

        out.append(wecom_platform(c))
    if "sms" in configured:
        from bot.handlers.sms.runtime import sms_platform

        out.append(sms_platform(c))
    out.append(Platform(WebTransport(hub=web_hub)))
    # Client systems' status webhooks: always on, since a hook may be set while we run.
    hooks = WebhookTransport(timeout=c.settings.webhook_timeout.total_seconds(),
                             max_age=c.settings.webhook_max_age)
    out.append(Platform(hooks, close=hooks.close))
    return out


def start_dispatcher(c: Container, *, web_hub: Any, polling: bool = False) -> list[Stopper]:
    """Start one dispatcher loop per configured transport, each platform's own work and the
    unreachable watch; their stopper."""
    configured = configured_platforms(c.settings)
    stop = asyncio.Event()
    closers: list[Callable[[], Awaitable[None]]] = []
    tasks: list[asyncio.Task[None]] = []
    for p in platforms(c, web_hub=web_hub, polling=polling):
        d = Dispatcher(engine=c.engine, transport=p.transport, clock=c.clock,
                       settings=c.settings, configured=configured, counters=c.counters,
                       lease=c.settings.outbox_lease)
        tasks.append(asyncio.create_task(d.run(stop)))
        tasks += [asyncio.create_task(t(stop)) for t in p.tasks]
        if p.close is not None:
            closers.append(p.close)
    tasks.append(asyncio.create_task(watch_unreachable(c, configured=configured, stop=stop)))

    async def shutdown() -> None:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for close in closers:
            with contextlib.suppress(Exception):
                await close()

    return [shutdown]
