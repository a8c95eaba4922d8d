"""The outbox sender for Telegram: drains outbox rows within Telegram's flood limits.

Which rows: `core.deliveries.claim_for_platform(platform="telegram")` — a person with a
reachable Telegram identity (delivered to each such identity), a chat bound on Telegram, a raw
Telegram chat (`platform` + `address`), or a `card_update` of a case with Telegram cards. A
person with no Telegram identity is left for the other platforms' senders.

How fast: every API call goes through the `RateLimiter` (30/s in all, 1/s per chat, 20/min per
group), which makes the sender wait instead of being told 429. Rows for one recipient are
sent in order by one worker; workers for different recipients run side by side, so one slow
group chat does not hold back a broadcast.

What each answer means for a row:
- success → the message id is recorded as a `Delivery` and, with the last part, the row is
  marked sent in the same transaction;
- 429 → the limiter pauses the chat (or everything), the row and the rest of its recipient's
  queue are deferred by `retry_after` without counting an attempt: a storm loses nothing;
- 5xx, a dropped connection, a timeout → `mark_failed` (retried with backoff; dead after
  max_attempts), and the recipient's later rows wait behind it to keep their order;
- 403 (blocked, kicked) → the identity is flagged unreachable and `on_unreachable` tells the
  next tier about the cases the person holds; the row is dead ("undeliverable") unless another
  identity got it (sent) or another platform can still reach the person (given back);
- 400 → dead with Telegram's reason (nothing a retry could fix);
- a wrong token → everything pauses for a minute and the row is given back.

Never twice on purpose: a part is sent once, its delivery recorded right after the call
returns, and a retry skips the parts already recorded. The one at-least-once window is a crash
(or a timeout) between Telegram accepting a message and the record being written: the lease
runs out and the part is sent again. Stopping does not open that window: a call under way is
finished and recorded before the sender gives its remaining rows back.

Order: rows for one recipient go out in outbox order, and when one is deferred or retried the
rows queued behind it wait with it; a row enqueued while an older one waits for its retry may
overtake it (two sender processes may also interleave one recipient's rows).

In the server (webhooks/ lifespan):

    stop = asyncio.Event()
    task = asyncio.create_task(run_sender(engine=engine, settings=settings, stop=stop))
    yield
    stop.set()
    await task

Long texts are split at 4096 (on line breaks where possible), captions at 1024 with the rest
following as text, buttons (or the contact keyboard) on the last part only, the reply-to on
the first. A `card_update` row edits every Telegram card of its case (editMessageText with the
row's text and buttons; "message is not modified" is success; a card that can no longer be
edited is forgotten) and sends nothing new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.handlers.telegram.api import (
    Markup,
    TelegramApi,
    Upload,
    contact_keyboard,
    inline_keyboard,
    retry_seconds,
)
from bot.handlers.telegram.parts import Part, buttons_from_actions, plan
from core import deliveries
from core.cases.unreachable import mark_unreachable, on_unreachable, reachable_anywhere
from core.clock import Clock, SystemClock, as_utc
from core.db import write_session
from core.errors import DomainError
from core.hierarchy.model import ChatBinding, ChatIdentity
from core.media.store import MediaStore
from core.outbox import OutboxMessage, OutboxStatus, mark_failed, mark_sent
from core.settings import Settings

log = logging.getLogger(__name__)

PLATFORM = "telegram"
# Messages that present a case to its holder or its tier chat are cards whose state edits
# follow the case, whether or not the row says `options.card` (core's drafts do not yet).
CARD_KINDS = frozenset({"new_case", "mirror"})
T = TypeVar("T")
CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
CB: sa.Table = ChatBinding.__table__  # type: ignore[attr-defined]


class MediaSource(Protocol):
    def __call__(self, ref: str) -> Upload | str:
        """The bytes to upload for a media-store ref, or a Telegram file_id to send as is."""
        ...


class StoreMedia:
    """Refs of the media store (core/media/store.py); `telegram:<file_id>` is sent by id,
    without an upload (a photo a resident sent, forwarded to a leader)."""

    def __init__(self, store: MediaStore) -> None:
        self.store = store

    def __call__(self, ref: str) -> Upload | str:
        if ref.startswith("telegram:"):
            return ref.removeprefix("telegram:")
        return Upload(ref.rsplit("/", 1)[-1], self.store.open(ref))


@dataclass(frozen=True)
class Job:
    """An outbox row as the sender needs it (plain data: it crosses threads)."""

    id: int
    kind: str
    text: str
    person_id: int | None
    chat_binding_id: int | None
    platform: str | None
    address: str | None
    case_id: int | None
    actions: tuple[dict[str, Any], ...]
    options: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxMessage) -> Job:
        assert row.id is not None
        return cls(row.id, row.kind, row.text, row.person_id, row.chat_binding_id, row.platform,
                   row.address, row.case_id, tuple(row.actions or ()), dict(row.options or {}))

    @property
    def key(self) -> str:
        """Rows with the same key go out in order, one at a time."""
        if self.kind == deliveries.CARD_UPDATE and self.case_id is not None:
            return f"card:{self.case_id}"
        if self.person_id is not None:
            return f"person:{self.person_id}"
        if self.chat_binding_id is not None:
            return f"binding:{self.chat_binding_id}"
        return f"chat:{self.address}"


@dataclass(frozen=True)
class Dest:
    chat_id: str
    identity: bool  # a person's private chat: a 403 makes the identity unreachable


@dataclass
class SenderStats:
    messages: int = 0  # Telegram messages accepted
    rows_sent: int = 0
    rows_retried: int = 0
    rows_dead: int = 0
    rows_deferred: int = 0
    rows_released: int = 0
    too_many: int = 0  # 429 answers
    edits: int = 0
    unreachable: int = 0
    errors: list[str] = field(default_factory=list)


class TelegramSender:
    """Drains the outbox to Telegram; `run(stop)` in a server, `drain()` in tests and benches."""

    def __init__(self, *, engine: Engine, api: TelegramApi, settings: Settings,
                 clock: Clock | None = None, media: MediaSource | None = None,
                 batch: int = 100, max_held: int = 1000,
                 lease: timedelta = timedelta(minutes=5), idle: float = 0.5) -> None:
        self.engine = engine
        self.api = api
        self.settings = settings
        self.clock = clock or SystemClock()
        # The API's limiter is the bot token's: its timer is the sender's too.
        self.limiter = api.limiter
        self.timer = api.limiter.timer
        self.media = media or StoreMedia(MediaStore.from_settings(settings))
        self.batch = batch
        self.max_held = max_held
        self.lease = lease
        self.idle = idle
        self.stats = SenderStats()
        self._held: dict[int, Job] = {}
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._calls: set[asyncio.Future[Any]] = set()
        self._stopping = False
        self._last_heartbeat = 0.0

    # ---- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the calls under way and give back the rest."""
        self._stopping = False
        try:
            while not stop.is_set():
                claimed = await self._fill()
                await self._heartbeat()
                if not claimed:
                    await self._pause(stop)
        finally:
            await self._shutdown()

    async def drain(self, *, max_seconds: float = 3600.0) -> SenderStats:
        """Deliver until no row for Telegram is left pending (sent or dead), on the timer's
        clock; raises TimeoutError past `max_seconds`."""
        self._stopping = False
        start = self.timer.monotonic()
        try:
            while True:
                claimed = await self._fill()
                await self._heartbeat()
                if not claimed and not self._held:
                    left = await self._db(lambda s: deliveries.pending_for_platform(
                        s, platform=PLATFORM))
                    if left == 0:
                        break
                if self.timer.monotonic() - start > max_seconds:
                    raise TimeoutError(f"outbox not drained in {max_seconds} s")
                if not claimed:
                    await self._pause(None)
        finally:
            await self._shutdown()
        return self.stats

    async def _pause(self, stop: asyncio.Event | None) -> None:
        """Between claims: wake when a worker finishes (it may free room), when new rows may be
        due (`idle` on the timer), or when told to stop."""
        waits: set[asyncio.Future[Any]] = set(self._workers.values())
        if waits:
            # Workers run on real I/O: wait for them in real time, not on a virtual clock.
            timeout: float | None = self.idle
        else:
            waits.add(asyncio.ensure_future(self.timer.sleep(self.idle)))
            timeout = None
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopper is not None:
            waits.add(stopper)
        _, pending = await asyncio.wait(waits, timeout=timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            if f not in self._workers.values():
                f.cancel()

    async def _fill(self) -> int:
        room = min(self.batch, self.max_held - len(self._held))
        if room <= 0:
            return 0
        now = self.clock.now()
        jobs = await self._db(lambda s: [Job.of(r) for r in deliveries.claim_for_platform(
            s, platform=PLATFORM, now=now, limit=room, lease=self.lease)])
        for job in jobs:
            self._held[job.id] = job
            self._queues.setdefault(job.key, deque()).append(job)
            if job.key not in self._workers:
                self._workers[job.key] = asyncio.create_task(self._work(job.key))
        return len(jobs)

    async def _heartbeat(self) -> None:
        now = self.timer.monotonic()
        if now - self._last_heartbeat < self.lease.total_seconds() / 3:
            return
        self._last_heartbeat = now
        ids = list(self._held)
        if ids:
            until = self.clock.now() + self.lease
            await self._db(lambda s: deliveries.extend_lease(s, message_ids=ids, until=until))

    async def _shutdown(self) -> None:
        self._stopping = True
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=5)
            for w in pending:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if self._calls:
            # A call under way is finished and recorded before its row is given back.
            await asyncio.gather(*list(self._calls), return_exceptions=True)
        ids = list(self._held)
        if ids:
            await self._db(lambda s: deliveries.release(s, message_ids=ids))
            self.stats.rows_released += len(ids)
        self._held.clear()
        self._queues.clear()
        self._workers.clear()

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                job = queue[0]
                try:
                    until = await self._deliver(job)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # a bug or the database: keep the sender alive
                    log.exception("outbox row %s failed", job.id)
                    self.stats.errors.append(f"row {job.id}: {e!r}")
                    until = await self._fail(job, f"sender error: {e!r}")
                queue.popleft()
                self._held.pop(job.id, None)
                if until is not None and queue:
                    # Later rows for the same recipient wait behind this one: order is kept.
                    # Taken off the queue before the await: rows claimed meanwhile join behind.
                    rest = [j.id for j in queue]
                    queue.clear()
                    for jid in rest:
                        self._held.pop(jid, None)
                    await self._db(lambda s, r=rest, u=until: deliveries.defer(  # type: ignore[misc]
                        s, message_ids=r, until=u))
                    self.stats.rows_deferred += len(rest)
        finally:
            self._queues.pop(key, None)
            self._workers.pop(key, None)

    # ---- one row ----------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> datetime | None:
        """Deliver one row; a moment when the recipient's queue may go on, or None at once."""
        if job.kind == deliveries.CARD_UPDATE and job.case_id is not None:
            return await self._edit_cards(job)
        query = job.options.get("answer_press")
        if query:
            try:
                await self.api.answer_press(str(query), job.text)
            except RetryAfter as e:
                return await self._defer(job, None, retry_seconds(e))
            except BadRequest as e:
                # Too late to answer the press: say it in the chat instead.
                log.info("row %s: press not answered (%s); sending a message", job.id, e.message)
            except TelegramError as e:
                return await self._fail(job, f"answerCallbackQuery: {e}")
            else:
                await self._db(lambda s: mark_sent(s, message_id=job.id, now=self.clock.now()))
                self.stats.rows_sent += 1
                return None
        dests, done = await self._db(lambda s: self._resolve(s, job))
        if not dests:
            await self._undeliverable(job, "no reachable Telegram chat")
            return None
        photo, document = job.options.get("photo"), job.options.get("document")
        try:
            parts = plan(job.text, photo=photo, document=document)
            media = None
            if photo or document:
                media = await asyncio.to_thread(self.media, str(photo or document))
                if isinstance(media, Upload) and job.options.get("filename"):
                    media = Upload(str(job.options["filename"]), media.data)
        except (ValueError, OSError, DomainError) as e:
            await self._dead(job, f"cannot build the message: {e!r}")
            return None
        markup: Markup | None
        if job.options.get("request_contact"):
            label = job.options.get("contact_label")
            markup = contact_keyboard(label) if label else contact_keyboard()
        else:
            markup = inline_keyboard(buttons_from_actions(job.actions))
        reply_to = job.options.get("reply_to_message_id")
        last = (len(dests) - 1, len(parts) - 1)
        problems: list[str] = []
        got_any = bool(done)
        for di, dest in enumerate(dests):
            for pi, part in enumerate(parts):
                if (dest.chat_id, pi) in done:
                    continue
                final = (di, pi) == last and not problems
                try:
                    await self._send(job, dest, pi, part, media,
                                     markup if part.last else None,
                                     reply_to if part.first else None, final)
                except RetryAfter as e:
                    return await self._defer(job, dest.chat_id, retry_seconds(e))
                except Forbidden as e:
                    problems.append(f"{dest.chat_id}: {e.message}")
                    if dest.identity:
                        await self._unreachable(dest.chat_id)
                    break
                except BadRequest as e:
                    problems.append(f"{dest.chat_id}: {e.message}")
                    break
                except InvalidToken as e:
                    log.error("Telegram refused the bot token (%s); pausing the sender", e)
                    self.limiter.pause_all(60)
                    await self._db(lambda s: deliveries.release(s, message_ids=[job.id]))
                    self.stats.rows_released += 1
                    return self.clock.now() + timedelta(seconds=60)
                except TelegramError as e:  # NetworkError, TimedOut, 5xx, ChatMigrated
                    return await self._fail(job, f"{type(e).__name__}: {e}")
                got_any = True
                if final:
                    self.stats.rows_sent += 1
                    return None
        if got_any:
            await self._db(lambda s: mark_sent(s, message_id=job.id, now=self.clock.now()))
            self.stats.rows_sent += 1
            return None
        await self._undeliverable(job, "; ".join(problems) or "nothing delivered")
        return None

    def _resolve(self, session: Session, job: Job) -> tuple[list[Dest], set[tuple[str, int]]]:
        """The Telegram chats of a row's recipient and the parts already delivered."""
        if job.person_id is not None:
            ids = session.execute(
                sa.select(CI.c.external_id).where(
                    CI.c.person_id == job.person_id, CI.c.platform == PLATFORM,
                    CI.c.unreachable.is_(False)).order_by(CI.c.id)
            ).scalars()
            dests = [Dest(str(x), identity=True) for x in ids]
        elif job.chat_binding_id is not None:
            row = session.execute(
                sa.select(CB.c.chat_id, CB.c.platform).where(CB.c.id == job.chat_binding_id)
            ).first()
            dests = [Dest(str(row.chat_id), identity=False)] if row and row.platform == PLATFORM \
                else []
        elif job.platform == PLATFORM and job.address:
            dests = [Dest(str(job.address), identity=False)]
        else:
            dests = []
        return dests, deliveries.delivered_parts(session, outbox_id=job.id)

    async def _send(self, job: Job, dest: Dest, index: int, part: Part,
                    media: Upload | str | None, markup: Markup | None,
                    reply_to: str | None, final: bool) -> int:
        """One API call under the limiter, and its record; shielded so that stopping the
        sender never abandons a message Telegram may have accepted."""
        await self.limiter.acquire(dest.chat_id)
        call = asyncio.ensure_future(
            self._call_and_record(job, dest, index, part, media, markup, reply_to, final))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        return await asyncio.shield(call)

    async def _call_and_record(self, job: Job, dest: Dest, index: int, part: Part,
                               media: Upload | str | None, markup: Markup | None,
                               reply_to: str | None, final: bool) -> int:
        try:
            if part.kind == "photo" and media is not None:
                mid = await self.api.send_photo(dest.chat_id, media, caption=part.text,
                                                markup=markup, reply_to=reply_to)
            elif part.kind == "document" and media is not None:
                mid = await self.api.send_document(dest.chat_id, media, caption=part.text,
                                                   markup=markup, reply_to=reply_to)
            else:
                mid = await self.api.send_text(dest.chat_id, part.text, markup=markup,
                                               reply_to=reply_to)
        finally:
            self.limiter.release(dest.chat_id)
        self.stats.messages += 1
        now = self.clock.now()
        is_card = (bool(job.options.get("card")) or job.kind in CARD_KINDS) and part.last

        def record(s: Session) -> None:
            deliveries.record_delivery(
                s, outbox_id=job.id, platform=PLATFORM, chat_id=dest.chat_id,
                message_id=str(mid), part=index, part_type=part.kind, case_id=job.case_id,
                kind=job.kind, is_card=is_card, now=now)
            if final:
                mark_sent(s, message_id=job.id, now=now)

        await self._db(record)
        return mid

    async def _edit_cards(self, job: Job) -> datetime | None:
        assert job.case_id is not None
        case_id = job.case_id
        cards = await self._db(lambda s: deliveries.card_messages(s, case_id, platform=PLATFORM))
        buttons = buttons_from_actions(job.actions)
        for card in cards:
            try:
                async with self.limiter.slot(card.chat_id):
                    changed = await self.api.edit_card(card.chat_id, card.message_id, job.text,
                                                       buttons=buttons,
                                                       caption=card.part_type != "text")
            except RetryAfter as e:
                return await self._defer(job, card.chat_id, retry_seconds(e))
            except (BadRequest, Forbidden) as e:
                # Deleted, too old to edit, or the chat is gone: a retry cannot fix it.
                log.info("card %s/%s of case %s forgotten: %s", card.chat_id, card.message_id,
                         case_id, e.message)
                await self._db(lambda s, d=card.delivery_id: deliveries.forget_card(  # type: ignore[misc]
                    s, delivery_id=d))
                continue
            except TelegramError as e:
                return await self._fail(job, f"edit {type(e).__name__}: {e}")
            self.stats.edits += int(changed)
        await self._db(lambda s: mark_sent(s, message_id=job.id, now=self.clock.now()))
        self.stats.rows_sent += 1
        return None

    # ---- outcomes ---------------------------------------------------------------------------

    async def _defer(self, job: Job, chat_id: str | None, seconds: float) -> datetime:
        self.stats.too_many += 1
        if chat_id is not None:
            self.limiter.too_many(chat_id, seconds)
        else:
            self.limiter.pause_all(seconds)
        until = self.clock.now() + timedelta(seconds=seconds + self.limiter.limits.retry_margin)
        await self._db(lambda s: deliveries.defer(s, message_ids=[job.id], until=until,
                                                  note=f"429: retry after {seconds:g}s"))
        self.stats.rows_deferred += 1
        return until

    async def _fail(self, job: Job, error: str) -> datetime | None:
        """A failure worth retrying: backoff via mark_failed (dead after max_attempts)."""
        now = self.clock.now()

        def fail(s: Session) -> tuple[OutboxStatus, datetime]:
            status = mark_failed(s, message_id=job.id, now=now, error=error)
            row = s.get(OutboxMessage, job.id)
            assert row is not None
            return status, as_utc(row.next_attempt_at)

        status, next_at = await self._db(fail)
        if status is OutboxStatus.dead:
            self.stats.rows_dead += 1
            log.error("outbox row %s gave up after retries: %s", job.id, error)
            return None
        self.stats.rows_retried += 1
        return next_at

    async def _dead(self, job: Job, error: str) -> None:
        now = self.clock.now()
        await self._db(lambda s: mark_failed(s, message_id=job.id, now=now, error=error,
                                             permanent=True))
        self.stats.rows_dead += 1
        log.warning("outbox row %s undeliverable: %s", job.id, error)

    async def _undeliverable(self, job: Job, why: str) -> None:
        """No Telegram chat took the row: another platform's turn if one still reaches the
        person, else dead."""
        if job.person_id is not None:
            pid = job.person_id
            if await self._db(lambda s: reachable_anywhere(s, person_id=pid)):
                await self._db(lambda s: deliveries.release(s, message_ids=[job.id]))
                self.stats.rows_released += 1
                return
        await self._dead(job, f"undeliverable: {why}")

    async def _unreachable(self, chat_id: str) -> None:
        def flag(s: Session) -> None:
            pid = mark_unreachable(s, platform=PLATFORM, external_id=chat_id)
            if pid is not None:
                on_unreachable(s, person_id=pid, clock=self.clock, settings=self.settings)

        await self._db(flag)
        self.stats.unreachable += 1

    async def _db(self, fn: Callable[[Session], T]) -> T:
        """One short transaction in a worker thread (the event loop never waits on the DB)."""
        def run() -> T:
            with write_session(self.engine) as s:
                return fn(s)

        return await asyncio.to_thread(run)


async def run_sender(*, engine: Engine, settings: Settings, stop: asyncio.Event,
                     clock: Clock | None = None, api: TelegramApi | None = None,
                     media: MediaSource | None = None) -> None:
    """Drain the outbox to Telegram until `stop` is set: run it as a task in the FastAPI
    lifespan (`asyncio.create_task(run_sender(...))`, then `stop.set()` and await it)."""
    own = api is None
    api = api or TelegramApi.from_settings(settings)
    delay = 1.0
    while own and not stop.is_set():
        try:
            await api.start()
            break
        except TelegramError as e:  # Telegram unreachable at boot: keep trying, do not crash
            log.warning("Telegram not reachable yet (%s); retrying in %.0f s", e, delay)
            await _wait(stop, delay)
            delay = min(60.0, delay * 2)
    try:
        if not stop.is_set():
            sender = TelegramSender(engine=engine, api=api, settings=settings, clock=clock,
                                    media=media, lease=settings.outbox_lease)
            await sender.run(stop)
    finally:
        if own:
            await api.close()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

