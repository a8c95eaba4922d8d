"""Open311 requests as cases: filing one (placed, then opened and routed like any report, its
source kept), and reading requests and their updates back within a key's subtree.

Reads cover requests filed through Open311 whose case lies in the key's subtree or whose
filing key was scoped inside it; residents' chat reports are not published this way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import services
from core.cases.model import CASES, EVENTS, EventKind, State
from core.clock import Clock, as_utc
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Category, Node
from core.hierarchy.queries import NodeRef, node_by_code
from core.hierarchy.tree import subtree_bounds
from core.open311.keys import Client
from core.open311.model import REQUESTS, Open311Request
from core.open311.place import PlacedBy, Placement, place
from core.settings import Settings

CATS: sa.Table = Category.__table__  # type: ignore[attr-defined]
N: sa.Table = Node.__table__  # type: ignore[attr-defined]
MAX_DESCRIPTION = 4000  # the spec's own limit, and MAX_TEXT of every case
MAX_FIELD = 300
MAX_SPAN = timedelta(days=90)  # the spec: a range "may not span more than 90 days"
MAX_ROWS = 1000  # the spec's default response volume
CLOSED_STATES = frozenset({State.resolved, State.closed, State.merged, State.rejected})
# FixMyStreet's updates extension (GET servicerequestupdates) and its additional states.
UPDATE_STATUS: dict[str, str] = {
    EventKind.accepted: "in_progress", EventKind.reported_in: "in_progress",
    EventKind.replied: "in_progress", EventKind.asked_more: "in_progress",
    EventKind.reopened: "in_progress", EventKind.sent_back: "in_progress",
    EventKind.escalated: "internal_referral", EventKind.whistled: "internal_referral",
    EventKind.rerouted: "internal_referral",
    EventKind.resolved: "fixed", EventKind.verified: "fixed",
    EventKind.confirmed: "closed", EventKind.auto_closed: "closed",
    EventKind.rejected: "no_further_action", EventKind.merged: "duplicate",
}
# The words of these events are meant for the reporter; the rest (an escalation's reason,
# a routing note) are the staff's own and are not passed on.
PUBLIC_NOTES = frozenset({EventKind.replied, EventKind.asked_more, EventKind.resolved,
                          EventKind.rejected})


@dataclass(frozen=True)
class NewRequest:
    """A POST requests body, as the spec names its fields."""

    service_code: str | None
    lat: str | None = None
    long: str | None = None
    address_string: str | None = None
    address_id: str | None = None
    email: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    description: str | None = None
    media_url: str | None = None


@dataclass(frozen=True)
class Filed:
    case_id: int
    placement: Placement
    account_id: str | None
    holder_role: str | None  # who took it: for the answer's service_notice
    holder_node: str | None


@dataclass(frozen=True)
class RequestView:
    """One request as GET requests shows it."""

    case_id: int
    state: State
    status_notes: str | None
    service_code: str | None
    service_name: str | None
    description: str
    agency: str | None
    placed_by: str
    office: str
    requested: datetime
    updated: datetime
    expected: datetime | None
    address: str | None
    address_id: str | None
    lat: float | None
    long: float | None
    media_url: str | None


@dataclass(frozen=True)
class UpdateView:
    update_id: int
    case_id: int
    status: str
    at: datetime
    description: str


def _is_id(text: str) -> bool:
    """ASCII digits that fit an INTEGER column ("١" is a digit to str.isdigit, not an id)."""
    return text.isascii() and text.isdigit() and len(text) < 10


def _number(value: str | None, *, field: str, low: float, high: float) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        x = float(value)
    except ValueError:
        raise InvalidInput("open311_bad_number", field=field) from None
    if not (low <= x <= high):  # NaN fails this too
        raise InvalidInput("open311_bad_number", field=field)
    return x


def _short(value: str | None, field: str, most: int = MAX_FIELD) -> str | None:
    value = (value or "").replace("\x00", "").strip()
    if len(value) > most:
        raise InvalidInput("open311_field_too_long", field=field, most=most)
    return value or None


def service(session: Session, code: str | None) -> Category:
    """The category a service_code names (400 when none is given, 404 when unknown)."""
    if code is None or not code.strip():
        raise InvalidInput("open311_service_code_missing")
    code = code.strip()
    cat = session.get(Category, int(code)) if _is_id(code) else None
    if cat is None:
        raise NotFound("open311_service_unknown", code=code[:40])
    return cat


def services_list(session: Session) -> list[Category]:
    """Every category, as a service."""
    return list(session.execute(sa.select(Category).order_by(CATS.c.id)).scalars())


def narrowed(session: Session, client: Client, jurisdiction_id: str | None) -> NodeRef | None:
    """The subtree a call works in: the key's scope, or the node a jurisdiction_id names
    inside it; None when that node lies outside the scope (the call then sees nothing). A
    jurisdiction_id that is no node code is ignored: one deployment is one jurisdiction."""
    if not jurisdiction_id or not jurisdiction_id.strip():
        return client.scope
    try:
        node = node_by_code(session, jurisdiction_id.strip())
    except NotFound:
        return client.scope
    if client.scope.contains(node):
        return node
    return client.scope if node.contains(client.scope) else None


def file_request(session: Session, *, clock: Clock, settings: Settings, client: Client,
                 body: NewRequest, jurisdiction_id: str | None = None) -> Filed:
    """Place a posted request in the key's subtree and open it as a case from the client."""
    scope = narrowed(session, client, jurisdiction_id)
    if scope is None:
        raise PermissionDenied("open311_outside_scope")
    cat = service(session, body.service_code)
    lat = _number(body.lat, field="lat", low=-90, high=90)
    lon = _number(body.long, field="long", low=-180, high=180)
    if (lat is None) != (lon is None):
        raise InvalidInput("open311_lat_long_pair")
    description = (body.description or "").replace("\x00", "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput("text_too_long", length=len(description), most=MAX_DESCRIPTION)
    fields = {f: _short(getattr(body, f), f) for f in (
        "address_string", "address_id", "email", "device_id", "account_id", "first_name",
        "last_name", "phone")}
    media_url = _short(body.media_url, "media_url", 500)
    placement = place(session, scope=scope, lat=lat, lon=lon, address_id=fields["address_id"],
                      address=fields["address_string"])
    where = ([services.NewAttachment(kind="location", latitude=lat, longitude=lon)]
             if lat is not None and lon is not None else [])
    case = services.open_case(
        session, clock=clock, settings=settings, resident_id=client.person_id,
        text=description or cat.name, category=cat.name, attachments=where,
        via=f"open311:{client.name}", home=placement.node)
    assert case.id is not None
    session.add(Open311Request(case_id=case.id, client_id=client.id, scope_path=scope.path,
                               placed_by=placement.by.value, media_url=media_url, **fields))
    session.flush()
    holder = session.get(Node, case.holder_node_id) if case.holder_node_id else None
    return Filed(case.id, placement, fields["account_id"], case.holder_role,
                 holder.name if holder else None)


def _visible(scope: NodeRef) -> sa.ColumnElement[bool]:
    low, high = subtree_bounds(scope.path)
    return sa.or_(sa.and_(CASES.c.node_path >= low, CASES.c.node_path < high),
                  sa.and_(REQUESTS.c.scope_path >= low, REQUESTS.c.scope_path < high))


def _ids(text: str | None) -> tuple[list[int], bool]:
    """The numbers of a comma-separated list, and whether any item was given at all (an item
    that is no id of ours matches nothing)."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    return [int(p) for p in parts if _is_id(p)], bool(parts)


def _window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime,
                                                                                 datetime]:
    # Stored times are UTC (SQLite compares them as text): a client's offset is folded in.
    start = start.astimezone(UTC) if start is not None else None
    end = end.astimezone(UTC) if end is not None else None
    if start is not None and end is not None and end < start:
        raise InvalidInput("open311_dates_reversed")
    if start is not None and end is not None and end - start > MAX_SPAN:
        raise InvalidInput("open311_span_too_long", days=MAX_SPAN.days)
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        start = end - MAX_SPAN
    return start, end if end is not None else start + MAX_SPAN


def _notes(session: Session, case_ids: Sequence[int]) -> dict[int, str]:
    """The newest words meant for the reporter, per case."""
    q = (sa.select(EVENTS.c.case_id, EVENTS.c.note).where(EVENTS.c.case_id.in_(case_ids))
         .where(EVENTS.c.kind.in_([k.value for k in PUBLIC_NOTES]))
         .where(EVENTS.c.note.is_not(None)).order_by(EVENTS.c.id))
    return {cid: note for cid, note in session.execute(q)}


def find_requests(session: Session, *, scope: NodeRef | None, now: datetime,
                  ids: str | None = None, service_codes: str | None = None,
                  start: datetime | None = None, end: datetime | None = None,
                  statuses: Sequence[str] = ()) -> list[RequestView]:
    """GET requests: by service_request_id (overriding the rest), else by service, window
    (default the last 90 days) and status; at most 1000, oldest first."""
    if scope is None:
        return []
    holder_node = N.alias("holder_node")
    home = N.alias("home")
    q = (sa.select(CASES.c.id, CASES.c.state, CASES.c.category_id, CATS.c.name, CASES.c.text,
                   holder_node.c.name.label("agency"), home.c.name.label("office"),
                   REQUESTS.c.placed_by, CASES.c.opened_at, CASES.c.updated_at,
                   CASES.c.deadline_at, REQUESTS.c.address_string, REQUESTS.c.address_id,
                   CASES.c.latitude, CASES.c.longitude, REQUESTS.c.media_url)
         .join(REQUESTS, REQUESTS.c.case_id == CASES.c.id)
         .outerjoin(CATS, CATS.c.id == CASES.c.category_id)
         .outerjoin(holder_node, holder_node.c.id == CASES.c.holder_node_id)
         .join(home, home.c.id == CASES.c.home_node_id)
         .where(_visible(scope)).order_by(CASES.c.id).limit(MAX_ROWS))
    wanted, by_id = _ids(ids)
    if by_id:
        q = q.where(CASES.c.id.in_(wanted))
    else:
        codes, by_code = _ids(service_codes)
        if by_code:
            q = q.where(CASES.c.category_id.in_(codes))
        low, high = _window(start, end, now)
        q = q.where(CASES.c.opened_at >= low, CASES.c.opened_at <= high)
        chosen: set[State] = set()
        for status in statuses:
            if status == "open":
                chosen |= {State.open, State.accepted}
            elif status == "closed":
                chosen |= CLOSED_STATES
            else:
                raise InvalidInput("open311_bad_status", status=status[:20])
        if chosen:
            q = q.where(CASES.c.state.in_(sorted(s.value for s in chosen)))
    rows = list(session.execute(q))
    notes = _notes(session, [r.id for r in rows])
    return [RequestView(
        case_id=r.id, state=State(r.state), status_notes=notes.get(r.id),
        service_code=str(r.category_id) if r.category_id else None, service_name=r.name,
        description=r.text, agency=r.agency, placed_by=r.placed_by, office=r.office,
        requested=as_utc(r.opened_at), updated=as_utc(r.updated_at),
        expected=as_utc(r.deadline_at) if r.deadline_at else None,
        address=r.address_string, address_id=r.address_id, lat=r.latitude, long=r.longitude,
        media_url=r.media_url) for r in rows]


def one_request(session: Session, *, scope: NodeRef, case_id: str, now: datetime) -> RequestView:
    """GET requests/{id}: one request the key may read (404 otherwise, as for no request)."""
    found = find_requests(session, scope=scope, now=now, ids=case_id) if "," not in case_id \
        else []
    if not found:
        raise NotFound("open311_request_unknown", id=case_id[:20])
    return found[0]


def token_request(session: Session, *, token: str) -> int:
    """GET tokens/{token}: every request is filed at once, so its token is its own id."""
    cid = int(token) if _is_id(token) else None
    if cid is None or session.get(Open311Request, cid) is None:
        raise NotFound("open311_token_unknown", token=token[:20])
    return cid


def updates(session: Session, *, scope: NodeRef | None, start: datetime | None,
            end: datetime | None, now: datetime) -> list[UpdateView]:
    """GET servicerequestupdates (FixMyStreet): status changes and answers of the requests
    the key may read, within the window (default the last 90 days); at most 1000."""
    if scope is None:
        return []
    low, high = _window(start, end, now)
    q = (sa.select(EVENTS.c.id, EVENTS.c.case_id, EVENTS.c.kind, EVENTS.c.at, EVENTS.c.note)
         .join(CASES, CASES.c.id == EVENTS.c.case_id)
         .join(REQUESTS, REQUESTS.c.case_id == CASES.c.id)
         .where(_visible(scope), EVENTS.c.kind.in_(list(UPDATE_STATUS)))
         .where(EVENTS.c.at >= low, EVENTS.c.at <= high)
         .order_by(EVENTS.c.id).limit(MAX_ROWS))
    return [UpdateView(r.id, r.case_id, UPDATE_STATUS[r.kind], as_utc(r.at),
                       (r.note or "") if r.kind in PUBLIC_NOTES else "")
            for r in session.execute(q)]


__all__ = ["Filed", "NewRequest", "PlacedBy", "RequestView", "UpdateView", "file_request",
           "find_requests", "narrowed", "one_request", "service", "services_list",
           "token_request", "updates"]
