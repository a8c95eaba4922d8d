"""The Telegram Bot API as the rest of the bot uses it: python-telegram-bot's `Bot`, pointed at
`TELEGRAM_API_BASE` (Telegram, a self-hosted Bot API server, or the test double), behind a
few small methods.

Errors are python-telegram-bot's own (`telegram.error.RetryAfter`, `Forbidden`, `BadRequest`,
`TimedOut`, `NetworkError`, `InvalidToken`); the sender decides what each means for an outbox
row. Texts are sent as plain text (no parse mode), so what residents wrote can never break
the markup.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeChatAdministrators,
    BotCommandScopeChatMember,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyParameters,
)
from telegram.error import BadRequest, RetryAfter
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bot.flows.types import Button
from bot.handlers.telegram.parts import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    keyboard_rows,
    plan,
    split_text,
)
from bot.handlers.telegram.ratelimit import Limits, RateLimiter, Timer
from core.counters import Counters
from core.errors import MediaRejected
from core.settings import Settings

DOWNLOAD_LIMIT = 20 * 2**20  # getFile serves files up to 20 MB
ANSWER_LIMIT = 200  # answerCallbackQuery text
CONTACT_LABEL = "📱 分享手机号 / Share my phone number"
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


@dataclass(frozen=True)
class Upload:
    """Bytes to upload as a photo or a file."""

    filename: str
    data: bytes


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter's wait in seconds, whichever type this PTB version hands out."""
    with warnings.catch_warnings():
        # PTB 22 warns that the int form will become a timedelta; both are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


def inline_keyboard(buttons: Sequence[Button], *, link: tuple[str, str] | None = None
                    ) -> InlineKeyboardMarkup | None:
    """An inline keyboard for the buttons (None when none can be shown); `link` (label, url)
    adds a row of its own with a URL button on top (a checklist's web page)."""
    rows: list[list[InlineKeyboardButton]] = [
        [InlineKeyboardButton(label, callback_data=data) for label, data in row]
        for row in keyboard_rows(buttons)]
    if link is not None:
        rows.insert(0, [InlineKeyboardButton(link[0], url=link[1])])
    return InlineKeyboardMarkup(rows) if rows else None


def contact_keyboard(label: str = CONTACT_LABEL) -> ReplyKeyboardMarkup:
    """A one-button keyboard that shares the user's own phone number."""
    return ReplyKeyboardMarkup([[KeyboardButton(label, request_contact=True)]],
                               resize_keyboard=True, one_time_keyboard=True)


def command_scope(scope: str, *, chat_id: str | int | None = None,
                  user_id: int | None = None) -> BotCommandScope:
    """default | all_private_chats | all_group_chats | all_chat_administrators | chat |
    chat_administrators | chat_member (the last three need chat_id; chat_member a user_id)."""
    if scope == "default":
        return BotCommandScopeDefault()
    if scope == "all_private_chats":
        return BotCommandScopeAllPrivateChats()
    if scope == "all_group_chats":
        return BotCommandScopeAllGroupChats()
    if scope == "all_chat_administrators":
        return BotCommandScopeAllChatAdministrators()
    if chat_id is None:
        raise ValueError(f"command scope {scope!r} needs a chat_id")
    if scope == "chat":
        return BotCommandScopeChat(chat_id)
    if scope == "chat_administrators":
        return BotCommandScopeChatAdministrators(chat_id)
    if scope == "chat_member" and user_id is not None:
        return BotCommandScopeChatMember(chat_id, user_id)
    raise ValueError(f"unknown command scope {scope!r}")


def _chat(chat_id: str | int) -> int | str:
    """Numeric ids as int (what Telegram expects), @usernames as they are."""
    text = str(chat_id)
    return int(text) if text.lstrip("-").isdigit() else text


