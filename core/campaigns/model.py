"""A campaign, its household items, the per-node counters of the progress board, the new
people waiting for a 组长's confirmation, and the campaign events the notifier reads."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# The outcomes a household can get when the starter names none (the seeds' 敲门行动).
DEFAULT_OUTCOMES = ("已完成", "不在家", "拒绝", "已搬离", "有新增人员")
# Outcomes that feed the registry back, by their wording in the campaign's outcome list.
MOVED = "已搬离"
NEWCOMER = "有新增人员"
# The counter row of a node's household total (the other rows count one outcome index each).
TOTAL = -1
MAX_OUTCOMES = 12
# The outcomes of a notice's relay (core/notices/relay.py): told, not at home, moved away. The
# last one is MOVED, so a relay feeds the registry back like any campaign.
RELAY_OUTCOMES = ("已转达", "不在家", MOVED)


class CampaignState(StrEnum):
    open = "open"
    closed = "closed"


class CampaignEventKind(StrEnum):
    started = "started"  # every 邻长 with households gets their checklist
    nagged = "nagged"  # half time: the 邻长 behind schedule are reminded
    deadline = "deadline"  # each 组长 hears which of their 邻长 are not done
    newcomer = "newcomer"  # a 有新增人员 waits for the 组长's one-tap confirmation


class Campaign(SQLModel, table=True):
    __table_args__ = (sa.Index("ix_campaign_next_due", "next_due_at"),)
    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(foreign_key="node.id", index=True)
    title: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    instructions: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    outcomes: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    state: str = Field(default=CampaignState.open.value,
                       sa_column=sa.Column(sa.String(8), nullable=False))
    started_by: int | None = Field(default=None, foreign_key="person.id")
    started_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    deadline_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    closed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # The deadline policy at the start (quiet hours, nag cap), as a case keeps its own.
    policy: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    nags_sent: int = Field(default=0, nullable=False)
    # When the sweep must look next (a nag, the deadline); None once the 组长 were told.
    next_due_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # Set when the campaign is a notice's relay: its households are the residents without a
    # chat, told by their 邻长 (the notice's page shows its progress; its board says 转达).
    notice_id: int | None = Field(default=None, foreign_key="notice.id", index=True)


class CampaignItem(SQLModel, table=True):
    """One household of one 邻 in one campaign, and the outcome it got."""

    __tablename__ = "campaign_item"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "node_id", "address", name="uq_campaign_item"),
    )
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id")
    # No index of its own: the unique (campaign_id, node_id, address) serves every lookup, and
    # one index less is a tenth off writing a city's million households.
    node_id: int = Field(foreign_key="node.id")
    address: str = Field(sa_column=sa.Column(sa.String(300), nullable=False))
    outcome: int | None = Field(default=None)  # index into the campaign's outcomes
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    photo: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    marked_by: int | None = Field(default=None, foreign_key="person.id")
    marked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    added_by: int | None = Field(default=None, foreign_key="person.id")  # a 邻长's new one
    # A relay's resident imported without an address is an item alone; `address` then holds a
    # label (masked name) and 已搬离 marks this person's post, not an address's.
    person_id: int | None = Field(default=None, foreign_key="person.id")


class CampaignCount(SQLModel, table=True):
    """How many households of a node's subtree are in the campaign (`outcome` TOTAL) and how
    many got each outcome: the board reads a node and its children here, never the items."""

    __tablename__ = "campaign_count"
    campaign_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("campaign.id"),
                                                 primary_key=True))
    node_id: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    outcome: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    n: int = Field(default=0, nullable=False)


class Newcomer(SQLModel, table=True):
    """Someone a 邻长 found living in a household (有新增人员), a member row only once the
    组长 confirms."""

    __tablename__ = "campaign_newcomer"
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    item_id: int = Field(foreign_key="campaign_item.id", index=True)
    node_id: int = Field(foreign_key="node.id")
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    phone: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    state: str = Field(default="pending", sa_column=sa.Column(sa.String(10), nullable=False))
    reported_by: int = Field(foreign_key="person.id")
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    decided_by: int | None = Field(default=None, foreign_key="person.id")
    decided_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    person_id: int | None = Field(default=None, foreign_key="person.id")


class CampaignEvent(SQLModel, table=True):
    """What happened to a campaign (no message text): bot/notify words it for each person."""

    __tablename__ = "campaign_event"
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    actor_id: int | None = Field(default=None, foreign_key="person.id")
    detail: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))


CAMPAIGNS: sa.Table = Campaign.__table__  # type: ignore[attr-defined]
ITEMS: sa.Table = CampaignItem.__table__  # type: ignore[attr-defined]
COUNTS: sa.Table = CampaignCount.__table__  # type: ignore[attr-defined]
NEWCOMERS: sa.Table = Newcomer.__table__  # type: ignore[attr-defined]
CEVENTS: sa.Table = CampaignEvent.__table__  # type: ignore[attr-defined]
