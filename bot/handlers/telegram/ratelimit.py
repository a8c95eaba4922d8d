"""Telegram's flood limits on our side, so that the sender waits instead of being told 429.

Limits (Telegram's FAQ, and the issue): about 30 messages a second in all, one a second into
one chat, 20 a minute into one group (a chat id below zero).

A request holds a slot from the moment it is let go until it has completed, and then counts in
the windows from its *completion* time. Telegram stamps a message somewhere between those two
moments, so the windows here always cover at least what Telegram counts, however long a request
takes: whatever the latency, this limiter cannot let through what Telegram's own windows
refuse. The price is the latency itself (30 per 1 s + one round trip), a few percent.

When Telegram answers 429 anyway (another process sends with the same token, or it is simply
busy), `too_many` pauses that chat for `retry_after`; a second chat told 429 while the first
pause runs means the limit is not the chat's, and everything pauses.

With several workers sending with one token, `share` books every message in buckets they all
see (core/ratebucket.py): the token's global rate, and each chat's own (1 a second into a
chat, 20 a minute into a group), so two workers writing into one chat together keep its limit.

Time comes from a `Timer` (monotonic seconds and an async sleep), so tests run on virtual time
that the fake server shares, and nothing sleeps through a rate window for real.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.ratebucket import RateStore

log = logging.getLogger(__name__)


class Timer(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait that long on this clock."""
        ...


