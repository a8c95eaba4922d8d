"""The scheduler that runs the deadline sweep; built by the composition root, never at import.

There is one job for the whole system, not one per case: deadlines live in the database and
the job asks the index what is due, so a restart loses nothing and memory does not grow with
the number of open cases.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases.sweep import SweepResult, earliest_due, run_sweep
from core.clock import Clock
from core.counters import Counters
from core.settings import Settings

log = logging.getLogger(__name__)

SWEEP_JOB_ID = "linzhang.deadline_sweep"
WAKE_JOB_ID = "linzhang.deadline_wake"
STALL_JOB_ID = "linzhang.stall_watch"
ROLLUP_JOB_ID = "linzhang.rollup_refresh"
TIDY_JOB_ID = "linzhang.housekeeping"
CHANNEL_JOB_ID = "linzhang.channel_watch"


@dataclass
class SweepJob:
    """The sweep as a job: runs one pass, logs what it did, keeps totals for /metrics."""

    engine: Engine
    clock: Clock
    batch: int
    interval: timedelta = timedelta(seconds=1)
    scheduler: BaseScheduler | None = None
    runs: int = 0
    failures: int = 0
    totals: SweepResult = field(default_factory=SweepResult)
    last: SweepResult | None = None
    # Set after the first pass: jobs that would hold the writer (the rollup rebuild of a fresh
    # database) wait for it, so deadlines due at start are met first.
    passed: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> SweepResult:
        with self._lock:
            try:
                result = run_sweep(self.engine, clock=self.clock, batch=self.batch)
            except Exception:
                self.failures += 1
                # The next run retries; deadlines are in the database, so nothing is lost.
                log.exception("deadline sweep failed")
                raise
            self.runs += 1
            self.last = result
            self.totals.add(result)
            self.passed.set()
            self._notices()
        if result.claimed:
            log.info("sweep: %s", result)
        self._wake_for_next_due()
        return result

    def _notices(self) -> None:
        """The notices' re-pings and deadline lists ride on the same tick (core/notices)."""
        from core.notices.sweep import run_notice_sweep

        try:
            done = run_notice_sweep(self.engine, clock=self.clock)
        except Exception:
            self.failures += 1
            log.exception("notice sweep failed")  # retried on the next tick, nothing is lost
            return
        if done.repinged or done.closed:
            log.info("notice sweep: %s", done)

    def _wake_for_next_due(self) -> None:
        """When the next case falls due before the next tick, run once more at that moment,
        so a deadline is met within the sweep's own time rather than up to a tick later."""
        if self.scheduler is None or not self.scheduler.running:
            return
        with Session(self.engine) as session:
            due = earliest_due(session)
        if due is None:
            return
        delay = due - self.clock.now()
        if timedelta(0) < delay < self.interval:
            self.scheduler.add_job(
                self, "date", run_date=datetime.now(UTC) + delay, id=WAKE_JOB_ID,
                name="deadline sweep (due moment)", replace_existing=True,
                misfire_grace_time=None,
            )


def build_scheduler(*, engine: Engine, clock: Clock, settings: Settings,
                    kind: Literal["background", "asyncio"] = "background") -> BaseScheduler:
    """A scheduler (not started) with the sweep job every `sweep_interval`; the caller starts
    and shuts it down (the web app's lifespan, `linzhang serve`)."""
    scheduler: BaseScheduler = (
        AsyncIOScheduler(timezone="UTC") if kind == "asyncio" else BackgroundScheduler(
            timezone="UTC")
    )
    job = SweepJob(engine=engine, clock=clock, batch=settings.sweep_batch,
                   interval=settings.sweep_interval, scheduler=scheduler)
    scheduler.add_job(
        job, IntervalTrigger(seconds=settings.sweep_interval.total_seconds(), timezone="UTC"),
        id=SWEEP_JOB_ID, name="deadline sweep", max_instances=1, coalesce=True,
        misfire_grace_time=None, replace_existing=True,
    )
    add_stall_watch(scheduler, engine=engine, clock=clock, settings=settings)
    add_rollup_refresh(scheduler, engine=engine, clock=clock, settings=settings,
                       after=job.passed)
    add_housekeeping(scheduler, engine=engine, clock=clock)
    return scheduler


@dataclass
class Housekeeping:
    """Trims the tables that grow with every message (core/housekeeping.py)."""

    engine: Engine
    clock: Clock

    def __call__(self) -> None:
        from core.housekeeping import tidy

        gone = tidy(self.engine, now=self.clock.now())
        if gone.send_log or gone.phone_codes:
            log.info("housekeeping: %d send_log rows, %d phone codes deleted",
                     gone.send_log, gone.phone_codes)


