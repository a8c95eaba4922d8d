"""The platform-neutral outbox: messages written in the same transaction as the change they
report, drained later by a sender that knows the chat platforms.

Contract for senders (issue 4):
- `claim(session, now=..., limit=..., lease=...)` returns pending messages whose
  `next_attempt_at` has come and that nobody else holds; on PostgreSQL rows are taken with
  `FOR UPDATE SKIP LOCKED` and leased until `claimed_until`, so two senders never get the same row.
- After delivering, `mark_sent`; after a failure, `mark_failed` (retried with backoff, or
  `dead` after `max_attempts` or when `permanent=True`). A lease that runs out (a sender
  crashed) makes the row claimable again: delivery is at least once.
- A message goes to exactly one of: a person (`person_id`: deliver to their reachable chat
  identities), a bound chat group (`chat_binding_id`), or a raw chat (`platform` + `address`:
  a stranger who has not joined yet, or the chat a message came from). `options` carries
  platform hints (reply_to_message_id, request_contact, photo, document, answer_press, card).
  `actions` are buttons:
  `[{"action": "accept", "label": "受理", "case_id": 12, "version": 3}, ...]`; a press comes back
  to the case services with that case_id and version.
- `dedupe_key` makes a second write a no-op. Case notifications (bot/notify) are keyed by
  event and recipient: `e{event}:p{person}`, `e{event}:b{binding}`, card edits
  `e{event}:card:p{person}`, digests `digest:p{person}:<hash of their event ids>`; a flow's
  replies by the update they answer (`in:{platform}:{update}:{n}`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from core.clock import as_utc
from core.errors import InvalidInput, NotFound


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # failed at least once, will be retried
    dead = "dead"  # given up; needs a person to look


RETRYABLE = (OutboxStatus.pending.value, OutboxStatus.failed.value)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_status_next", "status", "next_attempt_at"),
        sa.CheckConstraint(
            "(CASE WHEN person_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN chat_binding_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN address IS NULL THEN 0 ELSE 1 END) = 1",
            name="ck_outbox_one_recipient",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: int | None = Field(default=None, foreign_key="person.id")
    chat_binding_id: int | None = Field(default=None, foreign_key="chat_binding.id")
    # A raw chat on one platform: a stranger who has not joined, or the chat a message came from.
    platform: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    address: str | None = Field(default=None, sa_column=sa.Column(sa.String(128)))
    # Platform hints: reply_to_message_id, request_contact, photo/document refs, answer_press,
    # card (a case card whose later edits should follow the case).
    options: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    actions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    kind: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    status: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    claimed_until: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    dedupe_key: str = Field(sa_column=sa.Column(sa.String(200), nullable=False, unique=True))


OUT = OutboxMessage.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Action:
    """A button on a message; `extra` carries action arguments such as a rating."""

    action: str
    label: str
    case_id: int
    version: int
    extra: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action, "label": self.label, "case_id": self.case_id,
            "version": self.version, **dict(self.extra),
        }


@dataclass(frozen=True)
class Draft:
    """A message to write; `dedupe_key` makes a second write of the same message a no-op."""

    text: str
    kind: str
    dedupe_key: str
    person_id: int | None = None
    chat_binding_id: int | None = None
    case_id: int | None = None
    actions: tuple[Action, ...] = ()
    not_before: datetime | None = None
    platform: str | None = None
    address: str | None = None
    options: dict[str, Any] | None = None


def enqueue_many(session: Session, *, drafts: Sequence[Draft], now: datetime) -> int:
    """Write messages in the caller's transaction, skipping any whose dedupe key exists."""
    if not drafts:
        return 0
    rows: list[dict[str, Any]] = []
    for d in drafts:
        recipients = (d.person_id is not None) + (d.chat_binding_id is not None) + (
            d.address is not None)
        if recipients != 1 or (d.address is not None and not d.platform):
            raise InvalidInput("outbox_recipient", key=d.dedupe_key)
        rows.append({
            "person_id": d.person_id, "chat_binding_id": d.chat_binding_id,
            "platform": d.platform, "address": d.address, "options": d.options,
            "text": d.text,
            "case_id": d.case_id, "actions": [a.to_json() for a in d.actions], "kind": d.kind,
            "status": OutboxStatus.pending.value, "attempts": 0,
            "next_attempt_at": max(d.not_before, now) if d.not_before else now,
            "created_at": now, "dedupe_key": d.dedupe_key,
        })
    dialect = session.get_bind().dialect.name
    if len(rows) == 1:
        return len(session.execute(_insert_stmt(dialect, True), rows).all())
    # Many rows: leave out keys already written, then a plain executemany (pipelined on
    # PostgreSQL), several times faster than RETURNING every id; ON CONFLICT still covers a
    # concurrent writer of the same key.
    keys = [r["dedupe_key"] for r in rows]
    known = set(session.execute(_known_stmt(), {"keys": keys}).scalars())
    fresh: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["dedupe_key"] not in known:
            fresh.setdefault(str(r["dedupe_key"]), r)
    if fresh:
        session.execute(_insert_stmt(dialect, False), list(fresh.values()))
    return len(fresh)


