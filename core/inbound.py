"""The log of inbound platform updates: stored before acknowledging, deduplicated by id."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel


class InboundUpdate(SQLModel, table=True):
    __tablename__ = "inbound_update"
    __table_args__ = (
        sa.UniqueConstraint("platform", "update_id", name="uq_inbound_platform_update"),
        sa.Index("ix_inbound_status", "status", "received_at"),
        sa.Index("ix_inbound_sender_time", "platform", "sender_id", "received_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    update_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    received_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    status: str = Field(default="received", sa_column=sa.Column(sa.String(12), nullable=False))
    processed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # Who sent it (None for updates we could not read): flood control counts by it.
    sender_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(128)))


IU = InboundUpdate.__table__  # type: ignore[attr-defined]


def record(session: Session, *, platform: str, update_id: str, payload: dict[str, Any],
           now: datetime, sender_id: str | None = None, handled: bool = False) -> int | None:
    """Store an update; None when this platform already delivered this id (a retry).
    `handled`: it is handled in this same transaction, so it is stored as done (`finish`
    with an error if that fails), one UPDATE fewer per update."""
    row = session.execute(_record_stmt(session.get_bind().dialect.name), {
        "platform": platform, "update_id": str(update_id)[:128], "payload": payload,
        "received_at": now, "status": "done" if handled else "received",
        "processed_at": now if handled else None,
        "sender_id": sender_id[:128] if sender_id is not None else None}).first()
    return None if row is None else int(row[0])


@functools.cache
def _record_stmt(dialect: str) -> Any:
    # Built once (core/db.py, "Statements built once"): every update runs it.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(IU)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(IU)
    stmt = stmt.values({c: sa.bindparam(c) for c in (
        "platform", "update_id", "payload", "received_at", "status", "processed_at",
        "sender_id")})
    return stmt.on_conflict_do_nothing(index_elements=["platform", "update_id"]).returning(
        IU.c.id)


def recent_from(session: Session, *, platform: str, sender_id: str, since: datetime) -> int:
    """How many updates this person sent since then (every worker's, from the shared log)."""
    return int(session.execute(_recent_stmt(), {
        "platform": platform, "sender_id": sender_id, "since": since}).scalar_one())


@functools.cache
def _recent_stmt() -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(IU).where(
        IU.c.platform == sa.bindparam("platform"), IU.c.sender_id == sa.bindparam("sender_id"),
        IU.c.received_at > sa.bindparam("since"))


def finish(session: Session, *, inbound_id: int, now: datetime, error: str | None = None) -> None:
    """Mark an update handled (or failed, with why)."""
    session.execute(
        sa.update(IU).where(IU.c.id == inbound_id).values(
            status="failed" if error else "done", processed_at=now,
            error=error[:4000] if error else None,
        )
    )


def unfinished(session: Session, *, platform: str, limit: int = 100) -> list[InboundUpdate]:
    """Updates stored but not handled (a crash between storing and handling)."""
    from sqlmodel import select

    q = select(InboundUpdate).where(
        InboundUpdate.platform == platform, InboundUpdate.status == "received"
    ).order_by(sa.text("id")).limit(limit)
    return list(session.exec(q))
