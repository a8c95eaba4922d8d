"""What the platform senders delivered, and the platform-aware side of the outbox.

A `Delivery` is one message a platform accepted for one outbox row: which chat, which message
id the platform gave it, which part of a split text it was, and whether it is a case card
whose later state edits should follow. The flows ask `message_case` which case a bot message
was about (a leader replying to a card), the senders ask `card_messages` which messages to edit:
a `card_update` row addressed to a person or a bound chat edits that recipient's cards of the
case only, since each copy is worded for its reader (bot/notify/cards.py).

The outbox contract (core/outbox.py) is extended here for senders that serve one platform:
- `claim_for_platform` takes only rows that platform can deliver: a person with a reachable
  identity on it, a chat bound on it, a raw chat addressed on it, or a `card_update` of a case
  whose cards live on it; a row that names its platform without a chat (a `card_update` for
  the copies on one platform: bot/notify/cards.py writes one per platform holding copies)
  only that platform. A person reachable on two platforms is served by whichever transport
  claims the row first: once, on one platform.
- `release` gives a claimed row back untouched (a sender stopping, or a row it cannot serve);
  `defer` puts it off until a moment without counting a failed attempt (Telegram's 429
  `retry_after` is a request to wait, not a failure, so a storm never kills a message);
  `extend_lease` keeps rows that wait in a sender's queue from being claimed by another.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from core.hierarchy.model import ChatBinding, ChatIdentity, Person, carries_messages
from core.outbox import OUT, RETRYABLE, OutboxMessage

CARD_UPDATE = "card_update"
# The platform of rows a client system's status webhook carries (core/open311/hooks.py).
WEBHOOK = "webhook"


class Delivery(SQLModel, table=True):
    """One message a chat platform accepted for one outbox row (one part of it)."""

    __tablename__ = "delivery"
    __table_args__ = (
        sa.UniqueConstraint("outbox_id", "chat_id", "part", name="uq_delivery_outbox_chat_part"),
        sa.Index("ix_delivery_chat_message", "platform", "chat_id", "message_id"),
        sa.Index("ix_delivery_case", "case_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    platform: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    message_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    part: int = Field(default=0, nullable=False)  # index of the part of a split message
    part_type: str = Field(default="text", sa_column=sa.Column(sa.String(12), nullable=False))
    case_id: int | None = Field(default=None, foreign_key="cases.id")
    kind: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    is_card: bool = Field(default=False, nullable=False)
    # WeCom: the code `message/send` answered for a button card; one update of it, within 72 h.
    response_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(128)))
    sent_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


DEL: sa.Table = Delivery.__table__  # type: ignore[attr-defined]
CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
CB: sa.Table = ChatBinding.__table__  # type: ignore[attr-defined]
PEOPLE: sa.Table = Person.__table__  # type: ignore[attr-defined]

# SMS (bot/handlers/sms) reaches a person by their phone, only with the message kinds that
# have a registered template, and only when no chat on another platform the deployment runs
# reaches them (so nobody gets both). Named here: the claim and the unreachable watch agree.
SMS = "sms"
SMS_KINDS = frozenset({"case_opened", "replied", "resolved", "notice", "notice_reping",
                       "sms_urgent"})


@dataclass(frozen=True)
class CardMessage:
    """A delivered case card that edits should keep current."""

    delivery_id: int
    platform: str
    chat_id: str
    message_id: str
    part_type: str
    response_code: str | None = None
    sent_at: datetime | None = None


def record_delivery(session: Session, *, outbox_id: int | None, platform: str, chat_id: str,
                    message_id: str, kind: str, now: datetime, part: int = 0,
                    part_type: str = "text", case_id: int | None = None,
                    is_card: bool = False, response_code: str | None = None) -> None:
    """Remember a message the platform accepted, in the caller's transaction."""
    session.execute(_delivery_stmt(), {
        "outbox_id": outbox_id, "platform": platform, "chat_id": str(chat_id),
        "message_id": str(message_id), "part": part, "part_type": part_type,
        "case_id": case_id, "kind": kind, "is_card": is_card, "response_code": response_code,
        "sent_at": now})


@functools.cache
def _delivery_stmt() -> Any:
    # Built once (core/db.py, "Statements built once"): every message sent writes one.
    return sa.insert(DEL).values({c: sa.bindparam(c) for c in (
        "outbox_id", "platform", "chat_id", "message_id", "part", "part_type", "case_id",
        "kind", "is_card", "response_code", "sent_at")})


