"""The tables of notices: the notice, one row per recipient, and what happened to it.

A recipient row holds only what core decides (who, why, confirmed or not); whether its
message was delivered or given up is read from the outbox row the notifier wrote for it
(`notice_key`), so there is one record of delivery, the dispatcher's.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.hierarchy.model import PathType


class NoticeState(StrEnum):
    open = "open"  # recipients may still confirm
    closed = "closed"  # the deadline passed (or the author closed it): presses are refused


class NoticeEventKind(StrEnum):
    sent = "sent"  # fanned out: every recipient gets their copy
    confirmed = "confirmed"  # one recipient said 收到
    repinged = "repinged"  # the one reminder to those who have not confirmed
    deadline = "deadline"  # the deadline passed: each superior gets their list


class Notice(SQLModel, table=True):
    __tablename__ = "notice"
    __table_args__ = (sa.Index("ix_notice_due", "state", "next_due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(foreign_key="node.id", index=True)
    author_id: int | None = Field(default=None, foreign_key="person.id")
    audience: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON,
                                                                         nullable=False))
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    photo: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    document: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    confirm: bool = Field(default=False, nullable=False)
    deadline: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    state: str = Field(default=NoticeState.open.value,
                       sa_column=sa.Column(sa.String(8), nullable=False))
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    reping_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    repinged: bool = Field(default=False, nullable=False)
    # The earlier of the re-ping and the deadline still to come: what the sweep asks for.
    next_due_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    recipients: int = Field(default=0, nullable=False)
    # 满意度测评: residents rate their own 邻长 with 1–5 buttons (core/notices/survey.py).
    survey: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                             server_default=sa.false()))
    # Quiet hours and time zone as the cases keep them (core/cases/policy.py), fixed at sending.
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON,
                                                                            nullable=False))


class NoticeRecipient(SQLModel, table=True):
    __tablename__ = "notice_recipient"
    __table_args__ = (
        sa.UniqueConstraint("notice_id", "person_id", name="uq_notice_recipient"),
        sa.Index("ix_notice_recipient_open", "notice_id", "confirmed_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notice.id")
    person_id: int = Field(foreign_key="person.id", index=True)
    role: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    node_id: int = Field(foreign_key="node.id")  # the node of the post it was sent for
    # Residents of this 邻 without a chat of their own, for the 邻长 to pass it on to.
    relay_households: int = Field(default=0, nullable=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    confirmed_via: str | None = Field(default=None, sa_column=sa.Column(sa.String(16)))


class NoticeEvent(SQLModel, table=True):
    __tablename__ = "notice_event"
    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notice.id", index=True)
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    actor_id: int | None = Field(default=None, foreign_key="person.id")
    at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    detail: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))


class SurveyAnswer(SQLModel, table=True):
    """One resident's answer to a 满意度测评 about their 邻长: one row per resident and survey,
    so a second press changes the score and never counts twice."""

    __tablename__ = "survey_answer"
    __table_args__ = (
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="ck_survey_answer_score"),
        sa.Index("ix_survey_answer_leader", "leader_id", "notice_id"),
    )
    notice_id: int = Field(foreign_key="notice.id", primary_key=True)
    person_id: int = Field(foreign_key="person.id", primary_key=True)
    leader_id: int = Field(foreign_key="person.id")  # the 邻长 of the resident's 邻
    node_path: str = Field(sa_column=sa.Column(PathType, nullable=False))  # that 邻's path
    score: int = Field(nullable=False)
    answered_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    changed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


NOTICE: sa.Table = Notice.__table__  # type: ignore[attr-defined]
RECIPIENT: sa.Table = NoticeRecipient.__table__  # type: ignore[attr-defined]
EVENT: sa.Table = NoticeEvent.__table__  # type: ignore[attr-defined]
ANSWER: sa.Table = SurveyAnswer.__table__  # type: ignore[attr-defined]


def notice_key(notice_id: int, person_id: int) -> str:
    """The dedupe key of a recipient's first copy: its outbox row tells delivery."""
    return f"notice{notice_id}:p{person_id}"
