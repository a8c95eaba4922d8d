"""Opening cases, adding to them and reading them back (the resident's side of the door)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import duplicates, events, ops, route_rules
from core.cases.away import cover
from core.cases.model import (
    ACTIVE_STATES,
    ATTACHMENTS,
    CASES,
    EVENTS,
    FOLLOWERS,
    Attachment,
    AttachmentKind,
    Case,
    CaseEvent,
    EventKind,
    Stage,
    State,
)
from core.cases.permissions import may_act
from core.cases.policy import CasePolicy
from core.cases.routing import Target, category_by_name, first_target
from core.clock import Clock, as_utc
from core.errors import Conflict, InvalidInput, InvalidTransition, PermissionDenied
from core.hierarchy.model import Person, Post, Role
from core.hierarchy.queries import (
    Chain,
    NodeRef,
    actor,
    chain_for_node,
    node_by_id,
    residence_of,
)
from core.media.store import is_unsaved
from core.settings import Settings

MAX_TEXT = 4000
# Stored as the case's text when a report had only a photo, voice or place (data: the
# dashboard, exports and every reader see the case by it).
NO_WORDS = "（图片/语音/位置）"


@dataclass(frozen=True)
class NewAttachment:
    """A file or a location as a platform handed it over (file_ref: the platform's file id
    or a stored path)."""

    kind: AttachmentKind | str
    file_ref: str | None = None
    platform: str | None = None
    mime: str | None = None
    size: int | None = None
    caption: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    stored: bool = False  # file_ref is already a media-store ref (web uploads)


def _check_attachment(a: NewAttachment) -> AttachmentKind:
    try:
        kind = AttachmentKind(a.kind)
    except ValueError:
        raise InvalidInput("attachment_kind_unknown", kind=a.kind) from None
    if kind is AttachmentKind.location:
        if a.latitude is None or a.longitude is None:
            raise InvalidInput("location_needs_coordinates")
        if not (-90 <= a.latitude <= 90 and -180 <= a.longitude <= 180):
            raise InvalidInput("location_out_of_range", lat=a.latitude, lon=a.longitude)
    elif not a.file_ref:
        raise InvalidInput("attachment_without_file", kind=kind.value)
    return kind


def _clean_text(text: str | None, *, required: bool) -> str:
    text = (text or "").replace("\x00", "").strip()  # PostgreSQL text refuses NUL
    if len(text) > MAX_TEXT:
        raise InvalidInput("text_too_long", length=len(text), most=MAX_TEXT)
    if required and not text:
        raise InvalidInput("text_required")
    return text


def attach(session: Session, case: Case, event: CaseEvent, items: Sequence[NewAttachment], *,
           purpose: str, by: int, now: datetime) -> None:
    assert case.id is not None
    for a in items:
        kind = _check_attachment(a)
        session.add(Attachment(
            case_id=case.id, event_id=event.id, kind=kind.value, purpose=purpose,
            platform=a.platform, file_ref=a.file_ref, mime=a.mime, size=a.size,
            caption=a.caption, latitude=a.latitude, longitude=a.longitude, added_by=by,
            created_at=now,
            fetch_status=None if kind is AttachmentKind.location else (
                "stored" if a.stored else "failed" if is_unsaved(a.file_ref) else "pending"),
            fetch_error="media store unavailable" if is_unsaved(a.file_ref) else None,
            stored_ref=a.file_ref if a.stored else None,
        ))


def resident_address(session: Session, case: Case) -> str | None:
    """The reporting household's address (人房关联), for the holder's eyes only."""
    return session.execute(
        sa.select(Post.address).where(  # type: ignore[call-overload]
            Post.person_id == case.resident_id, Post.node_id == case.home_node_id,
            Post.role == Role.resident.value,
        ).limit(1)
    ).scalar_one_or_none()


def open_case(session: Session, *, clock: Clock, settings: Settings, resident_id: int,
              text: str, opened_by: int | None = None, category: str | None = None,
              attachments: Sequence[NewAttachment] = (), via: str | None = None,
              home: NodeRef | None = None, detail: Mapping[str, Any] | None = None) -> Case:
    """Open a case for a resident and route it at once to the lowest filled tier above them
    (`home`: where the report belongs when the caller knows it already — the resident's own
    home as the flow read it with them, or the node a client system placed the report on, for
    a reporter who lives nowhere in the tree, an Open311 request; `detail`: more for the
    opening event, e.g. the hotline operator who took the call)."""
    now = clock.now()
    text = _clean_text(text, required=not attachments) or NO_WORDS
    for a in attachments:
        _check_attachment(a)
    home = home if home is not None else residence_of(session, resident_id)
    opener = opened_by if opened_by is not None else resident_id
    if opener != resident_id:
        who = actor(session, opener)
        if not (who.leads(home) or who.is_admin_of(home)):
            raise PermissionDenied("report_for_outsider")
    cat = category_by_name(session, category) if category else None
    chain = chain_for_node(session, home)
    policy = CasePolicy.from_settings(settings)
    if cat is not None:
        policy = policy.with_limits(reply=cat.answer_limit, handle=cat.handle_limit)
    routing = route_rules.route(session, category=cat, home=home, chain=chain, at=now,
                                tz=policy.tz)
    target = routing.target if routing is not None else first_target(chain)
    if target is None:
        raise Conflict("nobody_to_take", home=home.name)
    routed_to = target
    target, covering = cover(session, target, now=now)  # the holder is away: their stand-in
    case = Case(
        resident_id=resident_id, opened_by_id=opener, home_node_id=home.id, node_path=home.path,
        category_id=cat.id if cat else None, text=text, state=State.open.value, version=1,
        opened_at=now, updated_at=now, policy=policy.to_json(),
        first_holder_id=target.person.id, first_holder_role=target.role.value,
        covering_for_id=covering,
    )
    ops.assign(case, target)
    duplicates.locate(case, attachments)
    # Kept with the row: no card searches the 组 again.
    duplicates.first_look(case, session, chain.lineage)
    if route_rules.is_department(target):
        case.department_node_id = target.node.id
    # Before the first write: the deadline goes in with the row, not in an UPDATE after it.
    ops.start_stage(case, Stage.department if route_rules.is_department(target) else
                    Stage.reply, now)
    session.add(case)
    session.flush()
    assert case.id is not None
    ops.opened_here(session, case.id)
    ops.follow(session, case.id, [resident_id])
    skipped = [f"{s.role.value}@{s.node.code}" for s in chain.steps[: _index(chain, routed_to)]
               if s.vacant]
    event = ops.record(
        session, case, kind=EventKind.opened, at=now, actor_id=opener, from_state="",
        via=via, note=text,
        detail={"category": cat.name if cat else None, "skipped_vacant": skipped,
                "routed_to": target.role.value,
                **({"covering_for": covering} if covering is not None else {}),
                **(detail or {})},
    )
    if routing is not None:
        route_rules.record_routing(session, case, routing, at=now, kind=EventKind.routed)
    session.flush()
    attach(session, case, event, attachments, purpose="report", by=opener, now=now)
    events.publish(session)
    return case


def _index(chain: Chain, target: Target) -> int:
    for i, s in enumerate(chain.steps):
        if s.role is target.role and s.node.id == target.node.id:
            return i
    return 0


def add_to_case(session: Session, *, clock: Clock, case_id: int, person_id: int,
                text: str | None = None, attachments: Sequence[NewAttachment] = (),
                version: int | None = None, via: str | None = None, notify: bool = True,
                detail: Mapping[str, Any] | None = None) -> Case:
    """Append a resident's later words, photos or location to their case for the holder
    (`notify=False`: only the case's timeline gets it, for a resident sending a flood;
    `detail`: more for the event, e.g. the hotline operator who typed the words)."""
    now = clock.now()
    case = ops.load(session, case_id)
    if person_id not in ops.followers(session, case_id):
        from core.cases.permissions import refuse

        raise refuse(session, case=case, person_id=person_id, action="add", at=now, via=via,
                     reason="add_not_yours", params={"case": case_id})
    if version is not None:
        ops.check_version(session, case, version)
    if State(case.state) not in ACTIVE_STATES:
        raise InvalidTransition("add_case_ended", case=case_id)
    body = _clean_text(text, required=not attachments)
    for a in attachments:
        _check_attachment(a)
    case.updated_at = now
    duplicates.locate(case, attachments)
    event = ops.record(session, case, kind=EventKind.added, at=now, actor_id=person_id,
                       via=via, note=body or None,
                       # The flood rule: the timeline keeps it, nobody is told (bot/notify).
                       detail={"attachments": len(attachments), **({} if notify else
                                                                   {"quiet": True}),
                               **(detail or {})})
    session.flush()
    attach(session, case, event, attachments, purpose="addition", by=person_id, now=now)
    events.publish(session)
    return case


def case_to_append_to(session: Session, *, clock: Clock, settings: Settings,
                      resident_id: int) -> int | None:
    """The resident's case that a message arriving now should extend rather than open anew:
    their newest unresolved case they wrote to within the append window."""
    since = clock.now() - settings.append_window
    found: int | None = session.execute(
        _append_stmt(), {"resident": resident_id, "since": since}).scalar_one_or_none()
    return found


@functools.cache
def _append_stmt() -> sa.Select[Any]:
    # Built once (core/db.py, "Statements built once"): every report runs it.
    # EXISTS over the case's own (case_id, kind, at) entries: a max() over a correlated
    # subquery let SQLite walk every opened/added event ever written (ix_case_event_kind_at).
    resident: sa.BindParameter[int] = sa.bindparam("resident")
    wrote_lately = (
        sa.select(sa.literal(1))
        .where(EVENTS.c.case_id == CASES.c.id, EVENTS.c.actor_id == resident)
        .where(EVENTS.c.kind.in_([EventKind.opened.value, EventKind.added.value]))
        .where(EVENTS.c.at >= sa.bindparam("since"))
        .exists()
    )
    return (
        sa.select(CASES.c.id)
        .join(FOLLOWERS, FOLLOWERS.c.case_id == CASES.c.id)
        .where(FOLLOWERS.c.person_id == resident)
        .where(CASES.c.state.in_([State.open.value, State.accepted.value]))
        .where(wrote_lately)
        .order_by(CASES.c.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class CaseView:
    """A case as people see it: for a card in a chat or a row on the dashboard."""

    id: int
    version: int
    state: State
    text: str
    category: str | None
    resident_id: int
    holder_id: int | None
    holder_name: str | None
    holder_role: str | None
    stage: str | None
    deadline_at: datetime | None
    overdue: bool
    opened_at: datetime
    rating: int | None
    merged_into_id: int | None
    attachments: int
    supporters: int = 1  # residents who reported it (N 人反映): the reporter and "me too"s


def view(session: Session, *, case_id: int, now: datetime) -> CaseView:
    """What a case looks like now (no lock; for display)."""
    from core.hierarchy.model import Category

    case = ops.load(session, case_id, lock=False)
    holder = session.get(Person, case.holder_id) if case.holder_id else None
    cat = session.get(Category, case.category_id) if case.category_id else None
    n_att = session.execute(
        sa.select(sa.func.count()).where(ATTACHMENTS.c.case_id == case_id)
    ).scalar_one()
    deadline = as_utc(case.deadline_at) if case.deadline_at else None
    return CaseView(
        id=case_id, version=case.version, state=State(case.state), text=case.text,
        category=cat.name if cat else None, resident_id=case.resident_id,
        holder_id=case.holder_id, holder_name=holder.name if holder else None,
        holder_role=case.holder_role, stage=case.stage, deadline_at=deadline,
        overdue=State(case.state) in (State.open, State.accepted) and (
            case.missed_deadlines > 0
            or bool(deadline and deadline < now and case.stage != Stage.confirm.value)),
        opened_at=as_utc(case.opened_at), rating=case.rating,
        merged_into_id=case.merged_into_id, attachments=int(n_att),
        supporters=len(ops.followers(session, case_id)),
    )


def history(session: Session, *, case_id: int) -> list[CaseEvent]:
    """Every event of a case, oldest first: its history and its audit trail."""
    q = sa.select(CaseEvent).where(EVENTS.c.case_id == case_id).order_by(EVENTS.c.id)
    return list(session.execute(q).scalars())


def attachments_of(session: Session, *, case_id: int) -> list[Attachment]:
    q = sa.select(Attachment).where(ATTACHMENTS.c.case_id == case_id).order_by(ATTACHMENTS.c.id)
    return list(session.execute(q).scalars())


def cases_held_by(session: Session, *, person_id: int, limit: int = 50) -> list[Case]:
    """A leader's own work list: cases they hold that wait for them, most urgent first."""
    q = (
        sa.select(Case)
        .where(CASES.c.holder_id == person_id)
        .where(CASES.c.state.in_([State.open.value, State.accepted.value]))
        .order_by(CASES.c.deadline_at, CASES.c.id)
        .limit(limit)
    )
    return list(session.execute(q).scalars())


def cases_of_resident(session: Session, *, person_id: int, limit: int = 20) -> list[Case]:
    """The cases a resident follows, newest first."""
    q = (
        sa.select(Case)
        .join(FOLLOWERS, FOLLOWERS.c.case_id == CASES.c.id)
        .where(FOLLOWERS.c.person_id == person_id)
        .order_by(CASES.c.id.desc())
        .limit(limit)
    )
    return list(session.execute(q).scalars())


def can_act(session: Session, *, case_id: int, person_id: int) -> bool:
    """Whether a leader or admin may act on the case (to decide which buttons to show)."""
    case = ops.load(session, case_id, lock=False)
    home = node_by_id(session, case.home_node_id)
    holder_node = node_by_id(session, case.holder_node_id) if case.holder_node_id else None
    return may_act(actor(session, person_id), holder_id=case.holder_id,
                   holder_role=case.holder_role, holder_node=holder_node, home=home)