def parts_of(session: Session, outbox_ids: Sequence[int]) -> dict[int, set[tuple[str, int]]]:
    """(chat id, part) pairs already delivered for each outbox row, a retry skips them (rows
    with none are left out); one read for them all."""
    done: dict[int, set[tuple[str, int]]] = {}
    if outbox_ids:
        for oid, chat, part in session.execute(_parts_stmt(), {"ids": sorted(outbox_ids)}):
            done.setdefault(int(oid), set()).add((str(chat), int(part)))
    return done


@functools.cache
def _parts_stmt() -> Any:
    return sa.select(DEL.c.outbox_id, DEL.c.chat_id, DEL.c.part).where(
        DEL.c.outbox_id.in_(sa.bindparam("ids", expanding=True)))


def message_case(session: Session, platform: str, chat_id: str, message_id: str) -> int | None:
    """Which case a bot message was about, or None (a reply to a card finds its case here)."""
    q = (
        sa.select(DEL.c.case_id)
        .where(DEL.c.platform == platform, DEL.c.chat_id == str(chat_id),
               DEL.c.message_id == str(message_id))
        .order_by(DEL.c.id.desc())
        .limit(1)
    )
    return session.execute(q).scalar_one_or_none()


def card_messages(session: Session, case_id: int, *, platform: str | None = None,
                  person_id: int | None = None, chat_binding_id: int | None = None
                  ) -> list[CardMessage]:
    """Every card of a case that is still followed, oldest first; with `person_id` or
    `chat_binding_id` (a `card_update` row's recipient), only the cards sent to them: each copy
    of a card is worded for its reader (bot/notify/cards.py)."""
    q = sa.select(DEL.c.id, DEL.c.platform, DEL.c.chat_id, DEL.c.message_id, DEL.c.part_type,
                  DEL.c.response_code, DEL.c.sent_at).where(
        DEL.c.case_id == case_id, DEL.c.is_card.is_(True)
    )
    if platform is not None:
        q = q.where(DEL.c.platform == platform)
    if person_id is not None or chat_binding_id is not None:
        sent = sa.select(OUT.c.id).where(
            OUT.c.case_id == case_id,
            OUT.c.person_id == person_id if person_id is not None
            else OUT.c.chat_binding_id == chat_binding_id)
        q = q.where(DEL.c.outbox_id.in_(sent))
    return [CardMessage(r.id, r.platform, r.chat_id, r.message_id, r.part_type,
                        r.response_code, r.sent_at)
            for r in session.execute(q.order_by(DEL.c.id))]


def use_response_code(session: Session, *, delivery_id: int, code: str | None = None) -> None:
    """A card's update code was spent (or a fresh one came with a press): keep the new one."""
    session.execute(sa.update(DEL).where(DEL.c.id == delivery_id).values(response_code=code))


_OPS = sa.table("ops_state", sa.column("key", sa.String), sa.column("value", sa.Text),
                sa.column("updated_at", sa.DateTime(timezone=True)))
DEPLOYMENT_KEY = "deployment_tag"


def deployment_tag(session: Session, *, now: datetime) -> str:
    """A random tag of this deployment (its database), made once: ids a platform wants unique
    per app (WeCom's task_id) start with it, so two deployments on one app never collide."""
    q = sa.select(_OPS.c.value).where(_OPS.c.key == DEPLOYMENT_KEY)
    tag = session.execute(q).scalar_one_or_none()
    if tag:
        return str(tag)
    import secrets

    fresh = secrets.token_hex(5)
    stmt: Any
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        stmt = pg_insert(_OPS)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        stmt = sqlite_insert(_OPS)
    session.execute(stmt.values(key=DEPLOYMENT_KEY, value=fresh, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["key"]))
    return str(session.execute(q).scalar_one())


def forget_card(session: Session, *, delivery_id: int) -> None:
    """Stop following a card (deleted by the user, too old to edit, chat gone)."""
    session.execute(sa.update(DEL).where(DEL.c.id == delivery_id).values(is_card=False))


def sms_takes(beside: Collection[str] | None) -> sa.ColumnElement[bool]:
    """Person rows SMS delivers: a template kind, a phone, no reachable chat on `beside` (the
    deployment's other platforms; None: any)."""
    chat = sa.and_(CI.c.person_id == OUT.c.person_id, CI.c.platform != SMS, carries_messages(CI))
    if beside is not None:
        chat = sa.and_(chat, CI.c.platform.in_(sorted(set(beside) - {SMS})))
    phone = sa.exists().where(PEOPLE.c.id == OUT.c.person_id, PEOPLE.c.phone.is_not(None))
    return sa.and_(OUT.c.kind.in_(sorted(SMS_KINDS)), phone, sa.not_(sa.exists().where(chat)))


