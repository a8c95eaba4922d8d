"""The web chat's transport for the one dispatcher: outbox rows become lines of `web_message`
that the chat page streams (server-sent events). Everything lives in our own database, so a
row's lines and their delivery records are written in one transaction: a retry after a crash
finds them recorded and writes nothing twice.

A `card_update` becomes an `edit` line per web copy of the card, which replaces the card on
the page. `Hub` wakes the dispatcher and the open event streams of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.engine import Engine

from bot.dispatcher.transport import Done, Gone, Outcome, Work
from bot.handlers.buttons import with_arg
from core import deliveries, web_sessions
from core.clock import Clock

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


class WebTransport:
    """The web chat behind the dispatcher's Transport protocol: a row becomes lines of the
    chat page, recorded as deliveries in the same transaction (exactly once)."""

    platform = PLATFORM
    counts_rows = False

    def __init__(self, *, hub: Hub | None = None) -> None:
        self.hub = hub

    async def idle(self, seconds: float) -> None:
        """Until the hub says something changed (this process), or `seconds`."""
        if self.hub is None:
            await asyncio.sleep(seconds)
        else:
            await self.hub.wait(seconds)

    def delivered(self) -> None:
        if self.hub is not None:
            self.hub.notify()  # the open event streams look again

    async def deliver(self, work: Work) -> Outcome:
        return await asyncio.to_thread(self.deliver_now, work)

    def deliver_now(self, work: Work) -> Outcome:
        """Deliver one row (sync)."""
        row = work.row
        # The page sends `arg` back: every button carries its argument there (the stars too).
        actions = [with_arg(a) for a in row.actions]
        now = work.now
        if row.kind == deliveries.CARD_UPDATE and row.case_id is not None:
            with work.ledger.transaction() as s:
                for card in work.cards:
                    web_sessions.deliver(s, chat_id=card.chat_id, text=row.text,
                                         actions=actions, options={"card": True},
                                         case_id=row.case_id, kind=row.kind, outbox_id=row.id,
                                         now=now, edit_of=int(card.message_id))
                    work.stats.edits += 1
            return Done()
        if row.options.get("answer_press"):
            # The page has no toasts; the flow says what happened in the chat as well.
            return Done()
        if not work.dests:
            return Gone("no reachable web chat")
        page = {k: row.options[k] for k in PAGE_OPTIONS if row.options.get(k)}
        if row.is_card:
            page["card"] = True
        todo = [d for d in work.dests if (d.chat_id, 0) not in work.done]
        with work.ledger.transaction() as s:
            for i, dest in enumerate(todo):
                mid = web_sessions.deliver(s, chat_id=dest.chat_id, text=row.text,
                                           actions=actions, options=page or None,
                                           case_id=row.case_id, kind=row.kind,
                                           outbox_id=row.id, now=now)
                work.ledger.record(row, chat_id=dest.chat_id, message_id=str(mid), session=s,
                                   final=i == len(todo) - 1)
                work.stats.messages += 1
        return Done()


def deliver_pending(engine: Engine, *, clock: Clock, limit: int = 200,
                    configured: frozenset[str] | None = None) -> int:
    """Turn due web rows into chat lines now, through the dispatcher (the web chat answers a
    message before the page asks again); how many rows were handled. Sync: call it from a
    worker thread, never from the event loop."""
    from bot.dispatcher.loop import Dispatcher

    d = Dispatcher(engine=engine, transport=WebTransport(), clock=clock, configured=configured)
    return asyncio.run(d.pass_once(limit=limit))