class TelegramApi:
    """One bot token's access to the Bot API, with the token's one rate limiter (`limiter`):
    Telegram's limits are per bot, so everything that sends with this token shares it."""

    def __init__(self, *, token: str, base: str = "https://api.telegram.org",
                 pool_size: int = 64, timeout: float = 10.0, poll_timeout: float = 60.0,
                 limits: Limits | None = None, timer: Timer | None = None,
                 counters: Counters | None = None) -> None:
        base = base.rstrip("/")
        self.base = base
        self.counters = counters
        self.limiter = RateLimiter(limits, timer)
        # The pool must hold as many connections as the sender has requests in flight.
        self._request = HTTPXRequest(connection_pool_size=pool_size, read_timeout=timeout,
                               write_timeout=timeout, connect_timeout=timeout,
                               pool_timeout=timeout, media_write_timeout=max(timeout, 30.0))
        self._updates = HTTPXRequest(connection_pool_size=1, read_timeout=poll_timeout + 10,
                               connect_timeout=timeout, pool_timeout=timeout)
        self.bot = Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot",
                       request=self._request, get_updates_request=self._updates)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> TelegramApi:
        """The API for the deployment's token and TELEGRAM_API_BASE."""
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        return cls(token=settings.telegram_bot_token.get_secret_value(),
                   base=settings.telegram_api_base, **kwargs)

    async def start(self) -> None:
        """Open the HTTP pools and check the token (getMe)."""
        await self.bot.initialize()

    async def close(self) -> None:
        """Close the HTTP pools (also when `start` never ran: PTB's shutdown would skip them)."""
        await self.bot.shutdown()
        await self._request.shutdown()
        await self._updates.shutdown()

    async def __aenter__(self) -> TelegramApi:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- sending ----------------------------------------------------------------------------

    @contextmanager
    def _counted(self, messages: int = 1) -> Iterator[None]:
        """Count a call's accepted messages and its 429 for /metrics (every sender's calls
        pass through here, so nothing else has to count)."""
        try:
            yield
        except RetryAfter:
            if self.counters is not None:
                self.counters.throttled("telegram")
            raise
        if self.counters is not None:
            self.counters.sent("telegram", messages)

    async def send_text(self, chat_id: str | int, text: str, *, markup: Markup | None = None,
                        reply_to: str | int | None = None) -> int:
        """Send one text (at most 4096 UTF-16 units); the message id Telegram gave it."""
        with self._counted():
            msg = await self.bot.send_message(_chat(chat_id), text, reply_markup=markup,
                                              reply_parameters=self._reply(reply_to))
        return msg.message_id

    async def send_photo(self, chat_id: str | int, photo: Upload | str, *, caption: str = "",
                         markup: Markup | None = None, reply_to: str | int | None = None) -> int:
        """Send a photo (an upload, or a Telegram file_id) with a caption of at most 1024."""
        with self._counted():
            msg = await self.bot.send_photo(_chat(chat_id), self._input(photo),
                                            caption=caption or None, reply_markup=markup,
                                            reply_parameters=self._reply(reply_to))
        return msg.message_id

    async def send_document(self, chat_id: str | int, document: Upload | str, *,
                            caption: str = "", markup: Markup | None = None,
                            reply_to: str | int | None = None) -> int:
        """Send a file (an upload, or a Telegram file_id) with a caption of at most 1024."""
        with self._counted():
            msg = await self.bot.send_document(_chat(chat_id), self._input(document),
                                               caption=caption or None, reply_markup=markup,
                                               reply_parameters=self._reply(reply_to))
        return msg.message_id

    async def send_voice(self, chat_id: str | int, voice: Upload | str, *, caption: str = "",
                         markup: Markup | None = None, reply_to: str | int | None = None) -> int:
        """Send a voice note (an OGG/Opus upload, or a Telegram file_id) with a caption."""
        with self._counted():
            msg = await self.bot.send_voice(_chat(chat_id), self._input(voice),
                                            caption=caption or None, reply_markup=markup,
                                            reply_parameters=self._reply(reply_to))
        return msg.message_id

    async def send_album(self, chat_id: str | int, photos: Sequence[Upload | str], *,
                         caption: str = "") -> list[int]:
        """Send 2-10 photos as one media group (an album), the caption on the first; the
        message ids Telegram gave them. An album carries no buttons."""
        media = [InputMediaPhoto(self._input(p), caption=(caption or None) if i == 0 else None)
                 for i, p in enumerate(photos)]
        with self._counted(len(media)):
            msgs = await self.bot.send_media_group(_chat(chat_id), media)
        return [m.message_id for m in msgs]

    async def send(self, chat_id: str | int, text: str, *, buttons: Sequence[Button] = (),
                   reply_to: str | int | None = None, request_contact: bool = False,
                   photo: Upload | str | None = None,
                   document: Upload | str | None = None) -> list[int]:
        """Send a whole message straight away, split as Telegram requires (texts at 4096 on
        line breaks, captions at 1024 with the rest following), the buttons or the contact
        keyboard on the last part; each part waits its turn in `limiter`. Nothing is recorded:
        the outbox sender is the way for anything that must arrive."""
        parts = plan(text, photo="photo" if photo else None,
                     document="document" if document else None)
        markup: Markup | None = contact_keyboard() if request_contact else inline_keyboard(buttons)
        ids = []
        for part in parts:
            m = markup if part.last else None
            r = reply_to if part.first else None
            async with self.limiter.slot(chat_id):
                if part.kind == "photo" and photo is not None:
                    ids.append(await self.send_photo(chat_id, photo, caption=part.text,
                                                     markup=m, reply_to=r))
                elif part.kind == "document" and document is not None:
                    ids.append(await self.send_document(chat_id, document, caption=part.text,
                                                        markup=m, reply_to=r))
                else:
                    ids.append(await self.send_text(chat_id, part.text, markup=m, reply_to=r))
        return ids

    @staticmethod
    def _reply(reply_to: str | int | None) -> ReplyParameters | None:
        if reply_to is None or not str(reply_to).isdigit():
            return None
        # A deleted original must not cost the reply itself.
        return ReplyParameters(int(reply_to), allow_sending_without_reply=True)

    @staticmethod
    def _input(media: Upload | str) -> InputFile | str:
        if isinstance(media, Upload):
            return InputFile(media.data, filename=media.filename)
        return media

    async def edit_card(self, chat_id: str | int, message_id: str | int, text: str, *,
                        buttons: Sequence[Button] = (), caption: bool = False) -> bool:
        """Bring a card up to date (its text or caption, and its buttons); False when it
        already was ("message is not modified" is success)."""
        markup = inline_keyboard(buttons)
        try:
            with self._counted(0):
                if caption:
                    await self.bot.edit_message_caption(
                        chat_id=_chat(chat_id), message_id=int(message_id),
                        caption=split_text(text, CAPTION_LIMIT)[0] if text.strip() else None,
                        reply_markup=markup)
                else:
                    await self.bot.edit_message_text(
                        split_text(text, TEXT_LIMIT)[0], chat_id=_chat(chat_id),
                        message_id=int(message_id), reply_markup=markup)
        except BadRequest as e:
            if is_not_modified(e):
                return False
            raise
        return True

    async def answer_press(self, query_id: str, text: str = "", *, alert: bool = False) -> None:
        """Acknowledge a button press (the spinner stops; the text shows as a toast)."""
        shown = text if len(text) <= ANSWER_LIMIT else text[: ANSWER_LIMIT - 1] + "…"
        with self._counted(0):
            await self.bot.answer_callback_query(query_id, text=shown or None,
                                                 show_alert=alert)

    # ---- files ------------------------------------------------------------------------------

    async def download(self, file_id: str, *, known_size: int | None = None,
                       max_bytes: int = DOWNLOAD_LIMIT) -> bytes:
        """A file's bytes by its file_id; over `max_bytes` (20 MB: what getFile serves) is
        refused before anything is downloaded."""
        from core.media.images import too_large

        def too_big(size: int | None) -> MediaRejected:
            return too_large("file", max_bytes, reason=f"too_large: {size} > {max_bytes} bytes")

        if known_size is not None and known_size > max_bytes:
            raise too_big(known_size)
        try:
            f = await self.bot.get_file(file_id)
        except BadRequest as e:
            if "file is too big" in e.message.lower():
                raise too_big(known_size) from None
            raise
        if f.file_size is not None and f.file_size > max_bytes:
            raise too_big(f.file_size)
        data = bytes(await f.download_as_bytearray())
        if len(data) > max_bytes:
            raise too_big(len(data))
        return data

    # ---- bot setup ------------------------------------------------------------------------

    async def set_commands(self, commands: Sequence[tuple[str, str]], *,
                           scope: str = "default", chat_id: str | int | None = None,
                           user_id: int | None = None, language: str | None = None) -> None:
        """The command menu for one scope (per chat for admins, per language)."""
        await self.bot.set_my_commands(
            [BotCommand(c, d) for c, d in commands],
            scope=command_scope(scope, chat_id=chat_id, user_id=user_id), language_code=language,
        )

    async def delete_commands(self, *, scope: str = "default", chat_id: str | int | None = None,
                              user_id: int | None = None, language: str | None = None) -> None:
        await self.bot.delete_my_commands(
            scope=command_scope(scope, chat_id=chat_id, user_id=user_id), language_code=language,
        )

    async def set_webhook(self, url: str, *, secret: str | None = None,
                          allowed_updates: Sequence[str] | None = None,
                          drop_pending: bool = False) -> None:
        """Have Telegram POST updates to `url`, `secret` in X-Telegram-Bot-Api-Secret-Token."""
        await self.bot.set_webhook(url, secret_token=secret, allowed_updates=allowed_updates,
                                   drop_pending_updates=drop_pending)

    async def delete_webhook(self, *, drop_pending: bool = False) -> None:
        await self.bot.delete_webhook(drop_pending_updates=drop_pending)

    async def get_updates(self, *, offset: int | None = None, timeout: int = 30,
                          limit: int = 100) -> list[dict[str, Any]]:
        """Long-poll for updates (`linzhang serve --polling`); each as the JSON a webhook gets."""
        updates = await self.bot.get_updates(offset=offset, timeout=timedelta(seconds=timeout),
                                             limit=limit)
        return [json.loads(u.to_json()) for u in updates]
