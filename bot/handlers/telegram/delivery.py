"""The delivery of one outbox row to Telegram: the API calls for its parts, the `Delivery`
record of each, the card edits of a `card_update`, and what each answer of Telegram means for
the row. `JobDelivery` is the base of `TelegramSender` (sender.py), which owns the loop that
claims rows and hands them, one recipient at a time, to `_deliver`; kept apart because the
rules for a single row are a concept of their own and the loop never needs their details.

What each answer means for a row:
- success → the message id is recorded as a `Delivery` and, with the last part, the row is
  marked sent in the same transaction;
- 429 → the limiter pauses the chat (or everything), the row and the rest of its recipient's
  queue are deferred by `retry_after` without counting an attempt: a storm loses nothing;
- 5xx, a dropped connection, a timeout → `mark_failed` (retried with backoff; dead after
  max_attempts), and the recipient's later rows wait behind it to keep their order;
- 403 (blocked, kicked) → the identity is flagged unreachable; when no configured platform
  reaches the person any more, core hears of it (`on_unreachable`: the next tier learns of
  the cases they hold) and the row is given up as "unreachable: …" (it goes out again when
  they write); sent if another identity got it, given back if another platform still can;
- 400 with `migrate_to_chat_id` (a group became a supergroup) → the binding moves to the new
  id and the row goes again at once;
- 400 → dead with Telegram's reason (nothing a retry could fix);
- a wrong token → everything pauses for a minute and the row is given back.

Never twice on purpose: a part is sent once, its delivery recorded right after the call
returns, and a retry skips the parts already recorded. The one at-least-once window is a crash
(or a timeout) between Telegram accepting a message and the record being written: the lease
runs out and the part is sent again. Stopping does not open that window: a call under way is
finished and recorded before the sender gives its remaining rows back.

Long texts are split at 4096 (on line breaks where possible), captions at 1024 with the rest
following as text, buttons (or the contact keyboard) on the last part only, the reply-to on
the first. A `card_update` row edits every Telegram card of its case (editMessageText with the
row's text and buttons; "message is not modified" is success; a card that can no longer be
edited is forgotten) and sends nothing new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.dispatcher.reach import chat_gone, still_reachable
from bot.dispatcher.recipients import destinations
from bot.handlers.telegram.api import (
    Markup,
    TelegramApi,
    Upload,
    contact_keyboard,
    inline_keyboard,
    retry_seconds,
)
from bot.handlers.telegram.jobs import (
    CARD_KINDS,
    PLATFORM,
    Dest,
    Job,
    MediaSource,
    SenderStats,
)
from bot.handlers.telegram.parts import Part, buttons_from_actions, plan
from bot.handlers.telegram.ratelimit import RateLimiter
from core import deliveries
from core.clock import Clock, as_utc
from core.db import write_session
from core.errors import DomainError
from core.outbox import OutboxMessage, OutboxStatus, mark_failed, mark_sent
from core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class JobDelivery:
    """Delivers one row at a time (`_deliver`) and settles its outcome in the outbox; the
    attributes are set by `TelegramSender.__init__`."""

    engine: Engine
    api: TelegramApi
    settings: Settings
    clock: Clock
    limiter: RateLimiter
    media: MediaSource
    stats: SenderStats
    configured: frozenset[str] | None  # the platforms the deployment runs (None: any)
    _calls: set[asyncio.Future[Any]]

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
        voice = job.options.get("voice")
        try:
            parts = plan(job.text, photo=photo, document=document, voice=voice)
            media = None
            if photo or document or voice:
                media = await asyncio.to_thread(self.media, str(photo or voice or document))
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
                except ChatMigrated as e:
                    # The group became a supergroup: its binding follows, the row goes again.
                    return await self._migrated(job, dest.chat_id, str(e.new_chat_id))
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
        dests = destinations(session, platform=PLATFORM, row=job)
        return dests, deliveries.delivered_parts(session, outbox_id=job.id)

    async def _migrated(self, job: Job, old: str, new: str) -> datetime:
        """A group upgraded to a supergroup answers with its new id: rebind, send again."""
        log.info("Telegram chat %s moved to %s; binding follows", old, new)
        now = self.clock.now()

        def move(s: Session) -> None:
            deliveries.chat_moved(s, platform=PLATFORM, old=old, new=new)
            deliveries.defer(s, message_ids=[job.id], until=now, note=f"chat moved to {new}")

        await self._db(move)
        self.stats.rows_deferred += 1
        return now

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
            elif part.kind == "voice" and media is not None:
                mid = await self.api.send_voice(dest.chat_id, media, caption=part.text,
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
        cards = await self._db(lambda s: deliveries.card_messages(
            s, case_id, platform=PLATFORM, person_id=job.person_id,
            chat_binding_id=job.chat_binding_id))
        buttons = buttons_from_actions(job.actions)
        for card in cards:
            try:
                async with self.limiter.slot(card.chat_id):
                    changed = await self.api.edit_card(card.chat_id, card.message_id, job.text,
                                                       buttons=buttons,
                                                       caption=card.part_type != "text")
            except RetryAfter as e:
                return await self._defer(job, card.chat_id, retry_seconds(e))
            except ChatMigrated as e:
                # The old group's cards cannot be edited any more; its binding follows.
                await self._db(lambda s, o=card.chat_id, n=str(e.new_chat_id):  # type: ignore[misc]
                               deliveries.chat_moved(s, platform=PLATFORM, old=o, new=n))
                continue
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
            pid, on = job.person_id, self.configured
            if await self._db(lambda s: still_reachable(s, person_id=pid, configured=on)):
                await self._db(lambda s: deliveries.release(s, message_ids=[job.id]))
                self.stats.rows_released += 1
                return
            # Nobody can reach them now: their next message brings the row back.
            now = self.clock.now()
            await self._db(lambda s: deliveries.give_up_unreachable(
                s, message_ids=[job.id], now=now, why=why))
            self.stats.rows_dead += 1
            return
        await self._dead(job, f"undeliverable: {why}")

    async def _unreachable(self, chat_id: str) -> None:
        def flag(s: Session) -> None:
            chat_gone(s, platform=PLATFORM, chat_id=chat_id, clock=self.clock,
                      settings=self.settings, configured=self.configured)

        await self._db(flag)
        self.stats.unreachable += 1

    async def _db(self, fn: Callable[[Session], T]) -> T:
        """One short transaction in a worker thread (the event loop never waits on the DB)."""
        def run() -> T:
            with write_session(self.engine) as s:
                return fn(s)

        return await asyncio.to_thread(run)
