"""Working-time arithmetic against a plain reference that walks minute by minute (working
hours) or day by day (working days) over 2024–2027, holidays and 调休 from chinese-calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cases import worktime
from core.cases.model import Stage
from core.cases.policy import CasePolicy, stage_deadline
from core.cases.worktime import (
    LimitError,
    Quiet,
    WorkCalendar,
    calendar,
    parse_limit,
    read_calendar_file,
    working_deadline,
)

TZ = ZoneInfo("Asia/Shanghai")
HOURS = "08:30-12:00,14:00-17:30"
FIRST, LAST = date(2024, 1, 1), date(2027, 12, 20)


def ref_workday(day: date, cal: WorkCalendar) -> bool:
    if day in cal.holidays:
        return False
    if day in cal.workdays:
        return True
    if day.year <= 2026:  # the package's years here; 2027 is the documented Mon–Fri fallback
        return bool(chinese_calendar.is_workday(day))
    return day.weekday() < 5


def ref_working_minute(at: datetime, cal: WorkCalendar, quiet: Quiet) -> bool:
    local = at.astimezone(TZ)
    hm = local.time()
    if not ref_workday(local.date(), cal):
        return False
    if not any(s <= hm < e for s, e in cal.periods):
        return False
    if quiet is not None:
        qs, qe = quiet
        inside = (qs <= hm < qe) if qs < qe else (hm >= qs or hm < qe)
        if inside:
            return False
    return True


def ref_working_hours(cal: WorkCalendar, start: datetime, minutes: int,
                      quiet: Quiet) -> datetime:
    t, counted = start, 0
    while True:
        local = t.astimezone(TZ)
        if not ref_workday(local.date(), cal):  # a day off: on to its midnight, for speed
            t = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=TZ)
            continue
        if ref_working_minute(t, cal, quiet):
            counted += 1
            if counted == minutes:
                return t + timedelta(minutes=1)
        t += timedelta(minutes=1)


def ref_working_days(cal: WorkCalendar, start: datetime, days: int) -> datetime:
    day, counted = start.astimezone(TZ).date(), 0
    while counted < days:
        day += timedelta(days=1)
        counted += ref_workday(day, cal)
    return datetime.combine(day, cal.periods[-1][1], tzinfo=TZ).astimezone(UTC)


# Days around the holidays of those years (the eve and the first days after), where the
# arithmetic is most likely to go wrong, drawn as often as any day at all.
HOLIDAY_EDGES = sorted({
    d + timedelta(days=k) for d in chinese_calendar.holidays
    if FIRST <= d <= LAST and chinese_calendar.get_holiday_detail(d)[1] is not None
    for k in (-1, 0, 1)
})
days = st.one_of(st.dates(FIRST, LAST), st.sampled_from(HOLIDAY_EDGES))
starts = st.builds(
    lambda d, minute: datetime.combine(d, time(0), tzinfo=TZ).astimezone(UTC)
    + timedelta(minutes=minute),
    days, st.integers(0, 24 * 60 - 1))
quiets = st.one_of(st.none(), st.sampled_from([
    (time(22, 0), time(7, 0)),  # the default: no overlap with office hours
    (time(17, 0), time(9, 0)),  # wraps midnight and bites both ends of the day
    (time(11, 30), time(14, 30)),  # a long lunch inside the working periods
]))
hours_texts = st.sampled_from([HOURS, "09:00-17:00", "08:00-11:30,13:30-17:00,19:00-21:00"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=starts, minutes=st.integers(1, 16 * 60), quiet=quiets, hours=hours_texts)
def test_working_hours_match_the_minute_by_minute_reference(
        start: datetime, minutes: int, quiet: Quiet, hours: str) -> None:
    cal = calendar(hours)
    limit = worktime.Limit(minutes / 60, "wh")
    got = working_deadline(cal, TZ, start, limit, quiet)
    assert got == ref_working_hours(cal, start, minutes, quiet)


@settings(max_examples=300, deadline=None)
@given(start=starts, n=st.integers(1, 25), hours=hours_texts)
def test_working_days_match_the_day_by_day_reference(start: datetime, n: int,
                                                     hours: str) -> None:
    cal = calendar(hours)
    assert working_deadline(cal, TZ, start, parse_limit(f"{n}wd")) == \
        ref_working_days(cal, start, n)


@settings(max_examples=60, deadline=None)
@given(start=starts, n=st.integers(1, 10), minutes=st.integers(1, 600),
       local_days=st.lists(st.dates(FIRST, LAST), max_size=6, unique=True))
def test_local_days_override_the_national_calendar(start: datetime, n: int, minutes: int,
                                                   local_days: list[date]) -> None:
    half = len(local_days) // 2
    cal = calendar(HOURS, tuple(d.isoformat() for d in local_days[:half]),
                   tuple(d.isoformat() for d in local_days[half:]))
    assert working_deadline(cal, TZ, start, parse_limit(f"{n}wd")) == \
        ref_working_days(cal, start, n)
    assert working_deadline(cal, TZ, start, worktime.Limit(minutes / 60, "wh")) == \
        ref_working_hours(cal, start, minutes, None)


def shanghai(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ).astimezone(UTC)


def test_two_working_days_from_the_friday_before_qingming() -> None:
    # 2026-04-03 is a Friday; 4–6 April are the 清明 holiday: Tue 7th is day 1, Wed 8th day 2.
    p = CasePolicy().with_limits(reply="2wd", handle=None)
    assert stage_deadline(p, Stage.reply, shanghai(2026, 4, 3, 10)) == \
        shanghai(2026, 4, 8, 17, 30)


def test_a_make_up_sunday_counts_as_a_working_day() -> None:
    # 2026-02-14 (Saturday) is a 调休 working day before the Spring Festival.
    cal = calendar(HOURS)
    assert working_deadline(cal, TZ, shanghai(2026, 2, 13, 16), parse_limit("4wh")) == \
        shanghai(2026, 2, 14, 11)


def test_four_working_hours_skip_lunch_and_the_night() -> None:
    cal = calendar(HOURS)
    # Monday 16:00: 1.5 h today, 2.5 h from 08:30 Tuesday.
    assert working_deadline(cal, TZ, shanghai(2026, 11, 23, 16), parse_limit("4wh")) == \
        shanghai(2026, 11, 24, 11)
    # Ends exactly at the close: the close, not the next morning.
    assert working_deadline(cal, TZ, shanghai(2026, 11, 23, 14), parse_limit("3.5wh")) == \
        shanghai(2026, 11, 23, 17, 30)


def test_a_year_the_package_does_not_know_counts_monday_to_friday() -> None:
    lo, hi = worktime.package_years()
    assert lo <= 2024 and hi >= 2026
    beyond = date(hi + 1, 10, 1)
    assert worktime.national_workday(beyond) is (beyond.weekday() < 5)


def test_clock_limits_keep_the_clock() -> None:
    p = CasePolicy().with_limits(reply="2h", handle="20d")
    start = shanghai(2026, 9, 30, 23)
    assert stage_deadline(p, Stage.reply, start) == start + timedelta(hours=2)
    assert stage_deadline(p, Stage.handle, start) == start + timedelta(days=20)


@pytest.mark.parametrize("text", ["4x", "", "wd", "0h", "-2d", "1.5wd", "4 w h x", "999d",
                                  "4hh", "2 天"])
def test_malformed_limits_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(LimitError) as err:
        parse_limit(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize(("text", "canon"), [("4h", "4h"), ("90m", "90m"), ("2WD", "2wd"),
                                             (" 4 wh ", "4wh"), ("20d", "20d"),
                                             ("1.5h", "1.5h")])
def test_limits_read(text: str, canon: str) -> None:
    assert parse_limit(text).text() == canon


def test_calendar_file_reads_and_refuses_by_line() -> None:
    text = "date,kind,name\n2027-01-01,休,元旦\n# a comment\n2027-02-07,班,调休\n"
    assert read_calendar_file(text, label="days.csv") == (("2027-01-01",), ("2027-02-07",))
    with pytest.raises(LimitError, match=r"days.csv:2: '2027-13-01' is not a date"):
        read_calendar_file("date,kind\n2027-13-01,休\n", label="days.csv")
    with pytest.raises(LimitError, match=r"days.csv:1: kind 'maybe'"):
        read_calendar_file("2027-01-01,maybe\n", label="days.csv")


def test_working_hours_setting_is_checked() -> None:
    from pydantic import ValidationError

    from core.settings import Settings

    with pytest.raises(ValidationError, match="end before they start"):
        Settings(work_hours="12:00-08:30")
    with pytest.raises(ValidationError, match="overlap"):
        Settings(work_hours="08:30-12:00,11:00-17:00")


def test_settings_read_the_calendar_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from core.settings import Settings

    f = tmp_path / "days.csv"
    f.write_text("2027-05-06,holiday\n", encoding="utf-8")
    s = Settings(work_calendar_file=str(f))
    assert s.local_holidays == ("2027-05-06",)
    p = CasePolicy.from_settings(s).with_limits(reply="1wd", handle=None)
    # Wednesday 5 May 2027 → Thursday 6th is the local holiday → Friday 7th.
    assert stage_deadline(p, Stage.reply, shanghai(2027, 5, 5, 9)) == shanghai(2027, 5, 7, 17, 30)
    f.write_text("2027-05-06,sometimes\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"days\.csv:1"):
        Settings(work_calendar_file=str(f))


def test_stored_policy_stays_lean_without_category_limits() -> None:
    assert set(CasePolicy().to_json()) == {
        "reply_s", "handle_s", "department_s", "confirm_s", "nag_before_s", "nags_per_tier",
        "quiet_start", "quiet_end", "pause_deadlines_in_quiet_hours", "timezone",
        "late_grace_s", "verify_s"}
    p = CasePolicy(local_holidays=("2027-05-06",)).with_limits(reply="2wd", handle="4h")
    assert CasePolicy.from_json(p.to_json()) == p
