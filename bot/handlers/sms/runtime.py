"""SMS for the composition root: its transport (no background work of its own)."""

from __future__ import annotations

from bot.dispatcher.runtime import Platform
from core.container import Container


def sms_platform(c: Container) -> Platform:
    """Tencent Cloud SMS's transport for the dispatcher."""
    from bot.handlers.sms.transport import SmsTransport

    return Platform(SmsTransport(engine=c.engine, settings=c.settings, clock=c.clock))
