"""What the dispatcher and a platform's transport say to each other.

The dispatcher (loop.py) claims rows, works out where each goes on the transport's platform,
and hands the transport a `Work`: the row (or the rows that go out together, an album), its
chats there, the parts already delivered, and for a `card_update` the copies of the card on
that platform. The transport makes the platform's API calls under the platform's rules, notes
each message the platform accepted through the `Ledger` right after the call, and answers with
one `Outcome`; the dispatcher settles it (sent, retried with backoff, dead, put off, given
back to another platform, the person unreachable).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatcher.recipients import Dest
from bot.dispatcher.rows import Row
from core import deliveries
from core.clock import Clock
from core.db import write_session
from core.outbox import mark_sent

T = TypeVar("T")


# ---- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """Delivered (to at least one chat; `lost`: the person's chats that said they are gone)."""

    lost: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retry:
    """Failed: try again with backoff (dead after max attempts), or never (`permanent`)."""

    error: str
    permanent: bool = False
    # At most this many attempts for this kind of failure (a webhook's 4xx), whatever the
    # transport's `max_attempts` and `max_age` allow.
    max_attempts: int | None = None


@dataclass(frozen=True)
class Later:
    """A budget is spent or the platform asked us to wait: put off, no attempt counted."""

    until: datetime
    note: str
    throttled: bool = False  # the platform said "too many requests", not our own budget


@dataclass(frozen=True)
class Gone:
    """None of the row's chats on this platform reaches its recipient (`lost`: the person's
    chats that said so, flagged unreachable before the row is settled)."""

    why: str
    lost: tuple[str, ...] = ()


@dataclass(frozen=True)
class Moved:
    """The chat has a new id (a Telegram group became a supergroup): rebind, send again."""

    old: str
    new: str


@dataclass(frozen=True)
class OneByOne:
    """Rows offered together (an album) could not go as one: deliver them one at a time."""


Outcome = Done | Retry | Later | Gone | Moved | OneByOne


# ---- what a transport is given ----------------------------------------------------------------


@dataclass
class Stats:
    """What a dispatcher did (rows) and what its platform accepted (messages, edits)."""

    messages: int = 0  # platform messages accepted
    edits: int = 0  # card copies changed in place
    too_many: int = 0  # "too many requests" answers
    rows_sent: int = 0
    rows_retried: int = 0
    rows_dead: int = 0
    rows_deferred: int = 0
    rows_released: int = 0
    unreachable: int = 0  # chats flagged unreachable
    errors: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.rows_sent

    @property
    def failed(self) -> int:
        return self.rows_retried + self.rows_dead

    @property
    def deferred(self) -> int:
        return self.rows_deferred


class Ledger:
    """The dispatcher's record of what a platform accepted, for the transport to write right
    after each call (so a retry skips what got through). Each call is one short transaction;
    sync, for transports that run in a worker thread, with `a*` twins for the event loop."""

    def __init__(self, engine: Engine, clock: Clock, platform: str) -> None:
        self.engine, self.clock, self.platform = engine, clock, platform
        self.sent: set[int] = set()  # rows marked sent with their last record (`final`)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """For a platform that lives in our own database (the web chat): its message and its
        record in one transaction."""
        with write_session(self.engine) as s:
            yield s

    def record(self, row: Row, *, chat_id: str, message_id: str, part: int = 0,
               part_type: str = "text", is_card: bool | None = None,
               response_code: str | None = None, session: Session | None = None,
               final: bool = False) -> None:
        """One message the platform accepted for `row` (`is_card`: default the row's kind;
        `final`: the row's last message, so the row is marked sent in the same transaction,
        which saves the dispatcher one)."""
        def write(s: Session) -> None:
            now = self.clock.now()
            deliveries.record_delivery(
                s, outbox_id=row.id, platform=self.platform, chat_id=str(chat_id),
                message_id=str(message_id), part=part, part_type=part_type, kind=row.kind,
                case_id=row.case_id, now=now,
                is_card=row.is_card if is_card is None else is_card,
                response_code=response_code)
            if final:
                mark_sent(s, message_id=row.id, now=now)
                self.sent.add(row.id)

        if session is not None:
            write(session)
            return
        with write_session(self.engine) as s:
            write(s)

    def forget_card(self, delivery_id: int) -> None:
        """A copy that can no longer be edited (deleted, too old, its chat gone)."""
        with write_session(self.engine) as s:
            deliveries.forget_card(s, delivery_id=delivery_id)

    def spend_code(self, delivery_id: int, code: str | None = None) -> None:
        """A copy's one-time update code was used (WeCom)."""
        with write_session(self.engine) as s:
            deliveries.use_response_code(s, delivery_id=delivery_id, code=code)

    def chat_moved(self, old: str, new: str) -> None:
        """The chat has a new id: its binding and waiting rows follow, old cards are let go."""
        with write_session(self.engine) as s:
            deliveries.chat_moved(s, platform=self.platform, old=old, new=new)

    async def arecord(self, row: Row, **kw: object) -> None:
        await asyncio.to_thread(lambda: self.record(row, **kw))  # type: ignore[arg-type]

    async def aforget_card(self, delivery_id: int) -> None:
        await asyncio.to_thread(self.forget_card, delivery_id)

    async def achat_moved(self, old: str, new: str) -> None:
        await asyncio.to_thread(self.chat_moved, old, new)


@dataclass(frozen=True)
class Work:
    """One delivery for a transport: the rows (one, or several offered together), where the
    first goes on this platform, what of it was delivered, and a card update's copies."""

    rows: tuple[Row, ...]
    dests: tuple[Dest, ...]
    done: frozenset[tuple[str, int]]  # (chat, part) already delivered, any of the rows
    cards: tuple[deliveries.CardMessage, ...]  # a card_update's copies on this platform
    ledger: Ledger
    stats: Stats
    now: datetime

    @property
    def row(self) -> Row:
        return self.rows[0]


# ---- the transport -------------------------------------------------------------------------------


class Timer(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait that long on this clock."""
        ...


class RealTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class Transport(Protocol):
    """One platform's API and rules (limits, windows, quotas, sizes, cards, albums) behind one
    call. Claiming, leases, recipients, settling, retries, order and unreachable people are the
    dispatcher's. Optional members (read with getattr, defaults in brackets):

    - `group(queue) -> int`: how many rows at the head of one recipient's queue go out as one
      delivery [1] (Telegram: an album);
    - `parallel: int | None`: at most this many recipients at once [None: no limit];
    - `timer: Timer`: the clock the platform's limits run on [real time];
    - `counts_rows: bool`: the dispatcher counts its rows for /metrics [False: the transport's
      API client counts its own calls];
    - `async settle_calls()`: finish calls under way before the dispatcher gives rows back;
    - `async idle(seconds)`: wait for new work (the web chat's hub wakes it early);
    - `delivered()`: called on the event loop after rows were settled (the web hub);
    - `max_attempts: int | None` [8] and `max_age: timedelta | None` [None]: when a retried
      row is dead (a webhook: no count, a day);
    - `dead(session, row, *, error, now)`: a row of this platform was given up, in the settling
      transaction (a webhook's alert to the admins).
    """

    platform: str

    async def deliver(self, work: Work) -> Outcome:
        """Deliver the work's rows to their chats on this platform; what happened."""
        ...


def group_size(transport: Transport, queue: Sequence[Row]) -> int:
    group: Callable[[Sequence[Row]], int] | None = getattr(transport, "group", None)
    return max(1, min(len(queue), group(queue))) if group is not None else 1


__all__ = ["Done", "Gone", "Later", "Ledger", "Moved", "OneByOne", "Outcome", "RealTimer",
           "Retry", "Stats", "Timer", "Transport", "Work", "group_size"]
