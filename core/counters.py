"""In-process event counts for /metrics: updates in, messages sent, rate-limit answers.

Plain numbers, so that core and bot count without knowing Prometheus; webhooks/metrics.py
reads them at scrape time. They live in this process only: with several workers each one
exposes its own counts on its own /metrics, and Prometheus sums them (`sum(rate(...))`).
What every worker shares (the outbox, overdue cases, the sweep) is read from the database
instead, at scrape time.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime

# (platform, result) of an inbound update: handled, duplicate (a platform's retry), unparsed,
# failed (the flow raised; the person was told we are on it).
UpdateKey = tuple[str, str]


class Counters:
    """Thread-safe monotonic counters; one per running app, built by the composition root."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._updates: defaultdict[UpdateKey, int] = defaultdict(int)
        self._sent: defaultdict[str, int] = defaultdict(int)
        self._throttled: defaultdict[str, int] = defaultdict(int)
        # ("in" | "out", platform) → the latest moment, and what core/heartbeats last shared.
        self._beats: dict[tuple[str, str], datetime] = {}
        self._flushed: dict[tuple[str, str], datetime] = {}

    def update_in(self, platform: str, result: str = "handled") -> None:
        """One update arrived from a platform."""
        with self._lock:
            self._updates[(platform, result)] += 1

    def sent(self, platform: str, n: int = 1) -> None:
        """`n` messages the platform accepted."""
        if n:
            with self._lock:
                self._sent[platform] += n

    def throttled(self, platform: str) -> None:
        """The platform answered "too many requests" (Telegram's 429, WeChat's 45009)."""
        with self._lock:
            self._throttled[platform] += 1

    def beat(self, direction: str, platform: str, at: datetime) -> None:
        """A platform gave us an update ("in") or took a message ("out") at `at`."""
        key = (direction, platform)
        with self._lock:
            if key not in self._beats or self._beats[key] < at:
                self._beats[key] = at

    def beats(self) -> dict[tuple[str, str], datetime]:
        with self._lock:
            return dict(self._beats)

    def beats_to_flush(self) -> dict[tuple[str, str], datetime]:
        """The moments that moved since they were last shared (core/heartbeats writes them,
        then calls `flushed`)."""
        with self._lock:
            return {k: v for k, v in self._beats.items() if self._flushed.get(k) != v}

    def flushed(self, moments: dict[tuple[str, str], datetime]) -> None:
        with self._lock:
            self._flushed.update(moments)

    def snapshot(self) -> tuple[dict[UpdateKey, int], dict[str, int], dict[str, int]]:
        """(updates, sent, throttled), copied under the lock."""
        with self._lock:
            return dict(self._updates), dict(self._sent), dict(self._throttled)
