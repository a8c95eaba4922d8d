"""Telegram's transport for the one dispatcher (bot/dispatcher/loop.py): the Bot API calls for
a row and what each of Telegram's answers means.

How fast: every API call goes through the bot token's `RateLimiter` (30/s in all, 1/s per
chat, 20/min per group; shared by every worker through core/ratebucket.py), which makes the
transport wait instead of being told 429. The dispatcher runs recipients side by side, so the
limiter, not the loop, sets the pace.

What each answer means (as an Outcome the dispatcher settles):
- success → the message id is recorded (Ledger) right after the call;
- 429 → the limiter pauses the chat (or everything) and the row is put off by `retry_after`
  without counting an attempt (Later): a storm loses nothing;
- 5xx, a dropped connection, a timeout → Retry (backoff; dead after max attempts);
- 403 (blocked, kicked) → the person's chat is lost; Done if another chat got the row, else
  Gone (another platform's turn, or unreachable);
- 400 with `migrate_to_chat_id` (a group became a supergroup) → Moved: the binding follows;
- 400 → Gone with Telegram's reason (nothing a retry could fix);
- a wrong token → everything pauses for a minute (Later).

Never twice on purpose: a part is sent once, recorded right after the call returns, and a
retry skips the parts already recorded. The one at-least-once window is a crash between
Telegram accepting a message and the record being written. Stopping does not open it: calls
under way are shielded and finished (`settle_calls`) before the dispatcher gives rows back.

Long texts are split at 4096 (on line breaks where possible), captions at 1024 with the rest
following as text, buttons (or the contact keyboard) on the last part only, the reply-to on
the first. A `card_update` edits every Telegram copy it is handed (editMessageText with the
row's text and buttons; "message is not modified" is success; a copy that can no longer be
edited is forgotten) and sends nothing new. Photo rows waiting together go as an album
(album.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.dispatcher.loop import Dispatcher
from bot.dispatcher.recipients import Dest
from bot.dispatcher.rows import Row
from bot.dispatcher.transport import Done, Gone, Later, Moved, Outcome, Retry, Work
from bot.handlers.telegram.album import album_of, deliver_album
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
from core.clock import Clock, SystemClock
from core.errors import DomainError
from core.media.store import MediaStore
from core.settings import Settings

log = logging.getLogger(__name__)
PLATFORM = "telegram"


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


class TelegramTransport:
    """The Bot API behind the dispatcher's Transport protocol."""

    platform = PLATFORM
    counts_rows = False  # TelegramApi counts its own calls for /metrics

    def __init__(self, *, api: TelegramApi, media: MediaSource) -> None:
        self.api = api
        # The API's limiter is the bot token's: its timer is the dispatcher's too.
        self.limiter = api.limiter
        self.timer = api.limiter.timer
        self.media = media
        self._calls: set[asyncio.Future[Any]] = set()

    def group(self, queue: Sequence[Row]) -> int:
        """Photo rows waiting together for one recipient go as one album."""
        return len(album_of(queue)) or 1

    async def settle_calls(self) -> None:
        if self._calls:
            await asyncio.gather(*list(self._calls), return_exceptions=True)

    async def deliver(self, work: Work) -> Outcome:
        if len(work.rows) > 1:
            return await deliver_album(self, work)
        row = work.row
        if row.kind == deliveries.CARD_UPDATE and row.case_id is not None:
            return await self._edit_cards(work)
        query = row.options.get("answer_press")
        if query:
            try:
                await self.api.answer_press(str(query), row.text)
            except RetryAfter as e:
                return self.too_many(work, None, retry_seconds(e))
            except BadRequest as e:
                # Too late to answer the press: say it in the chat instead.
                log.info("row %s: press not answered (%s); sending a message", row.id, e.message)
            except TelegramError as e:
                return Retry(f"answerCallbackQuery: {e}")
            else:
                return Done()
        if not work.dests:
            return Gone("no reachable Telegram chat")
        photo, document = row.options.get("photo"), row.options.get("document")
        voice = row.options.get("voice")
        try:
            parts = plan(row.text, photo=photo, document=document, voice=voice)
            media = None
            if photo or document or voice:
                media = await asyncio.to_thread(self.media, str(photo or voice or document))
                if isinstance(media, Upload) and row.options.get("filename"):
                    media = Upload(str(row.options["filename"]), media.data)
        except (ValueError, OSError, DomainError) as e:
            return Retry(f"cannot build the message: {e!r}", permanent=True)
        markup: Markup | None
        if row.options.get("request_contact"):
            label = row.options.get("contact_label")
            markup = contact_keyboard(label) if label else contact_keyboard()
        else:
            url = row.options.get("link_url")
            markup = inline_keyboard(buttons_from_actions(row.actions), link=(
                f'{row.options.get("link_title") or "网页"} · {row.options.get("link_text")}',
                str(url)) if url else None)
        reply_to = row.options.get("reply_to_message_id")
        problems: list[str] = []
        lost: list[str] = []
        got_any = bool(work.done)
        last = (len(work.dests) - 1, len(parts) - 1)
        for di, dest in enumerate(work.dests):
            for pi, part in enumerate(parts):
                if (dest.chat_id, pi) in work.done:
                    continue
                try:
                    await self.send(work, dest, pi, part, media, markup if part.last else None,
                                    reply_to if part.first else None,
                                    final=(di, pi) == last and not problems)
                except RetryAfter as e:
                    return self.too_many(work, dest.chat_id, retry_seconds(e))
                except Forbidden as e:
                    problems.append(f"{dest.chat_id}: {e.message}")
                    if dest.identity:
                        lost.append(dest.chat_id)
                    break
                except ChatMigrated as e:
                    return Moved(dest.chat_id, str(e.new_chat_id))
                except BadRequest as e:
                    problems.append(f"{dest.chat_id}: {e.message}")
                    break
                except InvalidToken as e:
                    log.error("Telegram refused the bot token (%s); pausing", e)
                    self.limiter.pause_all(60)
                    return Later(work.now + timedelta(seconds=60), "Telegram refused the token")
                except TelegramError as e:  # NetworkError, TimedOut, 5xx
                    return Retry(f"{type(e).__name__}: {e}")
                got_any = True
        if got_any:
            return Done(lost=tuple(lost))
        return Gone("; ".join(problems) or "nothing delivered", lost=tuple(lost))

    def too_many(self, work: Work, chat_id: str | None, seconds: float) -> Later:
        """429: the limiter holds the chat (or everything) back; the row waits as long."""
        work.stats.too_many += 1
        if chat_id is not None:
            self.limiter.too_many(chat_id, seconds)
        else:
            self.limiter.pause_all(seconds)
        until = work.now + timedelta(seconds=seconds + self.limiter.limits.retry_margin)
        return Later(until, f"429: retry after {seconds:g}s", throttled=True)

    async def send(self, work: Work, dest: Dest, index: int, part: Part,
                   media: Upload | str | None, markup: Markup | None,
                   reply_to: str | None, *, final: bool = False) -> int:
        """One API call under the limiter, and its record; shielded so that stopping never
        abandons a message Telegram may have accepted."""
        await self.limiter.acquire(dest.chat_id)
        call = asyncio.ensure_future(
            self._call_and_record(work, dest, index, part, media, markup, reply_to, final))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        return await asyncio.shield(call)

    async def _call_and_record(self, work: Work, dest: Dest, index: int, part: Part,
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
        work.stats.messages += 1
        row = work.row
        await work.ledger.arecord(row, chat_id=dest.chat_id, message_id=str(mid), part=index,
                                  part_type=part.kind, is_card=row.is_card and part.last,
                                  final=final)
        return mid

    async def _edit_cards(self, work: Work) -> Outcome:
        row = work.row
        buttons = buttons_from_actions(row.actions)
        for card in work.cards:
            try:
                async with self.limiter.slot(card.chat_id):
                    changed = await self.api.edit_card(card.chat_id, card.message_id, row.text,
                                                       buttons=buttons,
                                                       caption=card.part_type != "text")
            except RetryAfter as e:
                return self.too_many(work, card.chat_id, retry_seconds(e))
            except ChatMigrated as e:
                # The old group's cards cannot be edited any more; its binding follows.
                await work.ledger.achat_moved(card.chat_id, str(e.new_chat_id))
                continue
            except (BadRequest, Forbidden) as e:
                # Deleted, too old to edit, or the chat is gone: a retry cannot fix it.
                log.info("card %s/%s of case %s forgotten: %s", card.chat_id, card.message_id,
                         row.case_id, e.message)
                await work.ledger.aforget_card(card.delivery_id)
                continue
            except TelegramError as e:
                return Retry(f"edit {type(e).__name__}: {e}")
            work.stats.edits += int(changed)
        return Done()


def telegram_dispatcher(*, engine: Engine, api: TelegramApi, settings: Settings,
                        clock: Clock | None = None, media: MediaSource | None = None,
                        **kw: Any) -> Dispatcher:
    """The one dispatcher over Telegram's transport (tests, benches): `drain()` or `run()`."""
    transport = TelegramTransport(api=api, media=media or StoreMedia(
        MediaStore.from_settings(settings)))
    return Dispatcher(engine=engine, transport=transport, clock=clock or SystemClock(),
                      settings=settings, **kw)
