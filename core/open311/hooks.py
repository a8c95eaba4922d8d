"""Status webhooks of Open311 client systems: every state change of the cases a client filed
(of every case in its subtree, for a scope-wide hook) becomes one outbox row addressed to the
hook (`platform="webhook"`, `address=<hook id>`), POSTed and signed by the webhook transport
(bot/handlers/webhook/transport.py) through the one dispatcher, retried for a day.

The body is FixMyStreet's update (GET servicerequestupdates) with the request's Open311 status
and a per-case `seq`, fixed when the change is recorded: a retry a day later says what it said
then. Dead rows and a receiver's 410 tell the root admins, once per episode (`failing_since`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.model import Case, CaseEvent, EventKind, State
from core.cases.ops import policy_of
from core.clock import as_utc
from core.deliveries import WEBHOOK
from core.errors import InvalidInput, NotFound
from core.hierarchy.model import Node
from core.hierarchy.tree import subtree_bounds
from core.open311.model import CLIENTS, HOOKS, REQUESTS, Open311Hook
from core.open311.requests import CLOSED_STATES, PUBLIC_NOTES, UPDATE_STATUS
from core.ops import _tell_admins
from core.outbox import OUT, RETRYABLE, Draft, enqueue_many

log = logging.getLogger(__name__)
N: sa.Table = Node.__table__  # type: ignore[attr-defined]
EV: sa.Table = CaseEvent.__table__  # type: ignore[attr-defined]

KIND = "status_hook"
VIA = "open311:"  # the opening event's `via` of a filed request (core/open311/requests.py)
MAX_URL = 500
MAX_AGE = timedelta(days=1)  # retried this long, then dead and the admins told
SIGNATURE = "X-Linzhang-Signature"
TIMESTAMP = "X-Linzhang-Timestamp"
# The opening is a change a client wants too ("open"); the rest are the updates extension's.
STATUS_KINDS = frozenset({EventKind.opened.value, *(str(k) for k in UPDATE_STATUS)})


class HookTexts(Protocol):
    """The words of the alerts, in a reader's language (bot/notify supplies them)."""

    def dead(self, *, lang: str, name: str, url: str, error: str) -> str: ...

    def gone(self, *, lang: str, name: str, url: str) -> str: ...


class _Plain:
    """What a root that installed no texts says: plain words, so an alert is never lost."""

    def dead(self, *, lang: str, name: str, url: str, error: str) -> str:
        return f"The status webhook of {name} could not deliver for a day ({url}: {error})."

    def gone(self, *, lang: str, name: str, url: str) -> str:
        return f"The status webhook of {name} is disabled: it answered 410 Gone ({url})."


_texts: HookTexts = _Plain()


def use_texts(texts: HookTexts) -> None:
    """Say the hook alerts with these words; the composition root installs bot/notify's."""
    global _texts
    _texts = texts


@dataclass(frozen=True)
class HookRow:
    """One hook as `linzhang open311 hook list` shows it (never its secret)."""

    client: str
    url: str
    scope_wide: bool
    created_at: datetime
    disabled_why: str | None


@dataclass(frozen=True)
class Target:
    """Where a hook's rows go and what signs them (None from `target`: removed or off)."""

    id: int
    client: str
    url: str
    secret: str


# ---- registration (the operator's CLI) -------------------------------------------------------


def check_url(url: str) -> str:
    """An http(s) URL with a host, or InvalidInput."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (a port that is no number raises here)
    except ValueError:
        host = None
    if (len(url) > MAX_URL or parts.scheme not in ("http", "https") or not host
            or any(ch.isspace() or ord(ch) < 32 for ch in url)):
        raise InvalidInput("open311_hook_url_invalid", most=MAX_URL)
    return url


def _client_id(session: Session, name: str) -> int:
    cid = session.execute(sa.select(CLIENTS.c.id).where(
        CLIENTS.c.name == name.strip(), CLIENTS.c.revoked_at.is_(None))).scalar_one_or_none()
    if cid is None:
        raise NotFound("open311_client_unknown", name=name)
    return int(cid)


def set_hook(session: Session, *, client: str, url: str, scope_wide: bool,
             now: datetime) -> str:
    """Point a client's webhook at `url` (made, or changed and enabled again) with a fresh
    secret; the secret is returned to be shown once."""
    url = check_url(url)
    cid = _client_id(session, client)
    secret = "lzwh_" + secrets.token_hex(24)
    values: dict[str, Any] = {"url": url, "secret": secret, "scope_wide": scope_wide,
                              "disabled_at": None, "disabled_why": None, "failing_since": None}
    done = session.execute(sa.update(HOOKS).where(HOOKS.c.client_id == cid).values(**values))
    if not done.rowcount:  # type: ignore[attr-defined]
        session.add(Open311Hook(client_id=cid, created_at=now, **values))
    session.flush()
    forget()
    return secret


def remove_hook(session: Session, *, client: str, now: datetime) -> None:
    """Remove a client's webhook; what still waits for it is given up."""
    cid = _client_id(session, client)
    hid = session.execute(sa.select(HOOKS.c.id).where(HOOKS.c.client_id == cid)
                          ).scalar_one_or_none()
    if hid is None:
        raise NotFound("open311_hook_unknown", name=client)
    _give_up(session, hook_id=int(hid), why="hook removed")
    session.execute(sa.delete(HOOKS).where(HOOKS.c.id == hid))
    forget()


