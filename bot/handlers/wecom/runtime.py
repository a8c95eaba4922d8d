"""Background work of the WeCom app for the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.container import Container


def start_wecom(c: Container, *, configured: frozenset[str] | None = None
                ) -> Callable[[], Awaitable[None]]:
    """Start the WeCom app's transport and media fetcher; returns their stopper."""
    from bot.dispatcher.runtime import start_transport
    from bot.handlers.wecom.sender import WeComSender

    sender = WeComSender(engine=c.engine, settings=c.settings, clock=c.clock,
                         configured=configured)
    return start_transport(c, sender, sender.client.download)
