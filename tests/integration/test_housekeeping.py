"""Rows no limit reads any more are deleted; the ones a budget still counts stay."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.db import write_session
from core.housekeeping import tidy
from core.scheduler import TIDY_JOB_ID, build_scheduler
from core.settings import Settings
from core.web_sessions import PC
from core.wecom_limits import LOG, next_slot, record_send
from tests.fakes.timer import FakeClock


def test_send_log_keeps_what_a_window_reads(engine: Engine, clock: FakeClock) -> None:
    now = clock.now()
    with write_session(engine) as s:
        for minutes_ago in (5, 30, 59, 70, 180, 600):
            record_send(s, platform="wecom", recipient="zhang", now=now - timedelta(
                minutes=minutes_ago))
        # Thirty in the last minute: the per-minute budget is spent.
        for k in range(30):
            record_send(s, platform="wecom", recipient="li", now=now - timedelta(seconds=k))
    with Session(engine) as s:
        before = next_slot(s, platform="wecom", recipient="li", now=now)
    gone = tidy(engine, now=now, batch=2)  # small batches: the loop runs more than once
    assert gone.send_log == 3  # 70, 180 and 600 minutes ago: past the hour window
    with Session(engine) as s:
        left = sorted(s.execute(sa.select(LOG.c.recipient).where(
            LOG.c.recipient == "zhang")).scalars().all())
        assert len(left) == 3
        assert next_slot(s, platform="wecom", recipient="li", now=now) == before is not None


def test_expired_phone_codes_go_after_a_day(engine: Engine, clock: FakeClock) -> None:
    now = clock.now()
    with write_session(engine) as s:
        for hours_ago, chat in ((2, "fresh"), (30, "old")):
            at = now - timedelta(hours=hours_ago)
            s.execute(sa.insert(PC).values(chat_id=chat, phone="13800000000", code_hash="x",
                                           created_at=at, expires_at=at + timedelta(
                                               minutes=10)))
    assert tidy(engine, now=now).phone_codes == 1
    with Session(engine) as s:
        assert s.execute(sa.select(PC.c.chat_id)).scalars().all() == ["fresh"]


def test_the_scheduler_runs_it(engine: Engine, clock: FakeClock) -> None:
    settings = Settings(_env_file=None, database_url=str(engine.url))  # type: ignore[call-arg]
    scheduler = build_scheduler(engine=engine, clock=clock, settings=settings)
    job = scheduler.get_job(TIDY_JOB_ID)
    assert job is not None
    with write_session(engine) as s:
        record_send(s, platform="wecom", recipient="w", now=clock.now() - timedelta(hours=3))
    job.func()
    with Session(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(LOG)).scalar_one() == 0
