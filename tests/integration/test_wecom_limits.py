"""The WeCom sender never exceeds 30 messages a minute or 1,000 an hour per member per app
(WeCom drops the excess without an error), and asks WeCom to check for duplicates.

A burst is written to the outbox and the sender runs pass after pass on the fake clock; the
fake WeCom server counts what it accepted per member and keeps what it would have dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from bot.dispatcher.loop import Stats
from bot.dispatcher.once import pass_once
from bot.handlers.wecom.transport import WeComTransport
from core.clock import FakeClock
from core.db import session_scope
from core.outbox import Draft, enqueue_many
from core.settings import Settings
from core.wecom_limits import LOG
from tests.fakes.wechat_api import FakeWeChatApi

MEMBER = "lin1"
STEP = timedelta(seconds=5)


@pytest.fixture
def wecom(clock: FakeClock) -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi("wecom", clock) as api:
        yield api


def sender(engine: Engine, clock: FakeClock, api: FakeWeChatApi, tmp: Path) -> WeComTransport:
    settings = Settings(_env_file=None, database_url=str(engine.url),
                        media_dir=str(tmp / "media"), wecom_corp_id="ww1", wecom_agent_id="1",
                        wecom_secret=SecretStr("s"), wecom_api_base=api.base_url)
    return WeComTransport(engine=engine, settings=settings, clock=clock)


def burst(engine: Engine, clock: FakeClock, n: int) -> None:
    with session_scope(engine) as s:
        enqueue_many(s, drafts=[Draft(text=f"通知 {k}", kind="notice", dedupe_key=f"b{k}",
                                      platform="wecom", address=MEMBER) for k in range(n)],
                     now=clock.now())


def pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status <> 'sent'"))
                   .scalar_one())


def drain(engine: Engine, clock: FakeClock, s: WeComTransport, *, passes: int) -> None:
    stats = Stats()
    for _ in range(passes):
        asyncio.run(pass_once(engine, sender=s, clock=clock, stats=stats))
        if not pending(engine):
            break
        clock.advance(STEP)
    assert stats.errors == [] and stats.failed == 0


def most_in_any(times: list[datetime], window: timedelta) -> int:
    """The largest number of `times` inside any window of that length."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_a_burst_of_100_is_spread_at_30_a_minute_and_nothing_is_dropped(
        engine: Engine, clock: FakeClock, wecom: FakeWeChatApi, tmp_path: Path) -> None:
    start = clock.now()
    burst(engine, clock, 100)
    drain(engine, clock, sender(engine, clock, wecom, tmp_path), passes=200)
    got = wecom.received(MEMBER)
    assert len(got) == 100 and pending(engine) == 0
    assert wecom.dropped_for(MEMBER) == []
    assert most_in_any(got, timedelta(minutes=1)) == 30
    assert clock.now() - start >= timedelta(minutes=3), "100 at 30 a minute take 3+ minutes"
    for m in wecom.sent_to(MEMBER):
        assert m.body["enable_duplicate_check"] == 1 and m.body["duplicate_check_interval"] > 0


def test_the_hourly_1000_holds_across_workers_and_restarts(
        engine: Engine, clock: FakeClock, wecom: FakeWeChatApi, tmp_path: Path) -> None:
    # 990 messages already went out in the last 55 minutes (well spread: 18 a minute), counted
    # in the shared send log and by WeCom alike.
    now = clock.now()
    before = [now - timedelta(minutes=55) + timedelta(seconds=k * 3.3) for k in range(990)]
    with session_scope(engine) as s:
        s.execute(sa.insert(LOG), [{"platform": "wecom", "recipient": MEMBER, "sent_at": t}
                                   for t in before])
    wecom.already_received(MEMBER, before)
    burst(engine, clock, 40)
    drain(engine, clock, sender(engine, clock, wecom, tmp_path), passes=400)
    got = wecom.received(MEMBER)
    assert len(got) == 990 + 40 and pending(engine) == 0
    assert wecom.dropped_for(MEMBER) == []
    assert most_in_any(got, timedelta(hours=1)) <= 1000
    assert most_in_any(got, timedelta(minutes=1)) <= 30
    # Only 10 fit in the hour: the other 30 waited for the oldest sends to leave the window.
    assert len([t for t in got[990:] if t < before[0] + timedelta(hours=1)]) == 10
