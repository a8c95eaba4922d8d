"""Cases, their append-only events, attachments, followers and the map colour of nodes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.hierarchy.model import PathType


class State(StrEnum):
    open = "open"  # routed, waiting for the holder's first answer
    accepted = "accepted"  # the holder answered and works on it
    resolved = "resolved"  # the holder says it is fixed; the resident may confirm
    closed = "closed"
    merged = "merged"
    rejected = "rejected"


ACTIVE_STATES = frozenset({State.open, State.accepted, State.resolved})
UNRESOLVED_STATES = frozenset({State.open, State.accepted})
FINAL_STATES = frozenset({State.closed, State.merged, State.rejected})

STATE_LABEL_ZH: dict[State, str] = {
    State.open: "待受理", State.accepted: "处理中", State.resolved: "待确认",
    State.closed: "已办结", State.merged: "已合并", State.rejected: "已驳回",
}


class Stage(StrEnum):
    """What the running deadline of a case is for."""

    reply = "reply"  # the holder's first answer
    handle = "handle"  # an accepted case being worked on
    department = "department"  # a whistled department must report in
    confirm = "confirm"  # the resident confirms and rates, or the case closes unrated
    verify = "verify"  # a superior checks a resolution before the resident is asked (核查)


class EventKind(StrEnum):
    opened = "opened"
    added = "added"
    accepted = "accepted"
    reported_in = "reported_in"  # a department liaison accepted a whistled case (报到)
    replied = "replied"
    asked_more = "asked_more"
    resolved = "resolved"
    escalated = "escalated"
    whistled = "whistled"
    merged = "merged"
    merged_in = "merged_in"
    rejected = "rejected"
    reassigned = "reassigned"
    confirmed = "confirmed"
    reopened = "reopened"
    auto_closed = "auto_closed"
    nagged = "nagged"
    overdue = "overdue"  # the deadline passed at the top of the chain: nobody above to take it
    refused = "refused"  # somebody tried an action they may not take
    categorized = "categorized"  # the resident or a leader chose the case's category
    routed = "routed"  # a routing rule chose the first holder (detail: the rule and who is told)
    rerouted = "rerouted"  # recategorised: a routing rule handed the case to another holder
    verify_requested = "verify_requested"  # 已解决, waiting for the superior's 核查
    verified = "verified"  # 核查通过
    sent_back = "sent_back"  # 退回重办 (note: the reason; detail n: how many times so far)
    purged = "purged"  # `linzhang purge` anonymised the closed case's words and files
    # A chat platform said the holder (or the resident) can no longer be reached anywhere.
    holder_unreachable = "holder_unreachable"
    resident_unreachable = "resident_unreachable"


class AttachmentKind(StrEnum):
    photo = "photo"
    voice = "voice"
    video = "video"
    file = "file"
    location = "location"


_TS = sa.DateTime(timezone=True)


class Case(SQLModel, table=True):
    """One report and everything that happens to it (工单)."""

    __tablename__ = "cases"
    __table_args__ = (
        sa.Index("ix_cases_holder_state", "holder_id", "state"),
        sa.Index("ix_cases_path_opened", "node_path", "opened_at"),
        # The dashboard map counts unfinished and overdue cases per subtree from this index alone.
        sa.Index("ix_cases_state_path_deadline", "state", "node_path", "deadline_at",
                 "missed_deadlines"),
        # Duplicate suggestion: open cases within 100 m by their coarse cell (duplicates.py).
        sa.Index("ix_cases_cell_state", "geo_cell", "state"),
        sa.CheckConstraint("rating IS NULL OR (rating BETWEEN 1 AND 5)", name="ck_cases_rating"),
    )
    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="person.id", index=True)
    opened_by_id: int = Field(foreign_key="person.id")
    home_node_id: int = Field(foreign_key="node.id")
    # The home neighborhood's path, copied so that subtree figures need no join.
    node_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    category_id: int | None = Field(default=None, foreign_key="category.id")
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    state: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    version: int = Field(default=1, nullable=False)

    holder_id: int | None = Field(default=None, foreign_key="person.id")
    holder_role: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    holder_node_id: int | None = Field(default=None, foreign_key="node.id")
    first_holder_id: int | None = Field(default=None, foreign_key="person.id")
    first_holder_role: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))

    # The deadline engine: what the running deadline is for, when it falls, and the next moment
    # the sweep must look at this case (a nag or the deadline); NULL once nothing is running.
    stage: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    stage_started_at: datetime | None = Field(default=None, sa_type=_TS)
    deadline_at: datetime | None = Field(default=None, sa_type=_TS)
    next_due_at: datetime | None = Field(default=None, sa_type=_TS, index=True)
    nags_sent: int = Field(default=0, nullable=False)
    stage_renewals: int = Field(default=0, nullable=False)
    escalations: int = Field(default=0, nullable=False)
    # Deadlines the sweep found missed (auto-escalated, or overdue at the top of the chain): a
    # case that ever missed one counts as overdue (超期) until it is resolved, even though each
    # miss gives the next holder a fresh deadline.
    missed_deadlines: int = Field(default=0, nullable=False,
                                  sa_column_kwargs={"server_default": "0"})

    opened_at: datetime = Field(sa_type=_TS, nullable=False)
    updated_at: datetime = Field(sa_type=_TS, nullable=False)
    first_reply_at: datetime | None = Field(default=None, sa_type=_TS)
    first_reply_role: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    first_reply_on_time: bool | None = None
    accepted_at: datetime | None = Field(default=None, sa_type=_TS)
    resolved_at: datetime | None = Field(default=None, sa_type=_TS)
    closed_at: datetime | None = Field(default=None, sa_type=_TS)
    close_reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))

    department_node_id: int | None = Field(default=None, foreign_key="node.id")
    department_reported_at: datetime | None = Field(default=None, sa_type=_TS)

    rating: int | None = None
    rating_comment: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    reject_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    merged_into_id: int | None = Field(default=None, foreign_key="cases.id")
    # Where the resident said it is (their first location), and its coarse cell of 0.002°.
    latitude: float | None = None
    longitude: float | None = None
    geo_cell: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    # The likely originals its cards name (可能重复), found once at its first card ("12,15";
    # "" none; NULL not looked yet): a card refreshed on every escalation must not search the
    # 组 again (core/cases/duplicates.likely_originals).
    maybe_dupes: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    # The away 邻长 (or other leader) whose case the holder covers as stand-in (代张三);
    # /back hands the case back to them while the stand-in still holds it.
    covering_for_id: int | None = Field(default=None, foreign_key="person.id")
    # The deadline policy in force when the case opened (policy.CasePolicy.to_json()).
    policy: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))


class CaseEvent(SQLModel, table=True):
    """One change to a case; never updated or deleted (migration triggers enforce it)."""

    __tablename__ = "case_event"
    # (case_id, kind, at): one case's own words, read per update without touching the table's
    # history (case_to_append_to); (kind, at): the figures' time windows.
    __table_args__ = (sa.Index("ix_case_event_kind_at", "kind", "at"),
                      sa.Index("ix_case_event_case_kind_at", "case_id", "kind", "at"))
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    at: datetime = Field(sa_type=_TS, nullable=False)
    actor_id: int | None = Field(default=None, foreign_key="person.id")  # None: the system
    kind: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    from_state: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    to_state: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    # The holder's role before the event: escalations and first replies are counted per tier.
    role: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    holder_id: int | None = Field(default=None, foreign_key="person.id")  # holder after it
    via: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )


class Attachment(SQLModel, table=True):
    """A photo, voice note, video, file or location added to a case."""

    __tablename__ = "case_attachment"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    event_id: int | None = Field(default=None, foreign_key="case_event.id")
    kind: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))
    # "report" with the first message, "addition" later, "after" with a resolution (整改后).
    purpose: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))
    platform: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))
    file_ref: str | None = Field(default=None, sa_column=sa.Column(sa.String(500)))
    mime: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    size: int | None = None
    caption: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    latitude: float | None = None
    longitude: float | None = None
    added_by: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = Field(sa_type=_TS, nullable=False)
    # Fetching the file from the platform into the media store: "pending" until a fetch job
    # has it ("stored") or refused it ("rejected", with why); NULL for locations.
    fetch_status: str | None = Field(default=None, sa_column=sa.Column(sa.String(10),
                                                                       index=True))
    stored_ref: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    thumb_ref: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    fetch_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Where a photo's EXIF said it was taken: kept for staff, stripped from the file itself.
    exif_latitude: float | None = None
    exif_longitude: float | None = None


class CaseFollower(SQLModel, table=True):
    """A resident who gets a case's updates: the reporter, and reporters of merged duplicates."""

    __tablename__ = "case_follower"
    case_id: int = Field(foreign_key="cases.id", primary_key=True)
    person_id: int = Field(foreign_key="person.id", primary_key=True, index=True)


