"""What SMS costs and how much of it a day allows: counted from the delivery records, so
every worker reads the same figures and nothing is kept beside them.

A message is one `delivery` row on the `sms` platform (bot/handlers/sms records each one the
provider accepted). The caps are per local day (the deployment's time zone): one per number,
one for the deployment; a row over either waits for the next day (the transport puts it off),
it is never dropped. The cost is a setting per message, in 分.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from core.deliveries import DEL, SMS


def day_bounds(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The local day `now` falls in: its start and the next day's start, in UTC (SQLite keeps
    no zone: every moment we compare or store is UTC)."""
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)


def sent_between(session: Session, *, start: datetime, end: datetime,
                 phone: str | None = None) -> int:
    """SMS the provider accepted in [start, end), to one number or to all."""
    q = sa.select(sa.func.count()).select_from(DEL).where(
        DEL.c.platform == SMS, DEL.c.sent_at >= start, DEL.c.sent_at < end)
    if phone is not None:
        q = q.where(DEL.c.chat_id == phone)
    return int(session.execute(q).scalar_one())


@dataclass(frozen=True)
class Capped:
    """Why a message waits: the number's cap or the deployment's, until when."""

    scope: str  # "number" | "deployment"
    until: datetime


def over_cap(session: Session, *, phone: str, now: datetime, tz: ZoneInfo, per_number: int,
             total: int) -> Capped | None:
    """Whether one more message to `phone` today would pass a cap (None: it may go)."""
    start, end = day_bounds(now, tz)
    if sent_between(session, start=start, end=end) >= total:
        return Capped("deployment", end)
    if sent_between(session, start=start, end=end, phone=phone) >= per_number:
        return Capped("number", end)
    return None


@dataclass(frozen=True)
class MonthFigures:
    sent: int
    spent_fen: int


def this_month(session: Session, *, now: datetime, tz: ZoneInfo, cost_fen: int) -> MonthFigures:
    """SMS sent since the first of this local month and what they cost."""
    local = now.astimezone(tz)
    start = datetime.combine(local.date().replace(day=1), time(0), tz).astimezone(UTC)
    n = sent_between(session, start=start, end=now + timedelta(seconds=1))
    return MonthFigures(sent=n, spent_fen=n * cost_fen)


__all__ = ["Capped", "MonthFigures", "day_bounds", "over_cap", "sent_between", "this_month"]
