"""Per-recipient send budgets for platforms that drop the excess silently (WeCom).

WeCom accepts at most 30 messages a minute and 1,000 an hour per member per app and discards
the rest without an error, so the sender asks `next_slot` before every call and records every
send in `send_log`, in the database, so that all worker processes share one budget.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from core.clock import as_utc

# (how many, per how long): WeCom's per-member limits for one app.
WECOM_LIMITS: tuple[tuple[int, timedelta], ...] = (
    (30, timedelta(minutes=1)), (1000, timedelta(hours=1)),
)


class SendLog(SQLModel, table=True):
    """One message sent to one recipient on a rate-limited platform."""

    __tablename__ = "send_log"
    __table_args__ = (sa.Index("ix_send_log_recipient_at", "platform", "recipient", "sent_at"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    recipient: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    sent_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


LOG: sa.Table = SendLog.__table__  # type: ignore[attr-defined]


def next_slot(session: Session, *, platform: str, recipient: str, now: datetime,
              limits: tuple[tuple[int, timedelta], ...] = WECOM_LIMITS) -> datetime | None:
    """None when a message may go now; else the earliest moment one may."""
    later: datetime | None = None
    for most, per in limits:
        times = session.execute(
            sa.select(LOG.c.sent_at).where(
                LOG.c.platform == platform, LOG.c.recipient == recipient,
                LOG.c.sent_at > now - per)
            .order_by(LOG.c.sent_at.desc()).limit(most)
        ).scalars().all()
        if len(times) >= most:
            # The oldest of the last `most` sends must leave the window first.
            free = as_utc(times[-1]) + per
            later = free if later is None or free > later else later
    return later


def record_send(session: Session, *, platform: str, recipient: str, now: datetime) -> None:
    """Count one message against the recipient's budget (in the caller's transaction)."""
    session.execute(sa.insert(LOG).values(platform=platform, recipient=recipient, sent_at=now))


def prune(session: Session, *, before: datetime) -> None:
    """Drop counts no window looks at any more."""
    session.execute(sa.delete(LOG).where(LOG.c.sent_at < before))


def touch_identity(session: Session, *, platform: str, external_id: str, now: datetime) -> None:
    """Note when a person last wrote to us (WeChat's 48-hour customer-service window)."""
    from core.hierarchy.model import ChatIdentity

    ci: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
    session.execute(sa.update(ci).where(ci.c.platform == platform,
                                        ci.c.external_id == external_id)
                    .values(last_seen_at=now))


def last_seen(session: Session, *, platform: str, external_id: str) -> datetime | None:
    """When the person last wrote to us on that platform."""
    from core.hierarchy.model import ChatIdentity

    ci: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
    at = session.execute(sa.select(ci.c.last_seen_at).where(
        ci.c.platform == platform, ci.c.external_id == external_id)).scalar_one_or_none()
    return None if at is None else as_utc(at)


def last_event(session: Session, *, platform: str, external_id: str) -> datetime | None:
    """When the person last tapped the menu, followed or scanned a code (an event, not a
    message: WeChat grants a shorter customer-service quota for it). Events are the updates
    whose retry key is `sender:time:event` (bot/handlers/wechat/parse.py), messages carry
    their MsgId."""
    from core.inbound import InboundUpdate

    iu: sa.Table = InboundUpdate.__table__  # type: ignore[attr-defined]
    at = session.execute(
        sa.select(iu.c.received_at).where(iu.c.platform == platform,
                                          iu.c.sender_id == external_id,
                                          iu.c.update_id.like("%:%:%"))
        .order_by(iu.c.id.desc()).limit(1)).scalar_one_or_none()
    return None if at is None else as_utc(at)