def platform_filter(platform: str, *, configured: Collection[str] | None = None
                    ) -> sa.ColumnElement[bool]:
    """Outbox rows a sender for `platform` can deliver (see the module docstring;
    `configured`: the platforms the deployment runs, for SMS's "no other chat" rule)."""
    if platform == SMS:
        raw_sms = sa.and_(OUT.c.address.is_not(None), OUT.c.platform == SMS)
        person = sa.and_(OUT.c.platform.is_(None), OUT.c.person_id.is_not(None),
                         sms_takes(configured))
        # A row pinned to SMS for a person (an urgent case's duty officer) goes whatever
        # chats they have.
        pinned_sms = sa.and_(OUT.c.platform == SMS, OUT.c.person_id.is_not(None),
                             sa.exists().where(PEOPLE.c.id == OUT.c.person_id,
                                               PEOPLE.c.phone.is_not(None)))
        return sa.or_(raw_sms, person, pinned_sms)
    reachable = sa.exists().where(
        CI.c.person_id == OUT.c.person_id, CI.c.platform == platform, carries_messages(CI),
    )
    bound = sa.exists().where(CB.c.id == OUT.c.chat_binding_id, CB.c.platform == platform)
    raw = sa.and_(OUT.c.address.is_not(None), OUT.c.platform == platform)
    cards = sa.and_(
        OUT.c.kind == CARD_UPDATE,
        sa.exists().where(DEL.c.case_id == OUT.c.case_id, DEL.c.platform == platform,
                          DEL.c.is_card.is_(True)),
    )
    # A row that names its platform without a chat (a card_update per platform) goes there.
    pinned = sa.or_(OUT.c.platform.is_(None), OUT.c.platform == platform)
    return sa.and_(pinned, sa.or_(raw, bound, reachable, cards))


def claim_for_platform(session: Session, *, platform: str, now: datetime, limit: int = 100,
                       lease: timedelta = timedelta(seconds=60),
                       configured: Collection[str] | None = None) -> list[OutboxMessage]:
    """Like outbox.claim, but only rows this platform's sender can deliver."""
    q = (
        sa.select(OutboxMessage)
        .where(OUT.c.status.in_(RETRYABLE), OUT.c.next_attempt_at <= now)
        .where(sa.or_(OUT.c.claimed_until.is_(None), OUT.c.claimed_until <= now))
        .where(platform_filter(platform, configured=configured))
        .order_by(OUT.c.next_attempt_at, OUT.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OUT)
    )
    rows = list(session.scalars(q))
    for row in rows:
        row.claimed_until = now + lease
    session.flush()
    return rows


def pending_for_platform(session: Session, *, platform: str) -> int:
    """How many rows wait for this platform's sender, due now or later."""
    q = sa.select(sa.func.count()).select_from(OUT).where(
        OUT.c.status.in_(RETRYABLE), platform_filter(platform)
    )
    return int(session.execute(q).scalar_one())


def release(session: Session, *, message_ids: Iterable[int]) -> None:
    """Give claimed rows back as they were; rows already sent or dead are left alone."""
    ids = list(message_ids)
    if ids:
        session.execute(
            sa.update(OUT).where(OUT.c.id.in_(ids), OUT.c.status.in_(RETRYABLE))
            .values(claimed_until=None)
        )


def defer(session: Session, *, message_ids: Sequence[int], until: datetime,
          note: str | None = None) -> None:
    """Put rows off until `until` without counting an attempt (a rate limit, not a failure)."""
    if not message_ids:
        return
    values: dict[str, object] = {"claimed_until": None, "next_attempt_at": until}
    if note is not None:
        values["last_error"] = note[:2000]
    session.execute(
        sa.update(OUT).where(OUT.c.id.in_(list(message_ids)), OUT.c.status.in_(RETRYABLE))
        .values(**values)
    )


def extend_lease(session: Session, *, message_ids: Sequence[int], until: datetime) -> None:
    """Keep rows this sender still holds from being claimed by another."""
    if message_ids:
        session.execute(
            sa.update(OUT).where(OUT.c.id.in_(list(message_ids)), OUT.c.status.in_(RETRYABLE))
            .values(claimed_until=until)
        )


# ---- reachability (the dispatcher's side; core/cases/unreachable.py flags identities) ------

# `last_error` of a row given up because nobody could reach its person: a message from them
# puts it back in the queue.
UNREACHABLE = "unreachable: "


