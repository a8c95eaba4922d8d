"""Channel heartbeats: when each chat platform last gave us an update and last took a message,
and the alert to the root admins when one has been silent too long while messages wait.

Each process notes the moments in its `Counters` (no statement per update); a job on every
process writes them into `ops_state` (`beat_in:<platform>`, `beat_out:<platform>`, only when
they moved) every `HEARTBEAT_INTERVAL`, so every worker reads the same shared times. The same
job then looks at each configured platform: rows due for it longer than `CHANNEL_SILENCE`
ago and no successful send in that time is a silent channel. Like the stalled-sweep alert
(core/ops.py), an episode is one row in `ops_state` (`channel_silent:<platform>`), so the
admins hear once when it begins and once when the channel sends again, whatever the number of
workers or restarts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.clock import Clock, as_utc
from core.counters import Counters
from core.db import write_session
from core.deliveries import platform_filter
from core.ops import OPS, _tell_admins
from core.outbox import OUT, RETRYABLE

log = logging.getLogger(__name__)


class ChannelTexts(Protocol):
    """The words of the two alerts, in a reader's language (bot/notify supplies them)."""

    def silent(self, *, lang: str, platform: str, minutes: int, waiting: int) -> str: ...

    def back(self, *, lang: str, platform: str, minutes: int) -> str: ...


class _Plain:
    def silent(self, *, lang: str, platform: str, minutes: int, waiting: int) -> str:
        return (f"{platform} has taken no message for {minutes} min while {waiting} wait; "
                "check its credentials and the network.")

    def back(self, *, lang: str, platform: str, minutes: int) -> str:
        return f"{platform} is sending again (silent for about {minutes} min)."


_texts: ChannelTexts = _Plain()


def use_texts(texts: ChannelTexts) -> None:
    """Say the channel alerts with these words; the composition root installs bot/notify's."""
    global _texts
    _texts = texts


@dataclass(frozen=True)
class Channel:
    platform: str
    last_receive: datetime | None
    last_send: datetime | None
    waiting: int  # rows due for it longer than the silence ago
    silent_since: datetime | None  # the open episode, if any

    def as_json(self) -> dict[str, object]:
        def iso(x: datetime | None) -> str | None:
            return x.isoformat() if x is not None else None

        return {"last_receive": iso(self.last_receive), "last_send": iso(self.last_send),
                "waiting": self.waiting, "silent_since": iso(self.silent_since)}


def _upsert_later(session: Session, key: str, at: datetime, now: datetime) -> None:
    """Move a shared time forward to `at` (never back: another worker may have seen later)."""
    pg = session.get_bind().dialect.name == "postgresql"
    ins = (postgresql.insert(OPS) if pg else sqlite.insert(OPS)).values(
        key=key, since=at, updated_at=now)
    session.execute(ins.on_conflict_do_update(
        index_elements=["key"], set_={"since": ins.excluded.since, "updated_at": now},
        where=sa.or_(OPS.c.since.is_(None), OPS.c.since < ins.excluded.since)))


def flush(engine: Engine, *, counters: Counters, now: datetime) -> int:
    """Write this process's newer heartbeat times into the shared table; how many moved."""
    moved = counters.beats_to_flush()
    if not moved:
        return 0
    with write_session(engine) as session:
        for (direction, platform), at in sorted(moved.items()):
            _upsert_later(session, f"beat_{direction}:{platform}", at, now)
    counters.flushed(moved)  # only once written: a failed write is tried again next time
    return len(moved)


def _shared(session: Session, keys: list[str]) -> dict[str, datetime | None]:
    rows = session.execute(sa.select(OPS.c.key, OPS.c.since).where(OPS.c.key.in_(keys)))
    return {k: (as_utc(v) if v is not None else None) for k, v in rows}


def _waiting(session: Session, *, platform: str, before: datetime) -> int:
    """Rows this platform should have sent by `before` and has not."""
    q = sa.select(sa.func.count()).select_from(OUT).where(
        OUT.c.status.in_(RETRYABLE), OUT.c.next_attempt_at <= before, platform_filter(platform))
    return int(session.execute(q).scalar_one())


def channels(session: Session, *, platforms: list[str], now: datetime,
             silence: timedelta) -> list[Channel]:
    """Where each platform stands (for /healthz, /metrics and the watch)."""
    keys = [f"{k}:{p}" for p in platforms for k in ("beat_in", "beat_out", "channel_silent")]
    got = _shared(session, keys)
    return [Channel(p, got.get(f"beat_in:{p}"), got.get(f"beat_out:{p}"),
                    _waiting(session, platform=p, before=now - silence),
                    got.get(f"channel_silent:{p}")) for p in platforms]


def _minutes(d: timedelta) -> int:
    return max(1, math.ceil(d.total_seconds() / 60))


def watch(engine: Engine, *, clock: Clock, counters: Counters, platforms: list[str],
          silence: timedelta) -> dict[str, str]:
    """Flush this process's beats, then open or close each platform's silence episode and
    tell the root admins; what happened per platform (ok, alerted, silent, recovered)."""
    now = clock.now()
    flush(engine, counters=counters, now=now)
    return {p: _watch_one(engine, platform=p, now=now, silence=silence) for p in platforms}


def _watch_one(engine: Engine, *, platform: str, now: datetime, silence: timedelta) -> str:
    key = f"channel_silent:{platform}"
    with write_session(engine) as session:
        pg = session.get_bind().dialect.name == "postgresql"
        ins = postgresql.insert(OPS) if pg else sqlite.insert(OPS)
        session.execute(ins.values(key=key, updated_at=now)
                        .on_conflict_do_nothing(index_elements=["key"]))
        row = session.execute(sa.select(OPS.c.since).where(OPS.c.key == key)
                              .with_for_update()).scalar_one()
        since = as_utc(row) if row is not None else None
        (ch,) = channels(session, platforms=[platform], now=now, silence=silence)
        sent_lately = ch.last_send is not None and now - ch.last_send <= silence
        if ch.waiting and not sent_lately and since is None:
            start = ch.last_send if ch.last_send is not None else now - silence
            session.execute(sa.update(OPS).where(OPS.c.key == key)
                            .values(since=start, updated_at=now))
            minutes, waiting = _minutes(now - start), ch.waiting
            _tell_admins(session, key=f"ops:channel:{platform}:{start.isoformat()}", now=now,
                         say=lambda lang: _texts.silent(lang=lang, platform=platform,
                                                        minutes=minutes, waiting=waiting))
            log.error("%s: no message sent for %d min while %d wait; root admins alerted",
                      platform, minutes, waiting)
            return "alerted"
        if since is not None and (sent_lately or not ch.waiting):
            session.execute(sa.update(OPS).where(OPS.c.key == key)
                            .values(since=None, updated_at=now))
            gone = _minutes(now - since)
            _tell_admins(session, key=f"ops:channel_back:{platform}:{since.isoformat()}",
                         now=now, say=lambda lang: _texts.back(lang=lang, platform=platform,
                                                               minutes=gone))
            log.warning("%s: sending again after about %d min", platform, gone)
            return "recovered"
        return "silent" if since is not None else "ok"
