"""The dispatcher in the server: one start for every transport the deployment runs, and the
settling of rows nobody can reach (a lifespan task, like the senders)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.dispatcher.loop import Transport, run
from bot.dispatcher.reach import settle_unreachable
from bot.dispatcher.recipients import configured_platforms
from core.container import Container

log = logging.getLogger(__name__)
Stopper = Callable[[], Awaitable[None]]


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


def start_transport(c: Container, transport: Transport, fetch: Callable[[str], bytes]
                    ) -> Stopper:
    """Run a row-at-a-time transport (the loop in loop.py) and its platform's media fetcher."""
    from bot.media_fetch import run_fetcher

    stop = asyncio.Event()

    async def download(ref: str, size: int | None) -> bytes:
        return await asyncio.to_thread(fetch, ref)

    tasks = [
        asyncio.create_task(run(c.engine, sender=transport, clock=c.clock, stop=stop,
                                counters=c.counters)),
        asyncio.create_task(run_fetcher(c.engine, platform=transport.platform,
                                        download=download, settings=c.settings, clock=c.clock,
                                        stop=stop, interval=0.5)),
    ]

    async def shutdown() -> None:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    return shutdown


def start_dispatcher(c: Container, *, web_hub: Any, polling: bool = False) -> list[Stopper]:
    """Start a transport for each configured platform and the unreachable watch; their
    stoppers, in order."""
    from bot.handlers.web import sender as web_sender

    configured = configured_platforms(c.settings)
    stoppers: list[Stopper] = []
    if "telegram" in configured:
        from bot.handlers.telegram.runtime import start_telegram

        stoppers.append(start_telegram(c, polling=polling, configured=configured))
    if "wechat" in configured:
        from bot.handlers.wechat.runtime import start_wechat

        stoppers.append(start_wechat(c, configured=configured))
    if "wecom" in configured:
        from bot.handlers.wecom.runtime import start_wecom

        stoppers.append(start_wecom(c, configured=configured))
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(web_sender.run(c.engine, clock=c.clock, hub=web_hub, stop=stop,
                                           configured=configured)),
        asyncio.create_task(watch_unreachable(c, configured=configured, stop=stop)),
    ]

    async def shutdown() -> None:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    stoppers.append(shutdown)
    return stoppers
