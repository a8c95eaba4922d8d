"""Open311 client systems (one api_key each, scoped to a subtree) and the requests they filed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.hierarchy.model import PathType

_TS = sa.DateTime(timezone=True)


class Open311Client(SQLModel, table=True):
    """A client system (a 12345 hotline, a city app) and its api_key, of which only a hash is
    kept: a copy of the database files nothing."""

    __tablename__ = "open311_client"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(60), nullable=False, unique=True))
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    # The key's first characters, so that an operator can tell keys apart in `key list`.
    key_prefix: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))
    scope_node_id: int = Field(foreign_key="node.id")
    # Who the client's cases are reported by: a person with no post and no chat account.
    person_id: int = Field(foreign_key="person.id")
    created_at: datetime = Field(sa_type=_TS, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=_TS)


class Open311Request(SQLModel, table=True):
    """What a client posted beside the case it became (the case's source, read back by GET)."""

    __tablename__ = "open311_request"
    __table_args__ = (sa.Index("ix_open311_request_scope", "scope_path"),)
    case_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("cases.id"),
                                             primary_key=True))
    client_id: int = Field(foreign_key="open311_client.id", index=True)
    # The filing key's scope then: a request placed at an office above the scope stays
    # readable by the key that filed it.
    scope_path: str = Field(sa_column=sa.Column(PathType, nullable=False))
    placed_by: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))
    address_string: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    address_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(60)))
    email: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    device_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    account_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    first_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    last_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    phone: str | None = Field(default=None, sa_column=sa.Column(sa.String(40)))
    media_url: str | None = Field(default=None, sa_column=sa.Column(sa.String(500)))


CLIENTS: sa.Table = Open311Client.__table__  # type: ignore[attr-defined]
REQUESTS: sa.Table = Open311Request.__table__  # type: ignore[attr-defined]


class Open311Hook(SQLModel, table=True):
    """A client system's status webhook: where the state changes of its cases (of every case
    in its subtree when `scope_wide`) are POSTed, and the secret they are signed with.

    The secret is kept as it was handed out: signing needs it back, and whoever reads this
    table already reads the cases the hook carries (README, "Status webhooks")."""

    __tablename__ = "open311_hook"
    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("open311_client.id"),
                                               nullable=False, unique=True))
    url: str = Field(sa_column=sa.Column(sa.String(500), nullable=False))
    secret: str = Field(sa_column=sa.Column(sa.String(80), nullable=False))
    scope_wide: bool = Field(default=False, nullable=False)
    created_at: datetime = Field(sa_type=_TS, nullable=False)
    # A receiver that answered 410 Gone: nothing more is written for it until `hook set`.
    disabled_at: datetime | None = Field(default=None, sa_type=_TS)
    disabled_why: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    # The start of a run of dead rows the admins were told about (one alert per episode); a
    # delivery that gets through ends it.
    failing_since: datetime | None = Field(default=None, sa_type=_TS)


HOOKS: sa.Table = Open311Hook.__table__  # type: ignore[attr-defined]
