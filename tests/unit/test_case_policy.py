"""Due times, nags and quiet hours: pure arithmetic, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.cases.model import Stage
from core.cases.policy import (
    CasePolicy,
    add_running_time,
    in_quiet_hours,
    nag_moments,
    nags_passed,
    next_due,
    out_of_quiet,
    quiet_window,
    stage_deadline,
)
from core.settings import Settings

# 10:00 in Shanghai.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def local(h: int, m: int = 0, day: int = 23) -> datetime:
    """A Shanghai wall-clock time on 2026-11-`day`, as UTC."""
    return datetime(2026, 11, day, h, m, tzinfo=UTC) - 8 * H


def test_policy_comes_from_settings_and_survives_json() -> None:
    s = Settings(_env_file=None, reply_deadline="90s", quiet_start="21:30", nags_per_tier=1)
    p = CasePolicy.from_settings(s)
    assert p.reply_s == 90 and p.quiet_start == "21:30" and p.nags_per_tier == 1
    assert CasePolicy.from_json(p.to_json()) == p
    # A stored policy from an older version, with a field since removed, still loads.
    assert CasePolicy.from_json({**p.to_json(), "gone": 1}) == p


def test_quiet_window_wraps_midnight() -> None:
    p = CasePolicy()
    assert not in_quiet_hours(p, local(21, 59))
    assert in_quiet_hours(p, local(22, 0))
    assert in_quiet_hours(p, local(3, 0, day=24))
    assert not in_quiet_hours(p, local(7, 0, day=24))
    assert quiet_window(p, local(23, 0)) == (local(22, 0), local(7, 0, day=24))
    assert quiet_window(p, local(1, 0, day=24)) == (local(22, 0), local(7, 0, day=24))
    assert out_of_quiet(p, local(23, 30)) == local(7, 0, day=24)
    assert out_of_quiet(p, local(12, 0)) == local(12, 0)


def test_quiet_window_within_a_day_and_disabled() -> None:
    lunch = CasePolicy(quiet_start="12:00", quiet_end="14:00")
    assert in_quiet_hours(lunch, local(13, 0)) and not in_quiet_hours(lunch, local(23, 0))
    none = CasePolicy(quiet_start="00:00", quiet_end="00:00")
    assert not in_quiet_hours(none, local(3, 0))


def test_nags_at_half_time_and_thirty_minutes_before() -> None:
    p = CasePolicy()
    start = local(10, 0)
    deadline = stage_deadline(p, Stage.reply, start)
    assert deadline == local(14, 0)
    assert nag_moments(p, Stage.reply, start, deadline) == [local(12, 0), local(13, 30)]
    assert next_due(p, Stage.reply, start=start, deadline=deadline, nags_sent=0) == local(12, 0)
    assert next_due(p, Stage.reply, start=start, deadline=deadline, nags_sent=2) == deadline
    assert nags_passed(p, Stage.reply, start=start, deadline=deadline, now=local(13, 45)) == 2


def test_nags_are_capped_and_can_be_off() -> None:
    start, deadline = local(10), local(14)
    assert len(nag_moments(CasePolicy(nags_per_tier=1), Stage.reply, start, deadline)) == 1
    assert nag_moments(CasePolicy(nags_per_tier=0), Stage.reply, start, deadline) == []


def test_nags_in_quiet_hours_wait_for_the_morning_or_are_dropped() -> None:
    p = CasePolicy()
    # Opened 20:00: half time 22:00 and 23:30 fall in quiet hours; the deadline at 00:00
    # comes first, so both reminders are dropped (the escalation supersedes them).
    assert nag_moments(p, Stage.reply, local(20), local(0, day=24)) == []
    # A 72 h handling deadline: reminders moved out of the night, coalesced to one moment.
    start = local(23, 0)
    deadline = start + 72 * H
    moments = nag_moments(p, Stage.handle, start, deadline)
    assert all(not in_quiet_hours(p, t) for t in moments)
    # Half time is 11:00, daytime; 30 min before is 22:30, quiet, and the morning after comes
    # past the 23:00 deadline, so that reminder is dropped.
    assert moments == [start + 36 * H]
    # Opened 08:00: 30 min before a 20:00 deadline is 19:30, half time 14:00.
    assert nag_moments(p, Stage.handle, local(8), local(20)) == [local(14), local(19, 30)]
    # A half-time nag at 03:00 waits for 07:00.
    assert nag_moments(p, Stage.handle, local(21), local(9, day=24)) == [
        local(7, day=24), local(8, 30, day=24)]


def test_deadlines_run_through_quiet_hours_unless_paused() -> None:
    running = CasePolicy()
    paused = CasePolicy(pause_deadlines_in_quiet_hours=True)
    start = local(20, 0)
    assert stage_deadline(running, Stage.reply, start) == local(0, 0, day=24)
    # 20:00–22:00 counts 2 h, the night does not, 07:00–09:00 the other 2 h.
    assert stage_deadline(paused, Stage.reply, start) == local(9, 0, day=24)
    # Opened in the night: the clock starts at 07:00.
    assert add_running_time(paused, local(23, 0), 4 * H) == local(11, 0, day=24)
    # Spanning several nights.
    # 08:00 → 22:00 is 14 h, the next day gives 15 h, the last hour ends at 08:00.
    assert add_running_time(paused, local(8, 0), 30 * H) == local(8, 0, day=25)


def test_confirm_stage_has_one_reminder_at_half_window() -> None:
    p = CasePolicy()
    start = local(8)
    deadline = stage_deadline(p, Stage.confirm, start)
    assert nag_moments(p, Stage.confirm, start, deadline) == [start + 36 * H]
    # Half window at 22:00 waits until 07:00.
    start = local(10)
    assert nag_moments(p, Stage.confirm, start, start + 72 * H) == [local(7, day=25)]
