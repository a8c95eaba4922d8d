"""Background work of the WeChat Official Account for the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.container import Container


def start_wechat(c: Container, *, configured: frozenset[str] | None = None
                 ) -> Callable[[], Awaitable[None]]:
    """Start the Official Account's transport and media fetcher; returns their stopper."""
    from bot.dispatcher.runtime import start_transport
    from bot.handlers.wechat.sender import WeChatSender

    sender = WeChatSender(engine=c.engine, settings=c.settings, clock=c.clock,
                          configured=configured)
    return start_transport(c, sender, sender.client.download)
