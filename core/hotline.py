"""The hotline console's domain: who a caller is, and filing their case on their behalf.

A 12345 or town operator types the caller's number: `look_up` says who that is (name,
household, 邻 and the chain of leaders above it, their open cases), but only when their home
lies inside the operator's dashboard scope; outside it the answer is that and nothing more.
`file_call` opens the case through the case engine like a chat report (the caller is its
resident, the operator its opener, the opening event `via="phone"` naming the operator), so
routing, deadlines and the notifier's receipt to the caller's chat are the chat's own.

How the caller hears what was filed is decided in one place, `how_told`: by chat when they
have one, else by SMS when the deployment sends SMS (core/sms.py) and the caller has a phone on
file, else the operator reads the receipt out on the phone. The opening event's detail says
which (`told`), so the notifier writes no receipt for a caller who is told aloud
(bot/notify/messages.py `m_receipt`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session

from core.accounts import dashboard_scopes
from core.cases import services
from core.cases.model import ACTIVE_STATES, CASES, FOLLOWERS, Case, State
from core.clock import Clock, as_utc
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Level, Node, Person, Role
from core.hierarchy.queries import (
    CI,
    POST,
    Actor,
    NodeRef,
    chain_for_node,
    node_by_code,
    node_by_id,
    nodes_by_ids,
    person_by_phone,
    residence_of,
)
from core.hierarchy.tree import normalize_phone, subtree_bounds
from core.privacy import FULL_ROSTER_LEVELS, mask_address
from core.settings import Settings

log = logging.getLogger(__name__)

VIA = "phone"
MAX_PLACES = 8
N: sa.Table = Node.__table__  # type: ignore[attr-defined]
P: sa.Table = Person.__table__  # type: ignore[attr-defined]


class Told(StrEnum):
    """How the caller learns what was filed."""

    chat = "chat"  # the notifier's receipt goes to their chat account
    sms = "sms"  # no chat, SMS on and a phone on file: the receipt goes by SMS
    read_aloud = "read_aloud"  # neither: the operator reads the receipt out


@dataclass(frozen=True)
class Leader:
    role: Role
    node: NodeRef
    name: str | None  # None: the post is vacant
    phone: str | None


@dataclass(frozen=True)
class OpenCase:
    id: int
    text: str
    state: State
    holder_name: str | None
    holder_role: str | None
    deadline_at: datetime | None
    overdue: bool


@dataclass(frozen=True)
class Caller:
    """What the console shows of a number. `outside`: the caller lives outside the
    operator's area, and nothing else is filled in."""

    phone: str
    outside: bool = False
    person_id: int | None = None
    name: str | None = None
    home: NodeRef | None = None  # their 邻; None for an unregistered number or no household
    address: str | None = None
    chain: tuple[Leader, ...] = ()
    cases: tuple[OpenCase, ...] = ()
    told: Told = Told.read_aloud


@dataclass(frozen=True)
class Receipt:
    """What was filed, for the operator's screen and the words read to the caller."""

    case_id: int
    added: bool  # the words went into the caller's case of minutes ago (the append window)
    holder_role: str | None
    holder_name: str | None
    holder_node: str | None
    deadline_at: datetime | None
    told: Told
    caller_name: str


def _phone(text: str) -> str:
    norm = normalize_phone(text or "")
    if norm is None:
        raise InvalidInput("hotline_phone_invalid")
    return norm


def _sees(operator: Actor, node: NodeRef | str) -> bool:
    return any(s.contains(node) for s in dashboard_scopes(operator))


def _full_roster(operator: Actor, node: NodeRef) -> bool:
    return any(s.contains(node) and s.level.value in FULL_ROSTER_LEVELS
               for s in dashboard_scopes(operator))


def how_told(session: Session, person_id: int, *, sms_on: bool) -> Told:
    """How a caller hears of their case: their chat if any account of theirs reaches them,
    else an SMS to their phone when the deployment sends SMS, else the operator's voice."""
    reachable = session.execute(sa.select(CI.c.id).where(
        CI.c.person_id == person_id, CI.c.unreachable.is_(False)).limit(1)).first()
    if reachable is not None:
        return Told.chat
    phone = session.execute(sa.select(P.c.phone).where(P.c.id == person_id)).scalar_one_or_none()
    return Told.sms if sms_on and phone else Told.read_aloud


def _home(session: Session, person_id: int) -> NodeRef | None:
    try:
        return residence_of(session, person_id)
    except NotFound:
        return None


