"""The city tree: nodes, people, the posts they hold, their chat identities and bound chats."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class Level(StrEnum):
    district = "district"
    town = "town"
    village = "village"
    area = "area"
    group = "group"
    neighborhood = "neighborhood"
    department = "department"


class Role(StrEnum):
    secretary = "secretary"
    area_leader = "area_leader"
    group_leader = "group_leader"
    neighbor_leader = "neighbor_leader"
    resident = "resident"
    department = "department"
    admin = "admin"


class Platform(StrEnum):
    telegram = "telegram"
    wechat = "wechat"
    wecom = "wecom"
    web = "web"
    sms = "sms"  # a phone number that replied to our text (bot/handlers/sms)


class Proof(StrEnum):
    """How a chat account came to belong to a person (README, "Security and personal data")."""

    import_ = "import"  # the import file's chat id column
    contact = "contact"  # Telegram's shared contact whose user_id is the sender
    invite = "invite"  # a 邻's poster: a new person, a resident post only
    person_invite = "person_invite"  # an invite an admin made for this very person
    code = "code"  # a one-time code delivered through a channel already bound to the person
    admin = "admin"  # an admin of the person's node confirmed it
    resident_confirmed = "resident_confirmed"  # a typed phone number the 邻长 confirmed
    legacy = "legacy"  # bound before proofs were recorded, on a platform that always had one
    legacy_phone = "legacy_phone"  # bound before proofs on WeChat: perhaps by a typed number
    demo = "demo"  # the web chat's person switcher, in demo mode only
    sms = "sms"  # the number on file replied to our text: the carrier's word only


# Proofs strong enough for a dashboard sign-in and for leader, department and admin posts.
STRONG_PROOFS = frozenset({Proof.import_, Proof.contact, Proof.person_invite, Proof.code,
                           Proof.admin, Proof.legacy, Proof.demo})
# A typed phone number proves nothing about posts: such an account acts as a resident only.
RESIDENT_ONLY_PROOFS = frozenset({Proof.resident_confirmed, Proof.legacy_phone, Proof.sms})


class Tier(StrEnum):
    """Which pair of tiers a bound chat group mirrors."""

    town_secretary = "town_secretary"  # 乡镇+书记, bound to a town
    secretary_area = "secretary_area"  # 书记+片长, bound to a village
    area_group = "area_group"  # 片长+组长, bound to an area
    group_neighbor = "group_neighbor"  # 组长+邻长, bound to a group
    neighbor_resident = "neighbor_resident"  # 邻长+居民, bound to a neighborhood


# Materialized paths compare byte-wise; PostgreSQL's default collation would not.
PathType = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql")


class Node(SQLModel, table=True):
    # The towns or villages of a subtree without reading the rest of it (考核's rankings).
    __table_args__ = (sa.Index("ix_node_level_path", "level", "path"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=sa.Column(sa.String(40), nullable=False, unique=True))
    parent_id: int | None = Field(default=None, foreign_key="node.id", index=True)
    level: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    # "/1/17/230/": ids from the root down, for subtree and ancestor queries without recursion.
    path: str = Field(sa_column=sa.Column(PathType, nullable=False, index=True))
    latitude: float | None = None
    longitude: float | None = None


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    # Unique when present; a person who joined by invite code may not have given one yet.
    phone: str | None = Field(default=None, sa_column=sa.Column(sa.String(20), unique=True))
    language: str = Field(default="zh", sa_column=sa.Column(sa.String(8), nullable=False))
    created_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Post(SQLModel, table=True):
    """A role held by a person on a node (one members.csv row)."""

    __table_args__ = (
        sa.UniqueConstraint("person_id", "role", "node_id", name="uq_post_person_role_node"),
        sa.Index("ix_post_node_role", "node_id", "role"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: the unique (person_id, role, node_id) index leads with it.
    person_id: int = Field(foreign_key="person.id")
    node_id: int = Field(foreign_key="node.id")
    role: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    address: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    # A resident a campaign found gone (已搬离): the row is kept, but routing and member lists
    # pass it by (core/campaigns/registry.py).
    moved_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ChatIdentity(SQLModel, table=True):
    """One chat account of a person; a person may have several."""

    __tablename__ = "chat_identity"
    __table_args__ = (
        sa.UniqueConstraint("platform", "external_id", name="uq_identity_platform_external"),
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    external_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    unreachable: bool = Field(default=False)
    last_seen_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    # The import writes rows in bulk SQL without naming this column: its default is the import.
    proof: str = Field(default=Proof.import_.value, sa_column=sa.Column(
        sa.String(20), nullable=False, server_default=Proof.import_.value))


class BindRequest(SQLModel, table=True):
    """A stranger typed a resident's phone number: bound only once the 邻长 (or an admin)
    confirms with one tap; refused, expired or superseded requests stay as a record."""

    __tablename__ = "bind_request"
    __table_args__ = (sa.Index("ix_bind_request_sender", "platform", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    external_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    person_id: int = Field(foreign_key="person.id", index=True)
    state: str = Field(default="open", sa_column=sa.Column(sa.String(12), nullable=False))
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    decided_by: int | None = Field(default=None, foreign_key="person.id")
    decided_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ChatBinding(SQLModel, table=True):
    """A chat group bound to a node and the pair of tiers it mirrors."""

    __tablename__ = "chat_binding"
    __table_args__ = (sa.UniqueConstraint("platform", "chat_id", name="uq_binding_platform_chat"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    node_id: int = Field(foreign_key="node.id", index=True)
    tier: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    title: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    bound_by: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Category(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(50), nullable=False, unique=True))
    department_suffix: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    # FORMATS.md's optional columns: the 大类 of a 小类, time limits (core/cases/worktime.py
    # texts; NULL: the deployment's default), 需核查, and 直派 (a department suffix or a role).
    parent_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(50)))
    answer_limit: str | None = Field(default=None, sa_column=sa.Column(sa.String(12)))
    handle_limit: str | None = Field(default=None, sa_column=sa.Column(sa.String(12)))
    verify: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False,
                                                            server_default=sa.false()))
    route_to: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    # 常用答复: the holder's ready answers, separated by "|" (README, categories file).
    canned: str | None = Field(default=None, sa_column=sa.Column(sa.Text))


def carries_messages(identity: sa.Table) -> sa.ColumnElement[bool]:
    """Whether an identity row may be sent its person's messages: reachable, and either bound by
    a strong proof or belonging to someone who holds no post but resident's — an account bound by
    a typed number never receives a leader's case cards, addresses or digests."""
    posts: sa.Table = Post.__table__  # type: ignore[attr-defined]
    beyond_resident = sa.exists().where(posts.c.person_id == identity.c.person_id,
                                        posts.c.role != Role.resident.value)
    return sa.and_(identity.c.unreachable.is_(False),
                   sa.or_(identity.c.proof.not_in([p.value for p in RESIDENT_ONLY_PROOFS]),
                          sa.not_(beyond_resident)))
