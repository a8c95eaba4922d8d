"""Several photos of one report as one album (sendMediaGroup) instead of one message each.

A resident's album arrives as one update per photo, each forwarded to the holder as a
`case_photo` row; rows that wait together in one recipient's queue, for the same case, with a
photo and no buttons, go out as one media group of 2-10 photos (the first row's text as the
album's caption). The dispatcher offers them together (`TelegramTransport.group`); anything
unusual (a part already delivered, a platform refusal other than 429) answers `OneByOne`, and
the dispatcher delivers the rows one at a time, so nothing is lost to the optimisation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from telegram.error import Forbidden, RetryAfter, TelegramError

from bot.dispatcher.rows import Row
from bot.dispatcher.transport import Done, OneByOne, Outcome, Work
from bot.handlers.telegram.api import Upload, retry_seconds
from bot.handlers.telegram.parts import CAPTION_LIMIT, split_text

if TYPE_CHECKING:
    from bot.handlers.telegram.transport import TelegramTransport

log = logging.getLogger(__name__)
ALBUM_KIND = "case_photo"
ALBUM_MAX = 10


def album_of(queue: Sequence[Row]) -> list[Row]:
    """The rows at the head of one recipient's queue that make one album (empty: none)."""
    head = queue[0]
    if not _albumable(head):
        return []
    out = [head]
    for row in list(queue)[1:ALBUM_MAX]:
        if not _albumable(row) or row.case_id != head.case_id:
            break
        out.append(row)
    return out if len(out) > 1 else []


def _albumable(row: Row) -> bool:
    o = row.options
    return (row.kind == ALBUM_KIND and bool(o.get("photo")) and not row.actions
            and not o.get("document") and not o.get("voice") and not o.get("answer_press"))


async def deliver_album(tt: TelegramTransport, work: Work) -> Outcome:
    """One media group for the work's rows to each of the recipient's chats."""
    rows, first = work.rows, work.row
    if not work.dests or work.done:
        return OneByOne()
    try:
        photos: list[Upload | str] = [
            await asyncio.to_thread(tt.media, str(r.options["photo"])) for r in rows]
    except Exception:  # a missing file: the rows say why one by one
        return OneByOne()
    caption = split_text(first.text, CAPTION_LIMIT)[0] if first.text.strip() else ""
    for dest in work.dests:
        try:
            async with tt.limiter.slot(dest.chat_id, count=len(rows)):
                ids = await tt.api.send_album(dest.chat_id, photos, caption=caption)
        except RetryAfter as e:
            return tt.too_many(work, dest.chat_id, retry_seconds(e))
        except Forbidden:
            return OneByOne()  # each row then says which chat is gone
        except TelegramError as e:
            log.info("album of %s rows not sent (%s); one by one", len(rows), e)
            return OneByOne()
        work.stats.messages += len(ids)

        def record(chat: str = dest.chat_id, got: list[int] = ids) -> None:
            for row, mid in zip(rows, got, strict=False):
                work.ledger.record(row, chat_id=chat, message_id=str(mid), part_type="photo",
                                   is_card=False)

        await asyncio.to_thread(record)
    return Done()
