"""Tables that only ever grow unless someone trims them: rows no rule looks at any more are
deleted in short batches, so a deployment's age does not become its cost.

- `send_log` (per-recipient send budgets): no window looks back further than the longest
  limit (an hour).
- `web_phone_code`: a code is dead once expired; the per-number limits look back an hour, so
  a day is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.db import write_session
from core.web_sessions import PC
from core.wecom_limits import LOG, WECOM_LIMITS

SEND_LOG_KEEP = max(per for _, per in WECOM_LIMITS) + timedelta(minutes=5)
PHONE_CODE_KEEP = timedelta(days=1)
BATCH = 2000  # rows per transaction: the writer is given back between batches


@dataclass(frozen=True)
class Tidied:
    send_log: int
    phone_codes: int


def _delete_batches(engine: Engine, table: sa.Table, older: sa.ColumnElement[bool],
                    batch: int) -> int:
    gone = 0
    while True:
        with write_session(engine) as s:
            ids = sa.select(table.c.id).where(older).limit(batch).scalar_subquery()
            result = s.execute(sa.delete(table).where(table.c.id.in_(ids)))
            n = int(getattr(result, "rowcount", 0) or 0)
        gone += n
        if n < batch:
            return gone


def tidy(engine: Engine, *, now: datetime, batch: int = BATCH) -> Tidied:
    """Delete the rows no limit or window reads any more; how many went."""
    return Tidied(
        send_log=_delete_batches(engine, LOG, LOG.c.sent_at < now - SEND_LOG_KEEP, batch),
        phone_codes=_delete_batches(engine, PC, PC.c.expires_at < now - PHONE_CODE_KEEP,
                                    batch),
    )