class Away(SQLModel, table=True):
    """A leader's absence (/away): while it runs, cases routed to them go to the stand-in."""

    __tablename__ = "away"
    __table_args__ = (sa.Index("ix_away_person_ended", "person_id", "ended_at"),
                      sa.Index("ix_away_ended_ends", "ended_at", "ends_at"))
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id")
    # The stand-in's post, kept so that routing to it needs no lookup.
    stand_in_id: int = Field(foreign_key="person.id")
    stand_in_role: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    stand_in_node_id: int = Field(foreign_key="node.id")
    set_by_id: int = Field(foreign_key="person.id")
    starts_at: datetime = Field(sa_type=_TS, nullable=False)
    ends_at: datetime = Field(sa_type=_TS, nullable=False)
    ended_at: datetime | None = Field(default=None, sa_type=_TS)
    end_reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(8)))  # back/auto


class NodeWarning(SQLModel, table=True):
    """The last warning colour shown for a node, kept so the colour does not flicker."""

    __tablename__ = "node_warning"
    node_id: int = Field(foreign_key="node.id", primary_key=True)
    level: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    changed_at: datetime = Field(sa_type=_TS, nullable=False)


# The tables themselves, for queries in SQL terms (typed columns, no ORM attribute noise).
CASES: sa.Table = Case.__table__  # type: ignore[attr-defined]
EVENTS: sa.Table = CaseEvent.__table__  # type: ignore[attr-defined]
ATTACHMENTS: sa.Table = Attachment.__table__  # type: ignore[attr-defined]
FOLLOWERS: sa.Table = CaseFollower.__table__  # type: ignore[attr-defined]
AWAY: sa.Table = Away.__table__  # type: ignore[attr-defined]
WARNINGS: sa.Table = NodeWarning.__table__  # type: ignore[attr-defined]
