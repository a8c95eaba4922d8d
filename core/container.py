"""What a running linzhang holds: settings, engine, clock. Built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from core.clock import Clock, SystemClock
from core.counters import Counters
from core.db import make_engine
from core.leader import Leader
from core.settings import Settings


@dataclass
class Container:
    settings: Settings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    # Event counts of this process for /metrics (webhooks/metrics.py reads them).
    counters: Counters = field(default_factory=Counters)
    # This process's candidacy among the workers (core/leader.py), set while the app runs.
    leader: Leader | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)


def build_container(settings: Settings, *, clock: Clock | None = None,
                    engine: Engine | None = None) -> Container:
    """Make the engine for the settings (no connection is opened yet)."""
    return Container(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        clock=clock or SystemClock(),
    )
