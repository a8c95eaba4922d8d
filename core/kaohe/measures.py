"""What each 考核 measure counts, for one case and for a sum of cases.

A case is credited to the village it came from, to its first holder (person and post: the
邻长 of the resident's 邻, unless a routing rule sent it elsewhere) and, once whistled, to the
department. The rollups (core/rollup/kaohe.py) and the live count (core/kaohe/live.py) both
call `classify`, so they cannot disagree on what a measure means.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from core.cases.model import State

COUNTERS = ("received", "merged", "judged", "signed", "closed", "closed_on_time", "resolved",
            "redone", "rated", "satisfied", "rating_sum", "overdue")
# Score weights out of 100: 按时办结 40, 签收 30, 满意 20, not redone 10.
WEIGHTS = {"on_time_close": 40, "accept": 30, "satisfied": 20, "not_redone": 10}


def classify(*, state: str, first_reply_at: Any, first_reply_on_time: bool | None,
             first_reply_role: str | None, first_holder_role: str | None,
             missed_deadlines: int, resolved_at: Any, rating: int | None,
             redone: bool) -> dict[str, int]:
    """The counters one case adds (see Kaohe's properties for what they make)."""
    out = dict.fromkeys(COUNTERS, 0)
    out["received"] = 1
    if state == State.merged.value:
        # A duplicate folded into another case is judged there, not twice.
        out["merged"] = 1
        return out
    answered = first_reply_at is not None
    out["judged"] = 1 if answered or missed_deadlines > 0 else 0
    # 签收: the post the case was routed to answered it itself, by its own answer limit.
    out["signed"] = 1 if (answered and first_reply_on_time is True
                          and first_reply_role == first_holder_role) else 0
    closed = state == State.closed.value
    out["closed"] = 1 if closed else 0
    out["closed_on_time"] = 1 if closed and missed_deadlines == 0 else 0
    out["resolved"] = 1 if closed or redone or resolved_at is not None else 0
    out["redone"] = 1 if redone else 0
    if rating is not None:
        out["rated"] = 1
        out["satisfied"] = 1 if rating >= 4 else 0
        out["rating_sum"] = int(rating)
    out["overdue"] = 1 if missed_deadlines > 0 else 0
    return out


_COUNTS = attrgetter(*COUNTERS)


def _share(n: int, base: int) -> float | None:
    return n / base if base else None


@dataclass
class Kaohe:
    """Summed counters of some cases and the 考核 measures they give."""

    received: int = 0
    merged: int = 0
    judged: int = 0
    signed: int = 0
    closed: int = 0
    closed_on_time: int = 0
    resolved: int = 0
    redone: int = 0
    rated: int = 0
    satisfied: int = 0
    rating_sum: int = 0
    overdue: int = 0

    @classmethod
    def of(cls, row: Any) -> Kaohe:
        """From a row with the counters as attributes (a city's XLSX builds 100,000)."""
        return cls(*(int(v or 0) for v in _COUNTS(row)))

    def add(self, counts: dict[str, int] | Any) -> None:
        get = counts.get if isinstance(counts, dict) else lambda k: getattr(counts, k)
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + int(get(f.name) or 0))

    @property
    def counted(self) -> int:
        """Cases that count (a merged duplicate does not)."""
        return self.received - self.merged

    @property
    def accept_rate(self) -> float | None:
        """签收率: answered by the post it was routed to within its answer limit, of the
        cases answered or past a deadline (one still waiting inside its limit is not judged)."""
        return _share(self.signed, self.judged)

    @property
    def on_time_close_rate(self) -> float | None:
        """按时办结率: closed without ever missing a deadline, of the cases received."""
        return _share(self.closed_on_time, self.counted)

    @property
    def satisfied_rate(self) -> float | None:
        """满意率: 4 or 5 stars, of the rated cases."""
        return _share(self.satisfied, self.rated)

    @property
    def visit_rate(self) -> float | None:
        """回访率: rated by the resident, of the closed cases."""
        return _share(self.rated, self.closed)

    @property
    def redo_rate(self) -> float | None:
        """重办率: reopened by the resident or sent back by 核查, of those ever resolved."""
        return _share(self.redone, self.resolved)

    @property
    def mean_rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None

    @property
    def score(self) -> float:
        """考核得分 out of 100 (WEIGHTS); a measure with nothing to judge gives no points."""
        redo = self.redo_rate
        return round(WEIGHTS["on_time_close"] * (self.on_time_close_rate or 0)
                     + WEIGHTS["accept"] * (self.accept_rate or 0)
                     + WEIGHTS["satisfied"] * (self.satisfied_rate or 0)
                     + WEIGHTS["not_redone"] * (1 - redo if redo is not None else 0), 1)
