"""Background work of the WeChat and WeCom front doors for the composition root."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.dispatcher.loop import run
from bot.media_fetch import run_fetcher
from core.container import Container

log = logging.getLogger(__name__)


def start_wechat(c: Container, *, configured: frozenset[str] | None = None
                 ) -> Callable[[], Awaitable[None]]:
    """Start the Official Account's sender and media fetcher; returns their stopper."""
    from bot.handlers.wechat.sender import WeChatSender

    sender = WeChatSender(engine=c.engine, settings=c.settings, clock=c.clock,
                          configured=configured)
    return _start(c, sender, sender.client.download)


def start_wecom(c: Container, *, configured: frozenset[str] | None = None
                ) -> Callable[[], Awaitable[None]]:
    """Start the WeCom app's sender and media fetcher; returns their stopper."""
    from bot.handlers.wecom.sender import WeComSender

    sender = WeComSender(engine=c.engine, settings=c.settings, clock=c.clock,
                         configured=configured)
    return _start(c, sender, sender.client.download)


def _start(c: Container, sender: object, fetch: Callable[[str], bytes]
           ) -> Callable[[], Awaitable[None]]:
    stop = asyncio.Event()
    platform = str(sender.platform)  # type: ignore[attr-defined]

    async def download(ref: str, size: int | None) -> bytes:
        return await asyncio.to_thread(fetch, ref)

    tasks = [
        asyncio.create_task(run(c.engine, sender=sender, clock=c.clock,  # type: ignore[arg-type]
                                stop=stop, counters=c.counters)),
        asyncio.create_task(run_fetcher(c.engine, platform=platform, download=download,
                                        settings=c.settings, clock=c.clock, stop=stop,
                                        interval=0.5)),
    ]

    async def shutdown() -> None:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    return shutdown
