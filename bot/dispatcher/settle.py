"""What a delivery's outcome means for its outbox rows, written in one short transaction.

- Done → sent; the chats it names as lost are flagged unreachable first;
- Retry → `mark_failed`: backoff, dead after max attempts or at once when permanent;
- Later → `defer`: put off without counting an attempt (a 429 or a spent budget; a storm
  loses nothing);
- Gone → the person's chats that said so are flagged (reach.py: core hears when no
  configured platform reaches the person); the row goes to another platform if one still
  can, else it is given up as unreachable (it goes out again when they write); a row for a
  chat (not a person) is dead;
- Moved → the chat's binding follows its new id and the row goes again at once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlmodel import Session

from bot.dispatcher.reach import chat_gone, still_reachable
from bot.dispatcher.rows import Row
from bot.dispatcher.transport import Done, Gone, Later, Moved, Outcome, Retry, Stats, Transport
from core import deliveries
from core.clock import Clock, as_utc
from core.outbox import OutboxMessage, OutboxStatus, mark_failed, mark_sent
from core.settings import Settings

log = logging.getLogger(__name__)


class Settler:
    """One platform's settling of delivered rows, counted in the dispatcher's stats."""

    def __init__(self, *, platform: str, transport: Transport, clock: Clock,
                 settings: Settings, configured: Collection[str] | None, stats: Stats) -> None:
        self.platform, self.transport, self.clock = platform, transport, clock
        self.settings, self.configured, self.stats = settings, configured, stats

    def settle(self, s: Session, rows: Sequence[Row], outcome: Outcome
               ) -> datetime | None:
        """Write what the outcome means for the rows; until when their key's queue waits
        (None: it may go on)."""
        now = self.clock.now()
        ids = [r.id for r in rows]
        if isinstance(outcome, Done | Gone):
            for chat in outcome.lost:
                chat_gone(s, platform=self.platform, chat_id=chat, clock=self.clock,
                          settings=self.settings, configured=self.configured)
                self.stats.unreachable += 1
        if isinstance(outcome, Done):
            for rid in ids:
                mark_sent(s, message_id=rid, now=now)
            self.stats.rows_sent += len(ids)
            return None
        if isinstance(outcome, Later):
            deliveries.defer(s, message_ids=ids, until=outcome.until, note=outcome.note)
            self.stats.rows_deferred += len(ids)
            return outcome.until
        if isinstance(outcome, Moved):
            log.info("%s chat %s moved to %s; its binding follows", self.platform,
                     outcome.old, outcome.new)
            deliveries.chat_moved(s, platform=self.platform, old=outcome.old, new=outcome.new)
            deliveries.defer(s, message_ids=ids, until=now, note=f"chat moved to {outcome.new}")
            self.stats.rows_deferred += len(ids)
            return now
        if isinstance(outcome, Gone):
            for row in rows:
                self._gone(s, row, outcome.why, now)
            return None
        assert isinstance(outcome, Retry)
        until: datetime | None = None
        most: int | None = getattr(self.transport, "max_attempts", 8)
        if outcome.max_attempts is not None:
            most = min(most, outcome.max_attempts) if most is not None else outcome.max_attempts
        for row in rows:
            rid = row.id
            status = mark_failed(s, message_id=rid, now=now, error=outcome.error,
                                 permanent=outcome.permanent, max_attempts=most,
                                 max_age=getattr(self.transport, "max_age", None))
            if status is OutboxStatus.dead:
                self.stats.rows_dead += 1
                log.warning("%s outbox row %s dead: %s", self.platform, rid, outcome.error)
                self._dead(s, row, outcome.error)
            else:
                self.stats.rows_retried += 1
                got = s.get(OutboxMessage, rid)
                if got is not None:
                    until = as_utc(got.next_attempt_at)
        return until

    def _gone(self, s: Session, row: Row, why: str, now: datetime) -> None:
        if row.person_id is None:
            mark_failed(s, message_id=row.id, now=now, error=f"undeliverable: {why}",
                        permanent=True)
            self.stats.rows_dead += 1
            self._dead(s, row, f"undeliverable: {why}")
        elif still_reachable(s, person_id=row.person_id, configured=self.configured):
            deliveries.release(s, message_ids=[row.id])  # another platform's turn
            self.stats.rows_released += 1
        else:
            # Nobody can reach them now: their next message brings the row back.
            deliveries.give_up_unreachable(s, message_ids=[row.id], now=now, why=why)
            self.stats.rows_dead += 1

    def _dead(self, s: Session, row: Row, error: str) -> None:
        """Tell the transport a row was given up, in the settling transaction."""
        dead = getattr(self.transport, "dead", None)
        if dead is not None:
            dead(s, row, error=error, now=self.clock.now())

