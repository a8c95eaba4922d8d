"""What someone is in the middle of, kept in the database so any worker takes the next step;
and the reports of people who have not joined yet, kept until they do.

A state named `await_*` is a prompt: the bot asked for words and takes the next message as
the answer. The rule for every prompt, whatever fails:
- it takes one answer and is gone after it, refused or not: bot/dispatch.py drops it
  (`drop_prompt`) after a refused step's rollback, or a crash, tells the person why and gives
  back the words it could not use, so their next message is handled afresh;
- a resident's words are never swallowed: words their prompt can no longer take (the case
  closed while they typed) are filed as a report (bot/flows/leader.py, `_add_or_report`). A
  leader's refused answer is not a report; it comes back to them in the refusal.
Commands, and messages a prompt does not wait for, go their usual way (bot/flows/router.py)."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from core.clock import as_utc
from core.db import memo

PROMPT_PREFIX = "await_"


class Conversation(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("platform", "chat_id", "user_id", name="uq_conversation_who"),
    )
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    user_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    state: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON,
                                                                          nullable=False))
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class PendingReport(SQLModel, table=True):
    """Something a stranger sent before joining: routed as a case once they join."""

    __tablename__ = "pending_report"
    __table_args__ = (sa.Index("ix_pending_sender", "platform", "sender_id"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    sender_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    received_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    case_id: int | None = Field(default=None, foreign_key="cases.id")


@functools.cache
def _find_stmt() -> Any:
    # Built once (core/db.py, "Statements built once"): every update runs it.
    return select(Conversation).where(
        Conversation.platform == sa.bindparam("p"), Conversation.chat_id == sa.bindparam("c"),
        Conversation.user_id == sa.bindparam("u"))


_CONVERSATIONS = "conversations"  # (platform, chat, user) → the row or None, this transaction


def _find(session: Session, platform: str, chat_id: str, user_id: str) -> Conversation | None:
    # An update reads the conversation, and often writes it after: one read for both.
    known = memo(session, _CONVERSATIONS)
    key = (platform, chat_id, user_id)
    if key not in known:
        known[key] = session.execute(
            _find_stmt(), {"p": platform, "c": chat_id, "u": user_id}).scalars().first()
    found: Conversation | None = known[key]
    return found


def _remember(session: Session, platform: str, chat_id: str, user_id: str,
              conv: Conversation | None = None) -> None:
    """What the conversation is now, as this transaction wrote it (None: there is none)."""
    memo(session, _CONVERSATIONS)[(platform, chat_id, user_id)] = conv


def get_state(session: Session, *, platform: str, chat_id: str, user_id: str, now: datetime,
              ttl: timedelta = timedelta(hours=24)) -> Conversation | None:
    """The conversation someone is in, unless it went stale."""
    conv = _find(session, platform, chat_id, user_id)
    if conv is None:
        return None
    if now - as_utc(conv.updated_at) > ttl:
        session.delete(conv)
        _remember(session, platform, chat_id, user_id)
        return None
    return conv


def set_state(session: Session, *, platform: str, chat_id: str, user_id: str, state: str,
              data: dict[str, Any], now: datetime) -> None:
    """Remember what someone is in the middle of."""
    conv = _find(session, platform, chat_id, user_id)
    if conv is None:
        conv = Conversation(platform=platform, chat_id=chat_id, user_id=user_id, state=state,
                            data=data, updated_at=now)
        session.add(conv)
        _remember(session, platform, chat_id, user_id, conv)
    else:
        conv.state, conv.data, conv.updated_at = state, data, now


def clear_state(session: Session, *, platform: str, chat_id: str, user_id: str) -> None:
    """Forget what someone was in the middle of."""
    _remember(session, platform, chat_id, user_id)
    session.execute(sa.delete(Conversation.__table__).where(  # type: ignore[attr-defined]
        sa.text("platform = :p AND chat_id = :c AND user_id = :u")
    ), {"p": platform, "c": chat_id, "u": user_id})


def drop_prompt(session: Session, *, platform: str, chat_id: str, user_id: str) -> str | None:
    """End the prompt someone is in, if any; which one it was."""
    conv = _find(session, platform, chat_id, user_id)
    if conv is None or not conv.state.startswith(PROMPT_PREFIX):
        return None
    session.delete(conv)
    _remember(session, platform, chat_id, user_id)
    session.flush()
    return conv.state


def keep_pending(session: Session, *, platform: str, sender_id: str, chat_id: str,
                 payload: dict[str, Any], now: datetime) -> None:
    """Keep what a stranger sent until they join."""
    session.add(PendingReport(platform=platform, sender_id=sender_id, chat_id=chat_id,
                              payload=payload, received_at=now))


def take_pending(session: Session, *, platform: str, sender_id: str) -> list[PendingReport]:
    """The stranger's unrouted reports, oldest first."""
    return list(session.exec(select(PendingReport).where(
        PendingReport.platform == platform, PendingReport.sender_id == sender_id,
        PendingReport.case_id.is_(None),  # type: ignore[union-attr]
    ).order_by(sa.text("id"))))
