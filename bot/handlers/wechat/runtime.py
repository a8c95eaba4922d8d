"""The WeChat Official Account for the composition root: its transport and media fetcher."""

from __future__ import annotations

from bot.dispatcher.runtime import Platform, fetcher
from core.container import Container


def wechat_platform(c: Container) -> Platform:
    """The Official Account's transport for the dispatcher, and its media fetcher."""
    from bot.handlers.wechat.transport import WeChatTransport

    transport = WeChatTransport(engine=c.engine, settings=c.settings, clock=c.clock)
    return Platform(transport, tasks=[fetcher(c, "wechat", transport.client.download)])
