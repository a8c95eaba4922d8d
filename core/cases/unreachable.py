"""When a chat platform says a person cannot be reached (they blocked the bot, the account is
gone): flag the identity and make sure the cases they hold do not wait in silence.

A holder nobody can reach would sit on a case until the deadline sweep escalates it; telling the
next filled tier at once lets them phone the holder or act. A resident holds no cases: for them
the flag on the identity is the whole record (their replies and "fixed?" questions stay in the
outbox history and in /my when they come back).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import messages as msg
from core.cases.model import CASES, UNRESOLVED_STATES, Case
from core.cases.routing import next_target
from core.clock import Clock
from core.hierarchy.model import ChatIdentity
from core.hierarchy.queries import chain_for_node, node_by_id
from core.outbox import enqueue_many
from core.settings import Settings

log = logging.getLogger(__name__)

CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
KIND = "holder_unreachable"


def mark_unreachable(session: Session, *, platform: str, external_id: str) -> int | None:
    """Flag one chat identity unreachable; the person's id, or None for an unknown chat."""
    row = session.execute(
        sa.select(CI.c.id, CI.c.person_id).where(
            CI.c.platform == platform, CI.c.external_id == str(external_id)
        )
    ).first()
    if row is None:
        return None
    session.execute(sa.update(CI).where(CI.c.id == row.id).values(unreachable=True))
    return int(row.person_id)


def reachable_anywhere(session: Session, *, person_id: int,
                       platforms: Collection[str] | None = None) -> bool:
    """Whether any chat identity of the person is still reachable, on any of `platforms`
    (the ones the deployment runs; None: any platform)."""
    q = sa.select(sa.func.count()).select_from(CI).where(
        CI.c.person_id == person_id, CI.c.unreachable.is_(False)
    )
    if platforms is not None:
        q = q.where(CI.c.platform.in_(list(platforms)))
    return int(session.execute(q).scalar_one()) > 0


def on_unreachable(session: Session, *, person_id: int, clock: Clock, settings: Settings,
                   platforms: Collection[str] | None = None) -> None:
    """Tell the next filled tier above a holder who can no longer be reached (on any of
    `platforms`) about each unresolved case they hold (one digest per superior); nothing
    more for a resident."""
    if reachable_anywhere(session, person_id=person_id, platforms=platforms):
        return  # another chat account still reaches them: the cases are not stuck
    cases = list(session.execute(
        sa.select(Case).where(CASES.c.holder_id == person_id,
                              CASES.c.state.in_([s.value for s in UNRESOLVED_STATES]))
        .order_by(CASES.c.id)
    ).scalars())
    if not cases:
        log.info("person %s is unreachable and holds no open case", person_id)
        return
    tz = ZoneInfo(settings.timezone)
    now = clock.now()
    notices: list[msg.Notice] = []
    for case in cases:
        assert case.id is not None
        if case.holder_node_id is None or case.holder_role is None:
            continue
        chain = chain_for_node(session, node_by_id(session, case.home_node_id))
        target = next_target(chain, role=case.holder_role,
                             node=node_by_id(session, case.holder_node_id), holder_id=person_id)
        if target is None:
            log.warning("case %s: holder %s unreachable and nobody above", case.id, person_id)
            continue
        who = f"{msg.role_label(case.holder_role)}（承办人）"
        deadline = msg.deadline_phrase(case, tz)
        notices.append(msg.Notice(
            person_id=target.person.id, case_id=case.id, version=case.version, kind=KIND,
            text=(f"【无法联系承办人】{msg.title(case)}的{who}已无法通过聊天联系"
                  f"（可能屏蔽了机器人）。工单仍由其承办{('，' + deadline) if deadline else ''}。"
                  "请电话联系督促，或由您处理。"),
            line=f"{msg.title(case)}：承办人无法通过聊天联系",
        ))
    enqueue_many(session, drafts=msg.coalesce(notices), now=now)