def list_hooks(session: Session) -> list[HookRow]:
    """Every hook, oldest first."""
    q = (sa.select(CLIENTS.c.name, HOOKS.c.url, HOOKS.c.scope_wide, HOOKS.c.created_at,
                   HOOKS.c.disabled_why)
         .join(CLIENTS, CLIENTS.c.id == HOOKS.c.client_id).order_by(HOOKS.c.id))
    return [HookRow(r.name, r.url, bool(r.scope_wide), as_utc(r.created_at), r.disabled_why)
            for r in session.execute(q)]


# ---- signing ------------------------------------------------------------------------------------


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of `<timestamp>.<body>` (the timestamp is
    signed too, so a receiver can refuse an old POST replayed)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(*, secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver checks (in constant time); the tests and the README use it."""
    return hmac.compare_digest(sign(secret=secret, timestamp=timestamp, body=body), signature)


# ---- case events → rows -------------------------------------------------------------------------


# Every case event asks which hooks there are, and most deployments have none: the answer is
# kept per database for HOOKS_TTL seconds (a hook set in another process, e.g. by the CLI,
# takes effect within that; this process's own changes forget it at once).
HOOKS_TTL = 10.0
_known: dict[str, tuple[float, list[Any]]] = {}


def forget() -> None:
    """Read the hooks afresh on the next event (after a hook or a client key changed)."""
    _known.clear()


def active_hooks(session: Session) -> list[Any]:
    """The enabled hooks of clients whose key is not revoked (cached: see HOOKS_TTL)."""
    key = str(session.get_bind().engine.url)
    now = time.monotonic()
    cached = _known.get(key)
    if cached is not None and now - cached[0] < HOOKS_TTL:
        return cached[1]
    found = _read_hooks(session)
    _known[key] = (now, found)
    return found


def _read_hooks(session: Session) -> list[Any]:
    scope = N.alias("scope")
    return list(session.execute(
        sa.select(HOOKS.c.id, HOOKS.c.client_id, HOOKS.c.scope_wide, scope.c.path,
                  CLIENTS.c.name)
        .join(CLIENTS, CLIENTS.c.id == HOOKS.c.client_id)
        .join(scope, scope.c.id == CLIENTS.c.scope_node_id)
        .where(HOOKS.c.disabled_at.is_(None), CLIENTS.c.revoked_at.is_(None))
        .order_by(HOOKS.c.id)))


def _seqs(session: Session, case_ids: set[int]) -> dict[int, int]:
    """Event id → its place among its case's status changes (1, 2, …)."""
    q = (sa.select(EV.c.id, EV.c.case_id).where(EV.c.case_id.in_(sorted(case_ids)),
                                                EV.c.kind.in_(sorted(STATUS_KINDS)))
         .order_by(EV.c.id))
    count: dict[int, int] = {}
    out: dict[int, int] = {}
    for eid, cid in session.execute(q):
        count[cid] = count.get(cid, 0) + 1
        out[eid] = count[cid]
    return out


def body(event: CaseEvent, case: Case, seq: int) -> dict[str, Any]:
    """What a hook is told of one change (FixMyStreet's update, the Open311 status, seq)."""
    state = State(event.to_state or case.state)
    assert event.id is not None
    return {
        "service_request_id": str(event.case_id),
        "update_id": str(event.id),
        "seq": seq,
        "status": "closed" if state in CLOSED_STATES else "open",
        "update_status": UPDATE_STATUS.get(EventKind(event.kind), "open"),
        "updated_datetime": as_utc(event.at).astimezone(policy_of(case).tz).isoformat(),
        "description": (event.note or "") if event.kind in PUBLIC_NOTES else "",
    }


def on_events(session: Session, events: Sequence[CaseEvent]) -> int:
    """The events subscriber: one row per hook and status change it should hear of."""
    changes = [e for e in events if e.kind in STATUS_KINDS and e.id is not None]
    if not changes:
        return 0
    hooks = active_hooks(session)
    if not hooks:
        return 0
    case_ids = {e.case_id for e in changes}
    filed_by = dict(session.execute(sa.select(REQUESTS.c.case_id, REQUESTS.c.client_id)
                                    .where(REQUESTS.c.case_id.in_(sorted(case_ids)))).all())
    # A request's opening is published before its Open311 row is written: its `via` names
    # the client (client names are unique).
    by_name = {h.name: h.client_id for h in hooks}
    for e in changes:
        if e.case_id not in filed_by and (e.via or "").startswith(VIA):
            owner = by_name.get((e.via or "")[len(VIA):])
            if owner is not None:
                filed_by[e.case_id] = owner
    cases = {cid: session.get(Case, cid) for cid in case_ids}
    seqs = _seqs(session, case_ids)
    drafts: list[Draft] = []
    now = max(as_utc(e.at) for e in changes)
    for e in changes:
        case = cases[e.case_id]
        assert case is not None and e.id is not None
        for h in hooks:
            low, high = subtree_bounds(h.path)
            if filed_by.get(e.case_id) != h.client_id and not (
                    h.scope_wide and low <= case.node_path < high):
                continue
            text = json.dumps(body(e, case, seqs.get(e.id, 1)), ensure_ascii=False,
                              separators=(",", ":"))
            drafts.append(Draft(text=text, kind=KIND, dedupe_key=f"hook{h.id}:e{e.id}",
                                platform=WEBHOOK, address=str(h.id), case_id=e.case_id))
    return enqueue_many(session, drafts=drafts, now=now)


# ---- the transport's side: where to, and the episodes the admins hear of ------------------------


def target(session: Session, *, hook_id: int) -> Target | None:
    """The hook a row goes to, or None when it was removed or disabled."""
    row = session.execute(
        sa.select(HOOKS.c.id, CLIENTS.c.name, HOOKS.c.url, HOOKS.c.secret)
        .join(CLIENTS, CLIENTS.c.id == HOOKS.c.client_id)
        .where(HOOKS.c.id == hook_id, HOOKS.c.disabled_at.is_(None))).first()
    return Target(row.id, row.name, row.url, row.secret) if row else None


def waiting_before(session: Session, *, row_id: int, hook_id: int, case_id: int | None
                   ) -> datetime | None:
    """When an earlier row of the same hook and case, still undelivered, is next tried (None:
    none is): a change recorded while an older one backs off waits behind it."""
    q = sa.select(sa.func.min(OUT.c.next_attempt_at)).where(
        OUT.c.platform == WEBHOOK, OUT.c.address == str(hook_id), OUT.c.case_id == case_id,
        OUT.c.id < row_id, OUT.c.status.in_(RETRYABLE))
    at = session.execute(q).scalar_one_or_none()
    return None if at is None else as_utc(at)


def delivered(session: Session, *, hook_id: int) -> None:
    """A POST got through: a failing episode, if any, is over."""
    session.execute(sa.update(HOOKS).where(HOOKS.c.id == hook_id,
                                           HOOKS.c.failing_since.is_not(None))
                    .values(failing_since=None))


def _named(session: Session, hook_id: int) -> Any:
    return session.execute(
        sa.select(HOOKS.c.id, HOOKS.c.url, HOOKS.c.failing_since, HOOKS.c.disabled_at,
                  CLIENTS.c.name).join(CLIENTS, CLIENTS.c.id == HOOKS.c.client_id)
        .where(HOOKS.c.id == hook_id).with_for_update(of=HOOKS)).first()


def row_dead(session: Session, *, hook_id: int, now: datetime, error: str) -> bool:
    """A row of the hook was given up; the root admins hear of the first in an episode
    (whether they were told now)."""
    h = _named(session, hook_id)
    if h is None or h.disabled_at is not None or h.failing_since is not None:
        return False  # removed, or already told (a 410's alert, or this episode's)
    session.execute(sa.update(HOOKS).where(HOOKS.c.id == hook_id).values(failing_since=now))
    short = error[:120]
    _tell_admins(session, now=now, key=f"hook{hook_id}:dead:{now.isoformat()}",
                 say=lambda lang: _texts.dead(lang=lang, name=h.name, url=h.url, error=short))
    log.error("status webhook %s of %s is failing: %s", hook_id, h.name, short)
    return True


def gone(session: Session, *, hook_id: int, now: datetime, why: str) -> None:
    """The receiver said 410 Gone: the hook is disabled, what waits for it given up, the root
    admins told."""
    h = _named(session, hook_id)
    if h is None or h.disabled_at is not None:
        return
    session.execute(sa.update(HOOKS).where(HOOKS.c.id == hook_id)
                    .values(disabled_at=now, disabled_why=why[:200]))
    forget()
    _give_up(session, hook_id=hook_id, why=f"hook disabled: {why}")
    _tell_admins(session, now=now, key=f"hook{hook_id}:gone:{now.isoformat()}",
                 say=lambda lang: _texts.gone(lang=lang, name=h.name, url=h.url))
    log.error("status webhook %s of %s disabled: %s", hook_id, h.name, why)


def _give_up(session: Session, *, hook_id: int, why: str) -> None:
    session.execute(sa.update(OUT).where(
        OUT.c.platform == WEBHOOK, OUT.c.address == str(hook_id),
        OUT.c.status.in_(RETRYABLE)).values(status="dead", claimed_until=None,
                                            last_error=why[:2000]))


__all__ = ["KIND", "MAX_AGE", "SIGNATURE", "TIMESTAMP", "HookRow", "Target", "body",
           "check_url", "delivered", "gone", "list_hooks", "on_events", "remove_hook",
           "row_dead", "set_hook", "sign", "target", "use_texts", "verify", "waiting_before"]
