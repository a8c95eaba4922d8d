"""The deadline policy kept with each case, and the pure arithmetic of due times and quiet hours."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.cases import worktime
from core.cases.model import Stage
from core.settings import Settings

# Fields left out of a case's stored policy while at their default, so that the million open
# cases of a city that uses no category limits store what they stored before.
_LEAN_DEFAULTS: dict[str, Any] = {"reply_limit": None, "handle_limit": None}
_CALENDAR_FIELDS = ("work_hours", "local_holidays", "local_workdays")


@dataclass(frozen=True)
class CasePolicy:
    """Deadlines in seconds and quiet hours as HH:MM in the deployment's time zone."""

    reply_s: float = 4 * 3600
    handle_s: float = 72 * 3600
    department_s: float = 24 * 3600
    confirm_s: float = 72 * 3600
    verify_s: float = 24 * 3600  # 核查: the superior's check of a resolution
    nag_before_s: float = 30 * 60
    nags_per_tier: int = 3
    quiet_start: str = "22:00"
    quiet_end: str = "07:00"
    pause_deadlines_in_quiet_hours: bool = False
    timezone: str = "Asia/Shanghai"
    # How late a deadline may be handled before the messages say it was handled late.
    late_grace_s: float = 60.0
    # A category's own limits (worktime.parse_limit text: 4h, 4wh, 2wd, 20d); None: the
    # deployment's reply_s / handle_s above.
    reply_limit: str | None = None
    handle_limit: str | None = None
    # The working calendar, for `wh`/`wd` limits (stored with the case only when it has one).
    work_hours: str = worktime.DEFAULT_WORK_HOURS
    local_holidays: tuple[str, ...] = ()
    local_workdays: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> CasePolicy:
        return cls(
            reply_s=settings.reply_deadline.total_seconds(),
            handle_s=settings.handle_deadline.total_seconds(),
            department_s=settings.department_deadline.total_seconds(),
            confirm_s=settings.confirm_window.total_seconds(),
            nag_before_s=settings.nag_before.total_seconds(),
            nags_per_tier=settings.nags_per_tier,
            quiet_start=settings.quiet_start.strftime("%H:%M"),
            quiet_end=settings.quiet_end.strftime("%H:%M"),
            pause_deadlines_in_quiet_hours=settings.pause_deadlines_in_quiet_hours,
            timezone=settings.timezone,
            late_grace_s=max(60.0, 5 * settings.sweep_interval.total_seconds()),
            work_hours=settings.work_hours,
            local_holidays=settings.local_holidays,
            local_workdays=settings.local_workdays,
        )

    def with_limits(self, *, reply: str | None, handle: str | None) -> CasePolicy:
        """This policy with a category's limits (None: the deployment's default)."""
        return replace(self, reply_limit=reply, handle_limit=handle)

    @property
    def uses_working_time(self) -> bool:
        return any(text and worktime.parse_limit(text).working
                   for text in (self.reply_limit, self.handle_limit))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, default in _LEAN_DEFAULTS.items():
            if data[key] == default:
                del data[key]
        if not self.uses_working_time:
            for key in _CALENDAR_FIELDS:
                del data[key]
        else:
            data["local_holidays"] = list(self.local_holidays)
            data["local_workdays"] = list(self.local_workdays)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CasePolicy:
        # Fields added in later versions fall back to their defaults for old cases.
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("local_holidays", "local_workdays"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def limit(self, stage: Stage) -> worktime.Limit | None:
        """The category's limit for a stage, when it set one."""
        text = {Stage.reply: self.reply_limit, Stage.handle: self.handle_limit}.get(stage)
        return worktime.parse_limit(text) if text else None

    def calendar(self) -> worktime.WorkCalendar:
        return worktime.calendar(self.work_hours, self.local_holidays, self.local_workdays)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def duration(self, stage: Stage) -> timedelta:
        """The clock span of a stage (a working-time limit has none: see stage_deadline)."""
        limit = self.limit(stage)
        if limit is not None and not limit.working:
            return limit.clock_span()
        seconds = {
            Stage.reply: self.reply_s, Stage.handle: self.handle_s,
            Stage.department: self.department_s, Stage.confirm: self.confirm_s,
            Stage.verify: self.verify_s,
        }[stage]
        return timedelta(seconds=seconds)


def _hm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def quiet_window(policy: CasePolicy, at: datetime) -> tuple[datetime, datetime] | None:
    """The quiet period containing `at` as aware UTC [start, end), or None outside quiet hours."""
    qs, qe = _hm(policy.quiet_start), _hm(policy.quiet_end)
    if qs == qe:
        return None
    tz = policy.tz
    local = at.astimezone(tz)
    # A period starts on the day of `at` or the day before (when it wraps midnight).
    for back in (0, 1):
        day = (local - timedelta(days=back)).date()
        start = datetime.combine(day, qs, tzinfo=tz)
        end_day = day + timedelta(days=1) if qe <= qs else day
        end = datetime.combine(end_day, qe, tzinfo=tz)
        if start <= local < end:
            return start.astimezone(UTC), end.astimezone(UTC)
    return None


def in_quiet_hours(policy: CasePolicy, at: datetime) -> bool:
    return quiet_window(policy, at) is not None


def out_of_quiet(policy: CasePolicy, at: datetime) -> datetime:
    """`at`, or the end of the quiet period it falls in."""
    window = quiet_window(policy, at)
    return at if window is None else window[1]


def next_quiet_start(policy: CasePolicy, at: datetime) -> datetime | None:
    """The first start of quiet hours strictly after `at` (outside quiet hours)."""
    qs, qe = _hm(policy.quiet_start), _hm(policy.quiet_end)
    if qs == qe:
        return None
    tz = policy.tz
    local = at.astimezone(tz)
    for ahead in (0, 1, 2):
        start = datetime.combine(local.date() + timedelta(days=ahead), qs, tzinfo=tz)
        if start > local:
            return start.astimezone(UTC)
    raise AssertionError("quiet hours start at least once in two days")


def add_running_time(policy: CasePolicy, start: datetime, span: timedelta) -> datetime:
    """When a deadline of `span` started at `start` falls: wall time, or only time outside
    quiet hours when deadlines pause in quiet hours."""
    if not policy.pause_deadlines_in_quiet_hours:
        return start + span
    t, remaining = out_of_quiet(policy, start), span
    while True:
        quiet = next_quiet_start(policy, t)
        if quiet is None or t + remaining <= quiet:
            return t + remaining
        remaining -= quiet - t
        t = out_of_quiet(policy, quiet)


def stage_deadline(policy: CasePolicy, stage: Stage, start: datetime) -> datetime:
    """When the deadline of `stage` started at `start` falls, by clock or by working time."""
    limit = policy.limit(stage)
    if limit is not None and limit.working:
        quiet = ((_hm(policy.quiet_start), _hm(policy.quiet_end))
                 if policy.pause_deadlines_in_quiet_hours else None)
        return worktime.working_deadline(policy.calendar(), policy.tz, start, limit, quiet)
    return add_running_time(policy, start, policy.duration(stage))


def nag_moments(policy: CasePolicy, stage: Stage, start: datetime,
                deadline: datetime) -> list[datetime]:
    """When to remind, in order: half time and `nag_before` the deadline, moved out of quiet
    hours, dropped when that lands at or past the deadline, capped at `nags_per_tier`."""
    if policy.nags_per_tier <= 0:
        return []
    wanted = [start + (deadline - start) / 2]
    if stage is not Stage.confirm:  # the resident gets one reminder, not a countdown
        wanted.append(deadline - timedelta(seconds=policy.nag_before_s))
    moments = sorted({
        out_of_quiet(policy, t) for t in wanted if start < t < deadline
    })
    return [t for t in moments if t < deadline][: policy.nags_per_tier]


def next_due(policy: CasePolicy, stage: Stage, *, start: datetime, deadline: datetime,
             nags_sent: int) -> datetime:
    """The next moment the sweep must look at a case: its next nag, else its deadline."""
    moments = nag_moments(policy, stage, start, deadline)
    return moments[nags_sent] if nags_sent < len(moments) else deadline


def nags_passed(policy: CasePolicy, stage: Stage, *, start: datetime, deadline: datetime,
                now: datetime) -> int:
    """How many nag moments lie at or before `now` (those passed are never sent late)."""
    return sum(1 for t in nag_moments(policy, stage, start, deadline) if t <= now)
