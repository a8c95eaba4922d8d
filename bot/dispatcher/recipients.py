"""Where an outbox row goes on one platform, and which platforms the deployment runs.

One lookup for every transport: a person's reachable identities on the platform, the chat a
binding names on it, or the raw chat the row addresses on it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bot.dispatcher.rows import Row
from core import deliveries
from core.hierarchy.model import ChatBinding, ChatIdentity, carries_messages
from core.settings import Settings

CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
CB: sa.Table = ChatBinding.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Dest:
    chat_id: str
    identity: bool  # a person's own chat: "blocked" makes the identity unreachable


@dataclass(frozen=True)
class Resolved:
    """Where a claimed row goes on the platform, and which (chat, part) of it were delivered."""

    dests: tuple[Dest, ...]
    done: frozenset[tuple[str, int]]


def resolve(session: Session, *, platform: str, rows: Collection[Row]) -> dict[int, Resolved]:
    """Where many rows go on `platform` (none: another platform's row) and what of them was
    delivered, in at most three reads whatever their number (the dispatcher reads them with
    its claim, so a row's send waits on no database)."""
    people = {r.person_id for r in rows if r.person_id is not None}
    chats: dict[int, list[str]] = {}
    if people and platform == deliveries.SMS:
        chats = {int(i): [str(ph)] for i, ph in session.execute(
            _phones_stmt(), {"people": sorted(people)}) if ph}
    elif people:
        for person, external in session.execute(_identities_stmt(), {
                "people": sorted(people), "platform": platform}):
            chats.setdefault(int(person), []).append(str(external))
    bindings = {r.chat_binding_id for r in rows
                if r.person_id is None and r.chat_binding_id is not None}
    bound = {int(i): str(c) for i, c in session.execute(_bindings_stmt(), {
        "ids": sorted(bindings), "platform": platform})} if bindings else {}
    done = deliveries.parts_of(session, [r.id for r in rows])
    out: dict[int, Resolved] = {}
    for r in rows:
        if r.person_id is not None:
            identity = platform != deliveries.SMS
            dests = tuple(Dest(c, identity=identity) for c in chats.get(r.person_id, ()))
        elif r.chat_binding_id is not None:
            chat = bound.get(r.chat_binding_id)
            dests = (Dest(chat, identity=False),) if chat else ()
        elif r.address and r.platform in (platform, None):
            dests = (Dest(str(r.address), identity=False),)
        else:
            dests = ()
        out[r.id] = Resolved(dests, frozenset(done.get(r.id, ())))
    return out


# Built once (core/db.py, "Statements built once"): every claim runs them.
@functools.cache
def _identities_stmt() -> Any:
    return sa.select(CI.c.person_id, CI.c.external_id).where(
        CI.c.person_id.in_(sa.bindparam("people", expanding=True)),
        CI.c.platform == sa.bindparam("platform"), carries_messages(CI)).order_by(CI.c.id)


@functools.cache
def _phones_stmt() -> Any:
    return sa.select(deliveries.PEOPLE.c.id, deliveries.PEOPLE.c.phone).where(
        deliveries.PEOPLE.c.id.in_(sa.bindparam("people", expanding=True)))


@functools.cache
def _bindings_stmt() -> Any:
    return sa.select(CB.c.id, CB.c.chat_id).where(
        CB.c.id.in_(sa.bindparam("ids", expanding=True)), CB.c.platform == sa.bindparam("platform"))


def claim(session: Session, *, platform: str, now: datetime, limit: int,
          lease: timedelta, configured: Collection[str] | None = None) -> list[Row]:
    """Claim due rows for `platform`, each knowing whose own chat a raw address is."""
    rows = [Row.of(r) for r in deliveries.claim_for_platform(
        session, platform=platform, now=now, limit=limit, lease=lease,
        configured=configured)]
    owners = chat_owners(session, platform=platform, rows=rows)
    return [dataclasses.replace(r, chat_owner=owners[r.address])
            if r.address in owners else r for r in rows]


def chat_owners(session: Session, *, platform: str, rows: list[Row]) -> dict[str, int]:
    """Of the raw chats these rows address on `platform`, the ones that are a person's own
    chat: address → person."""
    addresses = {r.address for r in rows if r.address and r.person_id is None
                 and r.chat_binding_id is None and r.platform in (platform, None)}
    if not addresses:
        return {}
    return {str(a): int(p) for a, p in session.execute(sa.select(
        CI.c.external_id, CI.c.person_id).where(
        CI.c.platform == platform, CI.c.external_id.in_(sorted(addresses)),
        CI.c.person_id.is_not(None)))}


def configured_platforms(settings: Settings) -> frozenset[str]:
    """The platforms this deployment sends on (the web chat always runs)."""
    on = {"web"}
    if settings.telegram_bot_token is not None:
        on.add("telegram")
    if settings.wechat_app_secret is not None:
        on.add("wechat")
    if settings.wecom_secret is not None:
        on.add("wecom")
    if settings.sms_on:
        on.add(deliveries.SMS)
    return frozenset(on)
