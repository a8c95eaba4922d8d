"""Several photos of one report as one album (sendMediaGroup) instead of one message each.

A resident's album arrives as one update per photo, each forwarded to the holder as a
`case_photo` row; rows that wait together in one recipient's queue, for the same case, with a
photo and no buttons, go out as one media group of 2-10 photos (the first row's text as the
album's caption). Anything unusual (a part already delivered, a platform refusal other than
429) falls back to delivering the rows one by one, so nothing is lost to the optimisation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session
from telegram.error import Forbidden, RetryAfter, TelegramError

from bot.handlers.telegram.api import Upload, retry_seconds
from bot.handlers.telegram.delivery import JobDelivery
from bot.handlers.telegram.jobs import PLATFORM, Job
from bot.handlers.telegram.parts import CAPTION_LIMIT, split_text
from core import deliveries
from core.outbox import mark_sent

log = logging.getLogger(__name__)
ALBUM_KIND = "case_photo"
ALBUM_MAX = 10


def album_of(queue: Sequence[Job]) -> list[Job]:
    """The rows at the head of one recipient's queue that make one album (empty: none)."""
    head = queue[0]
    if not _albumable(head):
        return []
    out = [head]
    for job in list(queue)[1:ALBUM_MAX]:
        if not _albumable(job) or job.case_id != head.case_id:
            break
        out.append(job)
    return out if len(out) > 1 else []


def _albumable(job: Job) -> bool:
    o = job.options
    return (job.kind == ALBUM_KIND and bool(o.get("photo")) and not job.actions
            and not o.get("document") and not o.get("voice") and not o.get("answer_press"))


class AlbumDelivery(JobDelivery):
    """`_deliver_album`: one media group for several rows (see the module docstring)."""

    async def _deliver_album(self, jobs: list[Job]) -> datetime | None:
        first = jobs[0]
        dests, done = await self._db(lambda s: self._resolve(s, first))
        already = await self._db(lambda s: any(
            deliveries.delivered_parts(s, outbox_id=j.id) for j in jobs))
        if not dests or done or already:
            return await self._one_by_one(jobs)
        try:
            photos: list[Upload | str] = [
                await asyncio.to_thread(self.media, str(j.options["photo"])) for j in jobs]
        except Exception:  # a missing file: the rows say why one by one
            return await self._one_by_one(jobs)
        caption = split_text(first.text, CAPTION_LIMIT)[0] if first.text.strip() else ""
        for dest in dests:
            try:
                async with self.limiter.slot(dest.chat_id, count=len(jobs)):
                    ids = await self.api.send_album(dest.chat_id, photos, caption=caption)
            except RetryAfter as e:
                return await self._defer_all(jobs, dest.chat_id, retry_seconds(e))
            except Forbidden:
                if dest.identity:
                    await self._unreachable(dest.chat_id)
                return await self._one_by_one(jobs)
            except TelegramError as e:
                log.info("album of %s rows not sent (%s); one by one", len(jobs), e)
                return await self._one_by_one(jobs)
            self.stats.messages += len(ids)
            await self._record_album(jobs, dest.chat_id, ids)
        now = self.clock.now()

        def sent(s: Session) -> None:
            for j in jobs:
                mark_sent(s, message_id=j.id, now=now)

        await self._db(sent)
        self.stats.rows_sent += len(jobs)
        return None

    async def _record_album(self, jobs: list[Job], chat_id: str, ids: list[int]) -> None:
        now = self.clock.now()

        def record(s: Session) -> None:
            for job, mid in zip(jobs, ids, strict=False):
                deliveries.record_delivery(
                    s, outbox_id=job.id, platform=PLATFORM, chat_id=chat_id,
                    message_id=str(mid), part=0, part_type="photo", case_id=job.case_id,
                    kind=job.kind, now=now)

        await self._db(record)

    async def _one_by_one(self, jobs: list[Job]) -> datetime | None:
        until = None
        for job in jobs:
            until = await self._deliver(job)
            if until is not None:
                rest = [j.id for j in jobs[jobs.index(job) + 1:]]
                if rest:
                    await self._db(lambda s, r=rest, u=until: deliveries.defer(  # type: ignore[misc]
                        s, message_ids=r, until=u))
                break
        return until

    async def _defer_all(self, jobs: list[Job], chat_id: str, seconds: float) -> datetime:
        until = await self._defer(jobs[0], chat_id, seconds)
        rest = [j.id for j in jobs[1:]]
        await self._db(lambda s: deliveries.defer(s, message_ids=rest, until=until,
                                                  note=f"429: retry after {seconds:g}s"))
        return until
