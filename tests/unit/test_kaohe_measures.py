"""What one case adds to each 考核 counter, and what the sums make (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.kaohe.measures import Kaohe, classify

AT = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _case(**kw: object) -> dict[str, int]:
    base: dict[str, object] = {
        "state": "closed", "first_reply_at": AT, "first_reply_on_time": True,
        "first_reply_role": "neighbor_leader", "first_holder_role": "neighbor_leader",
        "missed_deadlines": 0, "resolved_at": AT, "rating": 5, "redone": False}
    return classify(**{**base, **kw})  # type: ignore[arg-type]


def test_a_case_answered_in_time_by_its_own_post_is_signed() -> None:
    assert _case()["signed"] == 1
    # Answered in time, but by the 组长 after the 邻长 let it pass: judged, not signed.
    later = _case(first_reply_role="group_leader", missed_deadlines=1)
    assert (later["judged"], later["signed"], later["overdue"]) == (1, 0, 1)
    assert _case(first_reply_on_time=False)["signed"] == 0


def test_a_case_still_inside_its_answer_limit_is_not_judged() -> None:
    waiting = _case(state="open", first_reply_at=None, first_reply_on_time=None,
                    first_reply_role=None, resolved_at=None, rating=None)
    assert (waiting["received"], waiting["judged"], waiting["closed"],
            waiting["resolved"]) == (1, 0, 0, 0)
    past = _case(state="open", first_reply_at=None, first_reply_on_time=None,
                 first_reply_role=None, resolved_at=None, rating=None, missed_deadlines=1)
    assert (past["judged"], past["overdue"]) == (1, 1)


def test_a_merged_duplicate_counts_only_as_received_and_merged() -> None:
    got = _case(state="merged")
    assert {k for k, v in got.items() if v} == {"received", "merged"}


def test_a_reopened_case_is_resolved_and_redone_even_while_open_again() -> None:
    got = _case(state="accepted", resolved_at=None, rating=None, redone=True)
    assert (got["resolved"], got["redone"], got["closed"]) == (1, 1, 0)


@pytest.mark.parametrize(("rating", "satisfied"), [(5, 1), (4, 1), (3, 0), (1, 0)])
def test_four_or_five_stars_are_satisfied(rating: int, satisfied: int) -> None:
    got = _case(rating=rating)
    assert (got["rated"], got["satisfied"], got["rating_sum"]) == (1, satisfied, rating)


def test_rates_and_score_from_sums() -> None:
    k = Kaohe()
    for c in (_case(), _case(rating=2, missed_deadlines=1, first_reply_role="group_leader"),
              _case(state="merged"), _case(rating=None, redone=True)):
        k.add(c)
    assert k.accept_rate == pytest.approx(2 / 3)
    assert k.on_time_close_rate == pytest.approx(2 / 3)
    assert k.satisfied_rate == pytest.approx(1 / 2)
    assert k.visit_rate == pytest.approx(2 / 3)
    assert k.redo_rate == pytest.approx(1 / 3)
    assert k.overdue == 1 and k.mean_rating == pytest.approx(3.5)
    assert k.score == round(40 * 2 / 3 + 30 * 2 / 3 + 20 * 0.5 + 10 * (2 / 3), 1)


def test_nothing_to_judge_gives_no_rates_and_no_points() -> None:
    k = Kaohe()
    assert (k.accept_rate, k.on_time_close_rate, k.satisfied_rate, k.visit_rate,
            k.redo_rate) == (None, None, None, None, None)
    assert k.score == 0.0