class RealTimer:
    """Real time: time.monotonic and asyncio.sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(frozen=True)
class Limits:
    """The rates the limiter keeps to (Telegram's, by default)."""

    global_count: int = 30
    global_window: float = 1.0
    chat_interval: float = 1.0  # one message per chat per interval (groups too)
    group_count: int = 20
    group_window: float = 60.0
    # Telegram says how long; a little more keeps a retry from landing on the boundary.
    retry_margin: float = 0.05


def is_group(chat_id: str | int) -> bool:
    """Groups, supergroups and channels have negative ids."""
    return str(chat_id).startswith("-")


@dataclass
class _Chat:
    busy: bool = False
    last_done: float | None = None
    paused_until: float = 0.0
    window: deque[float] = field(default_factory=deque)  # completions, groups only


class RateLimiter:
    """Token accounting per chat and in all; `slot(chat)` waits until a send is allowed."""

    def __init__(self, limits: Limits | None = None, timer: Timer | None = None) -> None:
        self.limits = limits or Limits()
        self.timer = timer or RealTimer()
        self._chats: dict[str, _Chat] = {}
        self._window: deque[float] = deque()  # completions of recent requests, in all
        self._in_flight = 0
        self._paused_until = 0.0
        self._recent_429: deque[tuple[float, str]] = deque()
        # Replaced on every completion, so a waiter that looked at the state cannot miss one.
        self._completed: asyncio.Event | None = None
        self._turn: asyncio.Lock | None = None
        self.waited = 0.0  # seconds spent waiting, in all (for metrics and benches)
        self.paused_globally = 0  # how often a 429 paused everything
        self._shared: tuple[RateStore, str, float] | None = None
        self._fraction = 1.0

    def share(self, store: RateStore, *, key: str, fraction: float = 5 / 6) -> None:
        """Keep the limits across every process sending with this token too: each message
        also books a slot in `store`'s bucket `key` (core/ratebucket.py) and in its chat's
        bucket (`<token hash>:chat:<id>`), at `fraction` of each rate, a margin for the
        jitter between booking and Telegram's stamp, which the shared buckets (unlike this
        limiter's own windows) cannot see."""
        lim = self.limits
        self._shared = (store, key, lim.global_count / lim.global_window * fraction)
        self._fraction = fraction

    async def _reserve(self, key: str, rate: float) -> None:
        assert self._shared is not None
        store = self._shared[0]
        try:
            wait = await asyncio.to_thread(store.reserve, key=key, rate=rate)
        except Exception as exc:  # the shared store is down: this process's own limits hold
            log.warning("shared rate limit unavailable (%s); keeping local limits only", exc)
            return
        if wait > 0:
            self.waited += wait
            await self.timer.sleep(wait)

    async def _shared_slot(self) -> None:
        if self._shared is not None:
            _, key, rate = self._shared
            await self._reserve(key, rate)

    async def _shared_chat_slot(self, chat_id: str) -> None:
        """Book the chat's own rate where every worker sees it: one a second, and in a group
        20 a minute (one every 3 s: a shared bucket cannot see a sliding window's burst)."""
        if self._shared is None:
            return
        lim = self.limits
        rate = 1.0 / lim.chat_interval
        if is_group(chat_id):
            rate = min(rate, lim.group_count / lim.group_window)
        token_hash = self._shared[1].partition(":")[0]
        await self._reserve(f"{token_hash}:chat:{chat_id}", rate * self._fraction)

    @property
    def in_flight(self) -> int:
        """Requests let go and not yet completed."""
        return self._in_flight

    def _chat(self, chat_id: str) -> _Chat:
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _Chat()
        return state

    def _chat_wait(self, chat_id: str, now: float) -> float | None:
        """0 when the chat may take a message now, seconds to wait, or None: its previous
        request is still under way."""
        lim = self.limits
        chat = self._chat(chat_id)
        if chat.busy:
            return None
        wait = max(0.0, chat.paused_until - now)
        if chat.last_done is not None:
            wait = max(wait, chat.last_done + lim.chat_interval - now)
        if is_group(chat_id):
            while chat.window and chat.window[0] + lim.group_window <= now:
                chat.window.popleft()
            if len(chat.window) >= lim.group_count:
                wait = max(wait, chat.window[0] + lim.group_window - now)
        return wait

    def _global_wait(self, now: float) -> float | None:
        """0 when one more message fits the global window now, seconds, or None: the window
        is full of requests still under way."""
        lim = self.limits
        wait = max(0.0, self._paused_until - now)
        while self._window and self._window[0] + lim.global_window <= now:
            self._window.popleft()
        if self._in_flight + len(self._window) >= lim.global_count:
            if not self._window:
                return None
            wait = max(wait, self._window[0] + lim.global_window - now)
        return wait

    def wait_needed(self, chat_id: str | int) -> float | None:
        """How long a message into `chat_id` would wait now (None: until a request ends)."""
        now = self.timer.monotonic()
        a, b = self._chat_wait(str(chat_id), now), self._global_wait(now)
        return None if a is None or b is None else max(a, b)

    async def _completion(self) -> None:
        if self._completed is None:
            self._completed = asyncio.Event()
        await self._completed.wait()

    async def acquire(self, chat_id: str) -> None:
        """Wait until one more message into `chat_id` keeps every limit, and take it.

        Waits on a chat's own limits run side by side; the global window is taken in turn
        (first come, first served), so a broadcast queues instead of a crowd polling."""
        chat_id = str(chat_id)
        if self._turn is None:
            self._turn = asyncio.Lock()
        while True:
            wait = self._chat_wait(chat_id, self.timer.monotonic())
            if wait is None:
                await self._completion()
                continue
            if wait > 0:
                self.waited += wait
                await self.timer.sleep(wait)
                continue
            # Other workers may write into this chat too: wait for its shared slot first
            # (outside the turn, so that a busy chat does not hold back the others).
            await self._shared_chat_slot(chat_id)
            async with self._turn:
                while True:
                    gwait = self._global_wait(self.timer.monotonic())
                    if gwait is None:
                        await self._completion()
                    elif gwait > 0:
                        self.waited += gwait
                        await self.timer.sleep(gwait)
                    else:
                        break
                # The chat may have been taken while this request waited its turn.
                if self._chat_wait(chat_id, self.timer.monotonic()) == 0:
                    self._in_flight += 1
                    self._chat(chat_id).busy = True
                    try:
                        await self._shared_slot()
                    except BaseException:  # cancelled while waiting: the slot was never used
                        self.release(chat_id)
                        raise
                    return

    def release(self, chat_id: str, count: int = 1) -> None:
        """The request into `chat_id` has completed (whatever its answer); it carried `count`
        messages (an album carries several)."""
        chat_id = str(chat_id)
        now = self.timer.monotonic()
        self._in_flight -= 1
        self._window.extend([now] * count)
        chat = self._chat(chat_id)
        chat.busy = False
        chat.last_done = now
        if is_group(chat_id):
            chat.window.extend([now] * count)
        if self._completed is not None:
            self._completed.set()
            self._completed = None

    @asynccontextmanager
    async def slot(self, chat_id: str | int, count: int = 1) -> AsyncIterator[None]:
        """`async with limiter.slot(chat): await api.send(...)` (`count`: messages sent)."""
        await self.acquire(str(chat_id))
        try:
            yield
        finally:
            self.release(str(chat_id), count)

    def too_many(self, chat_id: str | int, retry_after: float) -> None:
        """Telegram said 429: pause the chat, or everything when the limit is not the chat's."""
        chat_id = str(chat_id)
        now = self.timer.monotonic()
        until = now + retry_after + self.limits.retry_margin
        chat = self._chat(chat_id)
        chat.paused_until = max(chat.paused_until, until)
        while self._recent_429 and self._recent_429[0][0] <= now - retry_after:
            self._recent_429.popleft()
        self._recent_429.append((now, chat_id))
        if len({c for _, c in self._recent_429}) > 1:
            self._paused_until = max(self._paused_until, until)
            self.paused_globally += 1

    def pause_all(self, seconds: float) -> None:
        """Hold every send (a wrong token, Telegram down)."""
        self._paused_until = max(self._paused_until, self.timer.monotonic() + seconds)
