"""Virtual time for the Telegram sender: one clock for the database (`now()`), the rate limiter
(`monotonic()`, `sleep()`) and the fake Bot API server, so no test sleeps through a window."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from core.clock import FakeClock
from tests.support.poll import apoll


class VirtualTime(FakeClock):
    """A FakeClock that is also a Timer: sleeping moves it forward at once.

    Concurrent sleepers each move it to their own wake-up time if it is later than now, so
    time never runs backwards and a sleeper may wake a little late, never early. Every sleep of
    a positive length moves it by at least a microsecond, so no waiter can spin in place.

    Real work under way (HTTP requests to the fake) takes no virtual time: with
    `hold_while(lambda: limiter.in_flight > 0)` a sleeper waits for it to end before moving
    the clock, as a discrete-event simulation would. Without it, a sleeper would jump the clock
    while requests are still on the wire, and rates measured on it would look slower than they
    are (never faster: limits stay safe either way).
    """

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self._epoch = self.now()
        self.slept = 0.0
        self._busy: Callable[[], bool] = lambda: False

    def hold_while(self, busy: Callable[[], bool]) -> None:
        """Do not move the clock while `busy()` is true."""
        self._busy = busy

    def monotonic(self) -> float:
        return (self.now() - self._epoch).total_seconds()

    async def sleep(self, seconds: float) -> None:
        start = self.monotonic()  # the wake-up time counts from the call, not from the yield
        await asyncio.sleep(0)  # let others run, as a real sleep would
        if seconds <= 0:
            return
        if self._busy():  # real time: requests on the wire finish first
            await apoll(lambda: not self._busy(), timeout=30, step=0.0005,
                        what="the calls on the wire to finish")
        self.slept += seconds
        target_us = max(math.ceil((start + seconds) * 1e6), math.ceil(start * 1e6) + 1)
        target = self._epoch + timedelta(microseconds=target_us)
        if target > self.now():
            self.set(target)