def unreachable_rows(session: Session, *, platforms: Collection[str], now: datetime,
                     limit: int = 500) -> dict[int, list[int]]:
    """Due rows for people none of whose identities on `platforms` can be reached, by person
    (nobody would ever claim them: they are settled at once instead of waiting)."""
    # An `sms` identity (a number that replied) takes only what SMS_KINDS says: sms_takes.
    reachable: sa.ColumnElement[bool] = sa.exists().where(
        CI.c.person_id == OUT.c.person_id, CI.c.platform.in_(sorted(set(platforms) - {SMS})),
        carries_messages(CI))
    if SMS in platforms:  # what SMS will carry is not given up
        reachable = sa.or_(reachable, sms_takes(platforms))
    q = (sa.select(OUT.c.id, OUT.c.person_id)
         .where(OUT.c.status.in_(RETRYABLE), OUT.c.next_attempt_at <= now,
                OUT.c.person_id.is_not(None), sa.not_(reachable),
                sa.or_(OUT.c.claimed_until.is_(None), OUT.c.claimed_until <= now))
         .order_by(OUT.c.id).limit(limit)
         .with_for_update(skip_locked=True, of=OUT))  # not what a sender holds right now
    out: dict[int, list[int]] = {}
    for r in session.execute(q):
        out.setdefault(int(r.person_id), []).append(int(r.id))
    return out


def give_up_unreachable(session: Session, *, message_ids: Sequence[int], now: datetime,
                        why: str) -> None:
    """Rows nobody can deliver now: dead, marked so that the person's next message revives
    them."""
    if message_ids:
        session.execute(
            sa.update(OUT).where(OUT.c.id.in_(list(message_ids)), OUT.c.status.in_(RETRYABLE))
            .values(status="dead", claimed_until=None, attempts=OUT.c.attempts + 1,
                    last_error=(UNREACHABLE + why)[:2000]))


def reachable_again(session: Session, *, platform: str, external_id: str,
                    now: datetime, known: tuple[int, int, bool] | None = None) -> int:
    """A person wrote from this chat: it reaches them again, and what was given up for want of
    a way to reach them goes out again; how many rows were released. `known`: the account's
    (id, person, unreachable) as read at the start of the update, if it existed then."""
    if known is None:
        row = session.execute(sa.select(CI.c.id, CI.c.person_id, CI.c.unreachable).where(
            CI.c.platform == platform, CI.c.external_id == str(external_id))).first()
        if row is None:
            return 0
        known = (row.id, row.person_id, row.unreachable)
    identity_id, person_id, unreachable = known
    if unreachable:
        session.execute(sa.update(CI).where(CI.c.id == identity_id).values(unreachable=False))
    res = session.execute(_release_stmt(), {"person": person_id, "now": now})
    return int(getattr(res, "rowcount", 0) or 0)


@functools.cache
def _release_stmt() -> Any:
    # Built once (core/db.py, "Statements built once"): every update runs it.
    return (sa.update(OUT).where(OUT.c.person_id == sa.bindparam("person"),
                                 OUT.c.status == "dead", OUT.c.last_error.like(UNREACHABLE + "%"))
            .values(status="pending", attempts=0, next_attempt_at=sa.bindparam("now"),
                    claimed_until=None, last_error=None))


def sent_since(session: Session, *, platform: str, chat_id: str, since: datetime,
               part_type: str) -> int:
    """How many messages of one type went into a chat after a moment (a per-message quota:
    what was sent at the very moment the person wrote answered the message before)."""
    q = sa.select(sa.func.count()).select_from(DEL).where(
        DEL.c.platform == platform, DEL.c.chat_id == str(chat_id), DEL.c.part_type == part_type,
        DEL.c.sent_at > since)
    return int(session.execute(q).scalar_one())


def newer_pending(session: Session, *, row_id: int, person_id: int, case_id: int,
                  kinds: Collection[str]) -> bool:
    """Whether a later row of one of `kinds` waits for the same person and case (it says
    more than this one: this one may be folded into it)."""
    q = sa.select(OUT.c.id).where(
        OUT.c.person_id == person_id, OUT.c.case_id == case_id, OUT.c.id > row_id,
        OUT.c.kind.in_(list(kinds)), OUT.c.status.in_(RETRYABLE)).limit(1)
    return session.execute(q).first() is not None


def chat_moved(session: Session, *, platform: str, old: str, new: str) -> None:
    """A chat has a new id (a Telegram group upgraded to a supergroup): its binding and the
    rows addressed to it follow; cards in the old chat can no longer be edited."""
    session.execute(sa.update(CB).where(CB.c.platform == platform, CB.c.chat_id == str(old))
                    .values(chat_id=str(new)))
    session.execute(sa.update(OUT).where(OUT.c.platform == platform,
                                         OUT.c.address == str(old),
                                         OUT.c.status.in_(RETRYABLE))
                    .values(address=str(new)))
    session.execute(sa.update(DEL).where(DEL.c.platform == platform, DEL.c.chat_id == str(old))
                    .values(is_card=False))
