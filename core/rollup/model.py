"""The rollup tables. Each row sums the cases of one village (村/社区) opened on one local day;
a village-day is recomputed as a whole from the cases whenever something marks it dirty."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.hierarchy.model import PathType

_TS = sa.DateTime(timezone=True)


class RollupDay(SQLModel, table=True):
    """Counts of the cases a village received on one day (and what became of them since)."""

    __tablename__ = "rollup_day"
    __table_args__ = (sa.Index("ix_rollup_day_day_path", "day", "village_path"),)
    village_id: int = Field(primary_key=True, foreign_key="node.id")
    day: date = Field(primary_key=True)
    village_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    received: int = 0
    closed: int = 0
    rejected: int = 0
    merged: int = 0
    judged: int = 0  # first replies judged on time or late
    on_time: int = 0
    late_replies: int = 0  # first replies that came after the reply deadline
    to_close: int = 0  # closed with a close time (the base of the median time to close)
    rating_sum: int = 0
    rated: int = 0


class RollupTier(SQLModel, table=True):
    """Per tier: first replies to the day's cases (and how many on time), the deadlines that
    tier let pass on them, and the escalations away from that tier that happened that day."""

    __tablename__ = "rollup_tier"
    # Covering: the figures read a period's rows from the index alone.
    __table_args__ = (sa.Index("ix_rollup_tier_day_path", "day", "village_path", "role",
                               "replied", "on_time", "timeouts", "escalations"),)
    village_id: int = Field(primary_key=True, foreign_key="node.id")
    day: date = Field(primary_key=True)
    role: str = Field(primary_key=True, max_length=20)
    village_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    replied: int = 0
    on_time: int = 0
    timeouts: int = 0
    escalations: int = 0


class RollupHist(SQLModel, table=True):
    """A log-scale histogram of times to first reply and to close, for medians by summing."""

    __tablename__ = "rollup_hist"
    __table_args__ = (sa.Index("ix_rollup_hist_day_path", "day", "village_path", "kind",
                               "bucket", "n"),)
    village_id: int = Field(primary_key=True, foreign_key="node.id")
    day: date = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=8)  # "reply" | "close"
    bucket: int = Field(primary_key=True)
    village_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    n: int = 0


class RollupRating(SQLModel, table=True):
    """Ratings of cases this 邻长 resolved, by the day the case was opened."""

    __tablename__ = "rollup_rating"
    __table_args__ = (sa.Index("ix_rollup_rating_day_path", "day", "village_path",
                               "person_id", "rated", "rating_sum"),)
    village_id: int = Field(primary_key=True, foreign_key="node.id")
    day: date = Field(primary_key=True)
    person_id: int = Field(primary_key=True, foreign_key="person.id")
    village_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    rated: int = 0
    rating_sum: int = 0


class RollupCategory(SQLModel, table=True):
    """Cases a village received on one day per category (0: not categorised), and how many
    of them are closed: the figures page's by-category chart for towns and districts."""

    __tablename__ = "rollup_category"
    __table_args__ = (sa.Index("ix_rollup_category_day_path", "day", "village_path",
                               "category_id", "received", "closed"),)
    village_id: int = Field(primary_key=True, foreign_key="node.id")
    day: date = Field(primary_key=True)
    category_id: int = Field(primary_key=True)
    village_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    received: int = 0
    closed: int = 0


class RollupKaohe(SQLModel, table=True):
    """考核 counts of the cases a village received in one local month, per unit they are
    credited to: `node` (the village itself), `tier` (the first holder's post), `person` (the
    first holder) and `dept` (the department whistled to). Measures in core/kaohe/measures.py.
    By month, not day: 考核 reads whole months, and a city's month is then a few tens of
    thousands of rows; a dirty village-day recomputes its village-month whole."""

    __tablename__ = "rollup_kaohe"
    # Covering: a month's rows of one kind are read from the index alone.
    __table_args__ = (sa.Index("ix_rollup_kaohe_kind_month_path", "kind", "month",
                               "village_path", "unit_id", "role", "received", "merged",
                               "judged", "signed", "closed", "closed_on_time", "resolved",
                               "redone", "rated", "satisfied", "rating_sum", "overdue"),)
    village_id: int = Field(primary_key=True, foreign_key="node.id")
    month: date = Field(primary_key=True)  # its first day
    kind: str = Field(primary_key=True, max_length=8)
    unit_id: int = Field(primary_key=True)  # person or department id; 0 for node and tier
    role: str = Field(primary_key=True, max_length=20)  # the post ("" for node and dept)
    village_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    received: int = 0
    merged: int = 0
    judged: int = 0  # the first answer came, or a deadline passed without one
    signed: int = 0  # the first holder itself answered within its answer limit (签收)
    closed: int = 0
    closed_on_time: int = 0  # closed, and never missed a deadline
    resolved: int = 0  # reached 已解决 at least once
    redone: int = 0  # reopened by the resident or sent back by 核查
    rated: int = 0
    satisfied: int = 0  # rated 4 or 5
    rating_sum: int = 0
    overdue: int = 0  # missed a deadline (超期)


class RollupDirty(SQLModel, table=True):
    """A case of this 邻 opened, or an event on it happened, in this quarter hour (UTC): the
    village-day it falls on must be recomputed. Written in the same transaction as the change."""

    __tablename__ = "rollup_dirty"
    id: int | None = Field(default=None, primary_key=True)
    node_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    at: datetime = Field(sa_type=_TS, nullable=False)


class RollupState(SQLModel, table=True):
    """One row: when the rollups were last brought up to date, and whether they must be
    rebuilt from scratch (after the migration that created them, or on request)."""

    __tablename__ = "rollup_state"
    id: int = Field(default=1, primary_key=True)
    refreshed_at: datetime | None = Field(default=None, sa_type=_TS)
    rebuild: bool = True


DAY = RollupDay.__table__  # type: ignore[attr-defined]
TIER = RollupTier.__table__  # type: ignore[attr-defined]
HIST = RollupHist.__table__  # type: ignore[attr-defined]
RATING = RollupRating.__table__  # type: ignore[attr-defined]
CATEGORY = RollupCategory.__table__  # type: ignore[attr-defined]
KAOHE = RollupKaohe.__table__  # type: ignore[attr-defined]
DIRTY = RollupDirty.__table__  # type: ignore[attr-defined]
STATE = RollupState.__table__  # type: ignore[attr-defined]