def _chain(session: Session, home: NodeRef) -> tuple[Leader, ...]:
    steps = [s for s in chain_for_node(session, home).steps if s.role is not Role.admin]
    ids = [h.id for s in steps for h in s.holders]
    phones = dict(session.execute(sa.select(P.c.id, P.c.phone).where(P.c.id.in_(ids))).all())
    out: list[Leader] = []
    for s in steps:
        if not s.holders:
            out.append(Leader(s.role, s.node, None, None))
        out += [Leader(s.role, s.node, h.name, phones.get(h.id)) for h in s.holders]
    return tuple(out)


def _open_cases(session: Session, person_id: int, operator: Actor,
                now: datetime) -> tuple[OpenCase, ...]:
    q = (sa.select(CASES.c.id, CASES.c.node_path)
         .join(FOLLOWERS, FOLLOWERS.c.case_id == CASES.c.id)
         .where(FOLLOWERS.c.person_id == person_id)
         .where(CASES.c.state.in_([s.value for s in ACTIVE_STATES]))
         .order_by(CASES.c.id.desc()).limit(20))
    out = []
    for cid, path in session.execute(q).all():
        if not _sees(operator, path):
            continue  # a case filed elsewhere is not the operator's to read
        v = services.view(session, case_id=cid, now=now)
        out.append(OpenCase(v.id, v.text, v.state, v.holder_name, v.holder_role,
                            v.deadline_at, v.overdue))
    return tuple(out)


def look_up(session: Session, *, operator: Actor, phone: str, now: datetime,
            sms_on: bool = False) -> Caller:
    """Who is calling from `phone`, as far as the operator may know."""
    norm = _phone(phone)
    pid = person_by_phone(session, norm)
    if pid is None:
        return Caller(norm)
    home = _home(session, pid)
    if home is not None and not _sees(operator, home):
        return Caller(norm, outside=True)
    if home is None:
        # A number with no household (an earlier unregistered caller, or an official): only
        # its cases in the operator's area; the place is chosen when filing.
        return Caller(norm, person_id=pid, cases=_open_cases(session, pid, operator, now),
                      told=how_told(session, pid, sms_on=sms_on))
    name = session.execute(sa.select(P.c.name).where(P.c.id == pid)).scalar_one()
    address = session.execute(sa.select(POST.c.address).where(
        POST.c.person_id == pid, POST.c.node_id == home.id,
        POST.c.role == Role.resident.value).limit(1)).scalar_one_or_none()
    if not _full_roster(operator, home):
        address = mask_address(address)  # below a town the roster is masked (README)
    return Caller(norm, person_id=pid, name=name, home=home, address=address,
                  chain=_chain(session, home), cases=_open_cases(session, pid, operator, now),
                  told=how_told(session, pid, sms_on=sms_on))


def places(session: Session, *, operator: Actor, query: str) -> list[NodeRef]:
    """邻 inside the operator's area whose name or a household address there holds `query`
    (at most MAX_PLACES), or the one node whose code it is."""
    text = (query or "").replace("\x00", "").strip()[:60]
    if not text:
        return []
    try:
        node = node_by_code(session, text)
    except NotFound:
        node = None
    if node is not None:
        return [node] if _sees(operator, node) else []
    like = f"%{text.replace('%', '').replace('_', '')}%"
    inside = sa.or_(*[sa.and_(N.c.path >= lo, N.c.path < hi) for lo, hi in
                      (subtree_bounds(s.path) for s in dashboard_scopes(operator))])
    by_address = sa.select(POST.c.node_id).where(POST.c.address.like(like))
    q = (sa.select(N.c.id).where(N.c.level == Level.neighborhood.value, inside)
         .where(sa.or_(N.c.name.like(like), N.c.id.in_(by_address)))
         .order_by(N.c.code).limit(MAX_PLACES))
    ids = list(session.execute(q).scalars())
    found = nodes_by_ids(session, ids)
    return [found[i] for i in ids if i in found]


def _place(session: Session, operator: Actor, code: str | None) -> NodeRef:
    if not code or not code.strip():
        raise InvalidInput("hotline_place_required")
    node = node_by_code(session, code.strip())
    if not _sees(operator, node):
        raise PermissionDenied("hotline_place_outside", name=node.name)
    return node