@functools.cache
def _insert_stmt(dialect: str, returning: bool) -> Any:
    # Built once (core/db.py, "Statements built once"): every update writes messages.
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(OUT).on_conflict_do_nothing(index_elements=["dedupe_key"])
    return stmt.returning(OUT.c.id) if returning else stmt


@functools.cache
def _known_stmt() -> Any:
    return sa.select(OUT.c.dedupe_key).where(
        OUT.c.dedupe_key.in_(sa.bindparam("keys", expanding=True)))


def enqueue(session: Session, *, draft: Draft, now: datetime) -> bool:
    """Write one message; False when a message with its dedupe key was already written."""
    return enqueue_many(session, drafts=[draft], now=now) == 1


def claim(session: Session, *, now: datetime, limit: int = 100,
          lease: timedelta = timedelta(seconds=60)) -> list[OutboxMessage]:
    """Take up to `limit` deliverable messages for this sender until the lease runs out."""
    q = (
        sa.select(OutboxMessage)
        .where(OUT.c.status.in_(RETRYABLE), OUT.c.next_attempt_at <= now)
        .where(sa.or_(OUT.c.claimed_until.is_(None), OUT.c.claimed_until <= now))
        .order_by(OUT.c.next_attempt_at, OUT.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.scalars(q))
    for row in rows:
        row.claimed_until = now + lease
    session.flush()
    return rows


def _get(session: Session, message_id: int) -> OutboxMessage:
    row = session.get(OutboxMessage, message_id, with_for_update=True)
    if row is None:
        raise NotFound("outbox_unknown", message=message_id)
    return row


def mark_sent(session: Session, *, message_id: int, now: datetime) -> None:
    """Record a delivery (one UPDATE: no read of the row first)."""
    done = session.execute(_sent_stmt(), {"row_id": message_id, "now": now})
    if not getattr(done, "rowcount", 1):
        raise NotFound("outbox_unknown", message=message_id)


@functools.cache
def _sent_stmt() -> Any:
    # Built once (core/db.py, "Statements built once"): every message sent runs it.
    return (sa.update(OUT).where(OUT.c.id == sa.bindparam("row_id"))
            .values(status=OutboxStatus.sent.value, attempts=OUT.c.attempts + 1,
                    sent_at=sa.bindparam("now"), claimed_until=None, last_error=None))


def mark_failed(session: Session, *, message_id: int, now: datetime, error: str,
                retry_after: timedelta | None = None, permanent: bool = False,
                max_attempts: int | None = 8, max_age: timedelta | None = None
                ) -> OutboxStatus:
    """Record a failed delivery; retry with exponential backoff or give up (after
    `max_attempts`, or once the row is `max_age` old: a webhook retries for a day)."""
    row = _get(session, message_id)
    row.attempts += 1
    row.last_error = error[:2000]
    row.claimed_until = None
    too_old = max_age is not None and now - as_utc(row.created_at) >= max_age
    if permanent or too_old or (max_attempts is not None and row.attempts >= max_attempts):
        row.status = OutboxStatus.dead.value
    else:
        row.status = OutboxStatus.failed.value
        backoff = retry_after or timedelta(seconds=min(3600, 5 * 2 ** (row.attempts - 1)))
        row.next_attempt_at = now + backoff
    return OutboxStatus(row.status)


def pending_count(session: Session, *, now: datetime | None = None) -> int:
    """How many messages wait for delivery (due by `now` when given)."""
    q = sa.select(sa.func.count()).select_from(OUT).where(OUT.c.status.in_(RETRYABLE))
    if now is not None:
        q = q.where(OUT.c.next_attempt_at <= now)
    return int(session.execute(q).scalar_one())


def oldest_pending_age(session: Session, *, now: datetime) -> timedelta | None:
    """How long the oldest due message has waited (for /metrics and alerts)."""
    q = sa.select(sa.func.min(OUT.c.next_attempt_at)).where(
        OUT.c.status.in_(RETRYABLE), OUT.c.next_attempt_at <= now
    )
    oldest = session.execute(q).scalar_one_or_none()
    return None if oldest is None else now - as_utc(oldest)
