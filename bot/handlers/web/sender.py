"""The outbox sender for the web chat: outbox rows become lines of `web_message` that the chat
page streams (server-sent events). Everything lives in our own database, so a row is turned into
its lines, recorded as deliveries and marked sent in one transaction: exactly once.

Which rows: `core.deliveries.claim_for_platform(platform="web")` — a person with a web identity,
a raw web chat (`platform="web"` + `address`), or a `card_update` of a case with web cards (an
`edit` line that replaces the card on the page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatcher.reach import still_reachable
from bot.dispatcher.recipients import destinations
from bot.dispatcher.rows import Row
from bot.handlers.buttons import with_arg
from core import deliveries, web_sessions
from core.clock import Clock
from core.db import write_session
from core.outbox import OutboxMessage, mark_failed, mark_sent

log = logging.getLogger(__name__)

PLATFORM = "web"
PAGE_OPTIONS = ("photo", "document", "request_contact", "reply_to_message_id", "filename")


class Hub:
    """Wakes the sender and the open event streams of this process when something changed."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Call on the event loop: everything waiting looks again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, timeout: float) -> None:
        """Until the next notify, or `timeout` seconds (other processes do not notify us)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


def _deliver(session: Session, row: OutboxMessage, now: datetime,
             configured: frozenset[str] | None = None) -> None:
    assert row.id is not None
    opts: dict[str, Any] = dict(row.options or {})
    # The page sends `arg` back: every button carries its argument there (the stars too).
    actions = [with_arg(a) for a in row.actions or []]
    if row.kind == deliveries.CARD_UPDATE and row.case_id is not None:
        for card in deliveries.card_messages(session, row.case_id, platform=PLATFORM,
                                             person_id=row.person_id,
                                             chat_binding_id=row.chat_binding_id):
            web_sessions.deliver(session, chat_id=card.chat_id, text=row.text, actions=actions,
                                 options={"card": True}, case_id=row.case_id, kind=row.kind,
                                 outbox_id=row.id, now=now, edit_of=int(card.message_id))
        mark_sent(session, message_id=row.id, now=now)
        return
    if opts.get("answer_press"):
        # The page has no toasts; the flow says what happened in the chat as well.
        mark_sent(session, message_id=row.id, now=now)
        return
    plain = Row.of(row)
    dests = [d.chat_id for d in destinations(session, platform=PLATFORM, row=plain)]
    if not dests:
        if row.person_id is None:
            mark_failed(session, message_id=row.id, now=now, error="no reachable web chat",
                        permanent=True)
        elif still_reachable(session, person_id=row.person_id, configured=configured):
            deliveries.release(session, message_ids=[row.id])  # another platform's turn
        else:
            deliveries.give_up_unreachable(session, message_ids=[row.id], now=now,
                                           why="no reachable web chat")
        return
    is_card = plain.is_card
    page = {k: opts[k] for k in PAGE_OPTIONS if opts.get(k)}
    if is_card:
        page["card"] = True
    done = deliveries.delivered_parts(session, outbox_id=row.id)
    for chat_id in dests:
        if (chat_id, 0) in done:
            continue
        mid = web_sessions.deliver(session, chat_id=chat_id, text=row.text, actions=actions,
                                   options=page or None, case_id=row.case_id, kind=row.kind,
                                   outbox_id=row.id, now=now)
        deliveries.record_delivery(session, outbox_id=row.id, platform=PLATFORM, chat_id=chat_id,
                                   message_id=str(mid), kind=row.kind, now=now,
                                   case_id=row.case_id, is_card=is_card)
    mark_sent(session, message_id=row.id, now=now)


def deliver_pending(engine: Engine, *, clock: Clock, limit: int = 200,
                    configured: frozenset[str] | None = None) -> int:
    """Turn due web rows into chat lines; how many rows were handled."""
    with write_session(engine) as session:
        now = clock.now()
        rows = deliveries.claim_for_platform(session, platform=PLATFORM, now=now, limit=limit,
                                             lease=timedelta(seconds=60))
        # In the order they were written: a case's receipt before the question that follows it
        # (the flow's rows can carry an earlier time than the ones its services wrote).
        rows = sorted(rows, key=lambda r: r.id or 0)
        for row in rows:
            try:
                with session.begin_nested():
                    _deliver(session, row, now, configured)
            except Exception as exc:  # a bug in one row must not hold back the others
                log.exception("web outbox row %s failed", row.id)
                assert row.id is not None
                mark_failed(session, message_id=row.id, now=now, error=f"web sender: {exc!r}")
        return len(rows)


async def run(engine: Engine, *, clock: Clock, hub: Hub, stop: asyncio.Event,
              idle: float = 0.5, configured: frozenset[str] | None = None) -> None:
    """Deliver until `stop` is set (a lifespan task); wakes early when the hub is notified."""
    while not stop.is_set():
        try:
            n = await asyncio.to_thread(deliver_pending, engine, clock=clock,
                                        configured=configured)
        except Exception:
            log.exception("web sender pass failed; retrying")
            n = 0
        if n:
            hub.notify()
            continue
        waiter = asyncio.ensure_future(hub.wait(idle))
        stopper = asyncio.ensure_future(stop.wait())
        _, pending = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            f.cancel()