def file_call(session: Session, *, clock: Clock, settings: Settings, operator: Actor,
              phone: str, words: str, caller_name: str, place: str | None = None,
              category: str | None = None) -> Receipt:
    """File what a caller said as their case (or add it to the one they opened minutes ago;
    `caller_name`: what an unregistered caller is called, the page's default when not asked)."""
    norm = _phone(phone)
    text = (words or "").replace("\x00", "").strip()
    if not text:
        raise InvalidInput("hotline_words_required")
    pid = person_by_phone(session, norm)
    home = _home(session, pid) if pid is not None else None
    if home is not None and not _sees(operator, home):
        raise PermissionDenied("hotline_caller_outside")
    if home is None:
        home = _place(session, operator, place)
    if pid is None:
        # An unregistered number becomes a person without posts: their next call finds their
        # cases, and a chat account binds to it only through the usual proofs.
        who = Person(name=caller_name.replace("\x00", "").strip()[:40] or norm, phone=norm,
                     created_at=clock.now())
        session.add(who)
        session.flush()
        assert who.id is not None
        pid = who.id
    by = {"operator": operator.person.id, "operator_name": operator.person.name,
          "told": how_told(session, pid, sms_on=settings.sms_on).value}
    recent = services.case_to_append_to(session, clock=clock, settings=settings,
                                        resident_id=pid)
    if recent is not None:
        case = services.add_to_case(session, clock=clock, case_id=recent, person_id=pid,
                                    text=text, via=VIA, detail=by)
    else:
        case = services.open_case(session, clock=clock, settings=settings, resident_id=pid,
                                  text=text, opened_by=operator.person.id, category=category,
                                  via=VIA, home=home, detail=by)
        _as_request(session, settings=settings, case=case, phone=norm)
    assert case.id is not None
    return _receipt(session, case, added=recent is not None, sms_on=settings.sms_on)


def _as_request(session: Session, *, settings: Settings, case: Case, phone: str) -> None:
    """Record a hotline case as the configured Open311 client's request, when its subtree
    holds the case (HOTLINE_OPEN311_CLIENT): the 12345 system reads it back over Open311."""
    if not settings.hotline_open311_client:
        return
    from core.open311.model import CLIENTS, Open311Request

    row = session.execute(
        sa.select(CLIENTS.c.id, Node.__table__.c.path)  # type: ignore[attr-defined]
        .join(Node.__table__, Node.__table__.c.id == CLIENTS.c.scope_node_id)  # type: ignore[attr-defined]
        .where(CLIENTS.c.name == settings.hotline_open311_client,
               CLIENTS.c.revoked_at.is_(None))).first()
    if row is None:
        # A name that matches no live client: the case stays the console's own, and the
        # operator of the deployment hears why the 12345 system does not see it.
        log.warning("HOTLINE_OPEN311_CLIENT %r names no Open311 client with a live key",
                    settings.hotline_open311_client)
        return
    low, high = subtree_bounds(row.path)
    if not (low <= case.node_path < high):
        return
    assert case.id is not None
    session.add(Open311Request(case_id=case.id, client_id=row.id, scope_path=row.path,
                               placed_by="phone", phone=phone))
    session.flush()
    # The opening was published before the case was the client's: its status webhook hears
    # of it now (the same row it would have had; its dedupe key makes this once).
    from core.cases.model import EVENTS, CaseEvent, EventKind
    from core.open311 import hooks

    opened = session.execute(sa.select(CaseEvent).where(
        EVENTS.c.case_id == case.id, EVENTS.c.kind == EventKind.opened.value)).scalars().all()
    hooks.on_events(session, list(opened))


def _receipt(session: Session, case: Case, *, added: bool, sms_on: bool) -> Receipt:
    assert case.id is not None
    holder = session.get(Person, case.holder_id) if case.holder_id else None
    node = node_by_id(session, case.holder_node_id) if case.holder_node_id else None
    caller = session.get(Person, case.resident_id)
    return Receipt(case.id, added, case.holder_role, holder.name if holder else None,
                   node.name if node else None,
                   as_utc(case.deadline_at) if case.deadline_at else None,
                   how_told(session, case.resident_id, sms_on=sms_on),
                   caller.name if caller else "")


def receipt(session: Session, *, operator: Actor, case_id: int, added: bool,
            sms_on: bool = False) -> Receipt:
    """The receipt of a case the operator may see (shown again after the form's redirect)."""
    case = session.get(Case, case_id)
    if case is None or not _sees(operator, case.node_path):
        raise NotFound("case_not_found", case=case_id)
    return _receipt(session, case, added=added, sms_on=sms_on)