def add_housekeeping(scheduler: BaseScheduler, *, engine: Engine, clock: Clock,
                     every: timedelta = timedelta(minutes=10)) -> None:
    """Add the job that deletes rows no limit reads any more."""
    scheduler.add_job(
        Housekeeping(engine=engine, clock=clock),
        IntervalTrigger(seconds=every.total_seconds(), timezone="UTC"),
        id=TIDY_JOB_ID, name="housekeeping", max_instances=1, coalesce=True,
        misfire_grace_time=None, replace_existing=True,
    )


@dataclass
class RollupRefresh:
    """Brings the daily figure rollups up to date (core/rollup/refresh.py)."""

    engine: Engine
    clock: Clock
    timezone: str
    after: threading.Event | None = None  # the sweep's first pass

    def __call__(self) -> None:
        from zoneinfo import ZoneInfo

        if self.after is not None and not self.after.is_set():
            return  # the next tick: the sweep goes first

        from core.rollup.apart import SMALL
        from core.rollup.refresh import refresh

        # A rebuild of a big database reads in a child process: its Python would hold the GIL
        # the webhooks' threads share with this one (core/rollup/apart.py).
        result = refresh(self.engine, clock=self.clock, tz=ZoneInfo(self.timezone),
                         apart_from=SMALL)
        if result.rebuilt:
            log.info("rollups rebuilt: %d villages, %d village-days in %.1f s",
                     result.villages, result.village_days, result.seconds)


def add_rollup_refresh(scheduler: BaseScheduler, *, engine: Engine, clock: Clock,
                       settings: Settings, after: threading.Event | None = None) -> None:
    """Add the job that recomputes the village-days marked dirty since its last run (not
    before `after` is set, when given)."""
    scheduler.add_job(
        RollupRefresh(engine=engine, clock=clock, timezone=settings.timezone, after=after),
        IntervalTrigger(seconds=settings.rollup_interval.total_seconds(), timezone="UTC"),
        id=ROLLUP_JOB_ID, name="figure rollups", max_instances=1, coalesce=True,
        misfire_grace_time=None, replace_existing=True, next_run_time=datetime.now(UTC),
    )


@dataclass
class StallWatch:
    """The stalled-sweep alert as a job of its own: a sweep that hangs or keeps failing
    cannot report itself, a separate job on another scheduler thread can."""

    engine: Engine
    clock: Clock
    interval: timedelta

    def __call__(self) -> None:
        from core.ops import watch_sweep

        try:
            watch_sweep(self.engine, clock=self.clock, interval=self.interval)
        except Exception:
            # The database may be what is wrong; /healthz reports that, the next run retries.
            log.exception("stall watch failed")


def add_stall_watch(scheduler: BaseScheduler, *, engine: Engine, clock: Clock,
                    settings: Settings) -> None:
    """Add the job that alerts the root admins when the sweep falls behind (core/ops.py)."""
    scheduler.add_job(
        StallWatch(engine=engine, clock=clock, interval=settings.sweep_interval),
        IntervalTrigger(seconds=settings.stall_check_interval.total_seconds(), timezone="UTC"),
        id=STALL_JOB_ID, name="stalled-sweep watch", max_instances=1, coalesce=True,
        misfire_grace_time=None, replace_existing=True,
    )


def sweep_job(scheduler: BaseScheduler) -> SweepJob:
    """The job object (for its counters)."""
    job = scheduler.get_job(SWEEP_JOB_ID)
    if job is None:
        raise LookupError("this scheduler has no sweep job")
    func = job.func
    assert isinstance(func, SweepJob)
    return func


@dataclass
class ChannelWatch:
    """Heartbeats: share this worker's last receive and send per platform, and alert the root
    admins when a platform has been silent while messages wait (core/heartbeats.py)."""

    engine: Engine
    clock: Clock
    counters: Counters
    platforms: list[str]
    silence: timedelta

    def __call__(self) -> None:
        from core.heartbeats import watch

        try:
            watch(self.engine, clock=self.clock, counters=self.counters,
                  platforms=self.platforms, silence=self.silence)
        except Exception:
            log.exception("channel watch failed")  # the next run retries; /healthz tells


def add_channel_watch(scheduler: BaseScheduler, *, engine: Engine, clock: Clock,
                      settings: Settings, counters: Counters, platforms: list[str]) -> None:
    """Add the heartbeat job for the chat platforms this deployment runs."""
    scheduler.add_job(
        ChannelWatch(engine=engine, clock=clock, counters=counters, platforms=platforms,
                     silence=settings.channel_silence),
        IntervalTrigger(seconds=settings.heartbeat_interval.total_seconds(), timezone="UTC"),
        id=CHANNEL_JOB_ID, name="channel heartbeats", max_instances=1, coalesce=True,
        misfire_grace_time=None, replace_existing=True,
    )
