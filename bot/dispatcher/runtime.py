"""The dispatcher in the server: one start for every transport the deployment runs, and the
settling of rows nobody can reach (a lifespan task, like the senders)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

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


def start_dispatcher(c: Container, *, web_hub: Any, polling: bool = False) -> list[Stopper]:
    """Start a transport for each configured platform and the unreachable watch; their
    stoppers, in order."""
    from bot.handlers.web import sender as web_sender

    configured = configured_platforms(c.settings)
    stoppers: list[Stopper] = []
    if "telegram" in configured:
        from bot.handlers.telegram.runtime import start_telegram

        stoppers.append(start_telegram(c, polling=polling, configured=configured))
    from bot.handlers.wechat.runtime import start_wechat, start_wecom

    if "wechat" in configured:
        stoppers.append(start_wechat(c, configured=configured))
    if "wecom" in configured:
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
