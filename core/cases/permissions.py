"""Who may act on a case, and the record of those who tried and may not."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from core.cases.model import EVENTS, Case, CaseEvent, EventKind
from core.errors import PermissionDenied, as_json
from core.hierarchy.model import Role
from core.hierarchy.queries import Actor, NodeRef

log = logging.getLogger(__name__)

_PENDING = "linzhang.case_refusals"
_listening = False


def may_act(who: Actor, *, holder_id: int | None, holder_role: str | None,
            holder_node: NodeRef | None, home: NodeRef) -> bool:
    """The holder, a co-holder of the same post, anyone leading the holder's node from above,
    and admins of the case's subtree."""
    if who.person.id == holder_id:
        return True
    if who.is_admin_of(home) or (holder_node is not None and who.is_admin_of(holder_node)):
        return True
    if holder_node is None:
        return False
    if holder_role is not None and who.holds(Role(holder_role), holder_node):
        return True
    return who.leads(holder_node)


def may_reach(who: Actor, *, holder_id: int | None, holder_role: str | None,
              holder_node: NodeRef | None, home: NodeRef) -> bool:
    """Whether a case is within the person's reach: they may act on it, or lead its home from
    above (a merge needs both cases within reach)."""
    return may_act(who, holder_id=holder_id, holder_role=holder_role, holder_node=holder_node,
                   home=home) or who.leads(home)


def may_whistle(who: Actor, *, home: NodeRef) -> bool:
    """A village (its 书记) or a town or district office hands a case to a department."""
    return who.is_admin_of(home) or any(
        role is Role.secretary and node.contains(home) for role, node in who.posts
    )


def refuse(session: Session, *, case: Case, person_id: int, action: str, reason: str,
           at: datetime, via: str | None = None,
           params: dict[str, Any] | None = None) -> PermissionDenied:
    """Note the refused attempt for its own transaction, run once the caller's transaction
    ends, so that it survives the rollback the refusal causes; return the error to raise
    (message key `reason` with `params`)."""
    denied = PermissionDenied(reason, **(params or {}))
    _ensure_listener()
    session.info.setdefault(_PENDING, []).append({
        "case_id": case.id, "at": at, "actor_id": person_id, "kind": EventKind.refused.value,
        "from_state": case.state, "to_state": case.state, "role": case.holder_role,
        "holder_id": case.holder_id, "via": via, "note": str(denied),
        "detail": {"action": action, "version": case.version, "reason": reason,
                   "params": as_json(params or {})},
    })
    return denied


def _ensure_listener() -> None:
    global _listening
    if not _listening:
        sa.event.listen(OrmSession, "after_transaction_end", _write_refusals)
        _listening = True


def _write_refusals(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    pending: list[dict[str, Any]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    bind = session.get_bind(CaseEvent)
    engine = bind.engine if isinstance(bind, sa.Connection) else bind
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(EVENTS), pending)
    except sa.exc.SQLAlchemyError:
        # Raising here would hide the PermissionDenied being handled; the log keeps the record.
        log.exception("could not record %d refused attempt(s): %r", len(pending), pending)
