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


def destinations(session: Session, *, platform: str, row: Row) -> list[Dest]:
    """The chats `row` goes to on `platform` (none: another platform's row)."""
    if row.person_id is not None and platform == deliveries.SMS:
        phone = session.execute(sa.select(deliveries.PEOPLE.c.phone).where(
            deliveries.PEOPLE.c.id == row.person_id)).scalar_one_or_none()
        return [Dest(str(phone), identity=False)] if phone else []
    if row.person_id is not None:
        ids = session.execute(_identities_stmt(), {"person": row.person_id,
                                                    "platform": platform}).scalars()
        return [Dest(str(x), identity=True) for x in ids]
    if row.chat_binding_id is not None:
        chat = session.execute(sa.select(CB.c.chat_id).where(
            CB.c.id == row.chat_binding_id, CB.c.platform == platform)).scalar_one_or_none()
        return [Dest(str(chat), identity=False)] if chat else []
    if row.address and row.platform in (platform, None):
        return [Dest(str(row.address), identity=False)]
    return []


@functools.cache
def _identities_stmt() -> Any:
    # Built once (core/db.py, "Statements built once"): every row sent runs it.
    return sa.select(CI.c.external_id).where(
        CI.c.person_id == sa.bindparam("person"), CI.c.platform == sa.bindparam("platform"),
        carries_messages(CI)).order_by(CI.c.id)


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
