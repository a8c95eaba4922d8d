"""The one way tests wait for another thread or process: a condition polled against a bound.

Deadlines of the app are never waited out here (they run on the fake clock); this is for a
server thread to start, a sender to deliver, a backend to go away: work done elsewhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
STEP = 0.02


def poll(check: Callable[[], T], *, timeout: float, what: str, step: float = STEP) -> T:
    """`check()`'s first truthy value, or AssertionError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


async def apoll(check: Callable[[], T], *, timeout: float, what: str,
                step: float = STEP) -> T:
    """poll() inside an event loop: yields to the loop between checks."""
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(step)
