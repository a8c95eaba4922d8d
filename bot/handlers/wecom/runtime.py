"""The WeCom app for the composition root: its transport and media fetcher."""

from __future__ import annotations

from bot.dispatcher.runtime import Platform, fetcher
from core.container import Container


def wecom_platform(c: Container) -> Platform:
    """The WeCom app's transport for the dispatcher, and its media fetcher."""
    from bot.handlers.wecom.transport import WeComTransport

    transport = WeComTransport(engine=c.engine, settings=c.settings, clock=c.clock)
    return Platform(transport, tasks=[fetcher(c, "wecom", transport.client.download)])
