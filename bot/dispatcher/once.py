"""One batch through the one dispatcher, for the tests and benches that drive it by hand."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from bot.dispatcher.loop import Dispatcher, Stats
from bot.dispatcher.transport import Transport
from core.clock import Clock
from core.counters import Counters
from core.settings import Settings


async def pass_once(engine: Engine, *, sender: Transport, clock: Clock,
                    stats: Stats | None = None, limit: int = 50,
                    counters: Counters | None = None, settings: Settings | None = None,
                    configured: frozenset[str] | None = None) -> int:
    """Claim and deliver one batch through `sender`; how many rows were claimed."""
    d = Dispatcher(engine=engine, transport=sender, clock=clock, counters=counters,
                   settings=settings, configured=configured)
    if stats is not None:
        d.stats = stats
    return await d.pass_once(limit=limit)
