"""Working time: time limits such as `4h`, `4wh`, `2wd`, `20d`, and the Chinese calendar of
working days (holidays and 调休 from `chinese-calendar`, plus the deployment's own days)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

# m/h/d run on the clock (d = 24 h); wh counts only working hours; wd ends at the close of the
# n-th working day after the day the clock starts (the starting day is not counted: 民法典 §201).
CLOCK_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0}
WORKING_UNITS = ("wh", "wd")
LIMIT_RE = re.compile(r"(\d+(?:\.\d+)?)(wd|wh|d|h|m)")
# A limit longer than this is a typo (a year of working days), not a policy.
MAX_SECONDS = 366 * 86400.0
MAX_WORKING_DAYS = 250
DEFAULT_WORK_HOURS = "08:30-12:00,14:00-17:30"


class LimitError(ValueError):
    """A time limit or working-hours text that cannot be read; the message says why."""


@dataclass(frozen=True)
class Limit:
    """A parsed time limit: an amount in one unit."""

    amount: float
    unit: str

    @property
    def working(self) -> bool:
        return self.unit in WORKING_UNITS

    def clock_span(self) -> timedelta:
        """The span of a clock limit (m, h, d)."""
        return timedelta(seconds=self.amount * CLOCK_UNITS[self.unit])

    def text(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount}{self.unit}"


@lru_cache(maxsize=256)
def parse_limit(text: str) -> Limit:
    """`4h`, `90m`, `3d`, `4wh`, `2wd` → a Limit; anything else raises LimitError."""
    raw = "".join(str(text).split()).lower()
    m = LIMIT_RE.fullmatch(raw)
    if m is None:
        raise LimitError(f"time limit {text!r} is malformed (use e.g. 4h, 90m, 3d, 4wh or 2wd)")
    amount, unit = float(m.group(1)), m.group(2)
    if amount <= 0:
        raise LimitError(f"time limit {text!r} must be more than zero")
    if unit == "wd" and (amount != int(amount) or amount > MAX_WORKING_DAYS):
        raise LimitError(f"working days {text!r} must be a whole number up to "
                         f"{MAX_WORKING_DAYS}")
    seconds = amount * (CLOCK_UNITS.get(unit) or 3600.0)
    if unit != "wd" and seconds > MAX_SECONDS:
        raise LimitError(f"time limit {text!r} is longer than a year")
    return Limit(amount, unit)


def _hm(text: str) -> time:
    h, _, m = text.strip().partition(":")
    if not (h.isdigit() and m.isdigit()) or int(h) > 23 or int(m) > 59:
        raise LimitError(f"{text!r} is not a time of day (use HH:MM)")
    return time(int(h), int(m))


@lru_cache(maxsize=64)
def parse_work_hours(text: str) -> tuple[tuple[time, time], ...]:
    """`08:30-12:00,14:00-17:30` → ordered, non-overlapping periods within one day."""
    periods: list[tuple[time, time]] = []
    for part in str(text).split(","):
        start, sep, end = part.strip().partition("-")
        if not sep:
            raise LimitError(f"working hours {part!r} are malformed (use e.g. 08:30-12:00)")
        s, e = _hm(start), _hm(end)
        if e <= s:
            raise LimitError(f"working hours {part!r} end before they start")
        if periods and s < periods[-1][1]:
            raise LimitError(f"working hours {part!r} overlap or are out of order")
        periods.append((s, e))
    if not periods:
        raise LimitError("working hours are empty")
    return tuple(periods)


def package_years() -> tuple[int, int]:
    """The first and last year the installed `chinese-calendar` knows."""
    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


@lru_cache(maxsize=16384)  # the package validates every date against all its years: slow
def national_workday(day: date) -> bool:
    """A working day by the State Council's calendar; for a year the package does not know
    yet, Monday to Friday (the deployment adds that year's days in its calendar file)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


@dataclass(frozen=True)
class WorkCalendar:
    """Working days and hours: the national calendar, overridden by local days."""

    periods: tuple[tuple[time, time], ...]
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        return national_workday(day)


@lru_cache(maxsize=64)
def calendar(work_hours: str, holidays: tuple[str, ...] = (),
             workdays: tuple[str, ...] = ()) -> WorkCalendar:
    """The calendar for a policy's texts (cached: policies repeat)."""
    return WorkCalendar(parse_work_hours(work_hours),
                        frozenset(date.fromisoformat(d) for d in holidays),
                        frozenset(date.fromisoformat(d) for d in workdays))


Quiet = tuple[time, time] | None


def _minus_quiet(day: date, tz: ZoneInfo, spans: list[tuple[datetime, datetime]],
                 quiet: Quiet) -> list[tuple[datetime, datetime]]:
    """The spans of one local day with the quiet hours of that day taken out."""
    if quiet is None or quiet[0] == quiet[1]:
        return spans
    qs, qe = quiet
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    if qe <= qs:  # wraps midnight: the early morning and the late evening of this day
        blocked = [(midnight, datetime.combine(day, qe, tzinfo=tz)),
                   (datetime.combine(day, qs, tzinfo=tz), next_midnight)]
    else:
        blocked = [(datetime.combine(day, qs, tzinfo=tz), datetime.combine(day, qe, tzinfo=tz))]
    out: list[tuple[datetime, datetime]] = []
    for s, e in spans:
        pieces = [(s, e)]
        for bs, be in blocked:
            cut: list[tuple[datetime, datetime]] = []
            for ps, pe in pieces:
                if be <= ps or bs >= pe:
                    cut.append((ps, pe))
                    continue
                if ps < bs:
                    cut.append((ps, bs))
                if be < pe:
                    cut.append((be, pe))
            pieces = cut
        out.extend(pieces)
    return out


def add_working_hours(cal: WorkCalendar, tz: ZoneInfo, start: datetime, span: timedelta,
                      quiet: Quiet = None) -> datetime:
    """The moment `span` of working time (minus quiet hours, when given) has passed after
    `start`; a span that ends exactly at a period's close ends there."""
    remaining = span
    day = start.astimezone(tz).date()
    for _ in range(3700):  # ten years of days: more than any limit parse_limit lets through
        if cal.is_workday(day):
            spans = [(datetime.combine(day, s, tzinfo=tz), datetime.combine(day, e, tzinfo=tz))
                     for s, e in cal.periods]
            for s, e in _minus_quiet(day, tz, spans, quiet):
                lo = max(s, start.astimezone(tz))
                if lo >= e:
                    continue
                if remaining <= e - lo:
                    return (lo + remaining).astimezone(UTC)
                remaining -= e - lo
        day += timedelta(days=1)
    raise LimitError("no working time within ten years: check the working calendar")


def end_of_working_days(cal: WorkCalendar, tz: ZoneInfo, start: datetime, days: int) -> datetime:
    """The close of the `days`-th working day after the local day of `start`."""
    day, counted = start.astimezone(tz).date(), 0
    for _ in range(3700):
        day += timedelta(days=1)
        if cal.is_workday(day):
            counted += 1
            if counted >= days:
                return datetime.combine(day, cal.periods[-1][1], tzinfo=tz).astimezone(UTC)
    raise LimitError("no working day within ten years: check the working calendar")


def working_deadline(cal: WorkCalendar, tz: ZoneInfo, start: datetime, limit: Limit,
                     quiet: Quiet = None) -> datetime:
    """When a working-time limit started at `start` falls."""
    if limit.unit == "wd":
        return end_of_working_days(cal, tz, start, int(limit.amount))
    return add_working_hours(cal, tz, start, timedelta(hours=limit.amount), quiet)


HOLIDAY_WORDS = {"holiday", "休", "放假", "假"}
WORKDAY_WORDS = {"workday", "班", "上班", "补班"}
HEADER_WORDS = {"date", "日期"}


def read_calendar_file(text: str, *, label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The deployment's own days from a CSV of `date,kind[,name]` (kind `holiday`/`休` or
    `workday`/`班`; a header row and `#` lines are skipped) → (holidays, workdays) as ISO dates.
    A bad line raises LimitError naming `label:line`."""
    holidays: set[str] = set()
    workdays: set[str] = set()
    for lineno, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        cells = [c.strip() for c in line.split(",")]
        if not cells[0] or cells[0].startswith("#") or cells[0].lower() in HEADER_WORDS:
            continue
        try:
            day = date.fromisoformat(cells[0]).isoformat()
        except ValueError:
            raise LimitError(f"{label}:{lineno}: {cells[0]!r} is not a date (YYYY-MM-DD)"
                             ) from None
        kind = cells[1].lower() if len(cells) > 1 else ""
        if kind in HOLIDAY_WORDS:
            holidays.add(day)
        elif kind in WORKDAY_WORDS:
            workdays.add(day)
        else:
            raise LimitError(f"{label}:{lineno}: kind {kind!r} is neither holiday nor workday")
        if day in holidays and day in workdays:
            raise LimitError(f"{label}:{lineno}: {day} is listed as holiday and as workday")
    return tuple(sorted(holidays)), tuple(sorted(workdays))
