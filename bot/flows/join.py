"""Joining: an invite link (/start <code>) or a shared phone number; strangers' words are kept."""

from __future__ import annotations

from typing import Any

from bot.flows.context import Ctx
from bot.flows.types import Inbound, Media
from core import conversations
from core.cases.services import NewAttachment, open_case
from core.hierarchy.invites import redeem
from core.hierarchy.queries import actor, person_by_phone
from core.hierarchy.services import create_person, link_identity
from core.hierarchy.tree import ROLE_LABEL_ZH, normalize_phone

INVITE_PREFIX = "j"


def payload_of(inbound: Inbound) -> dict[str, Any]:
    """What a stranger sent, in a form that survives until they join."""
    return {
        "text": inbound.text,
        "media": [m.__dict__ for m in inbound.media],
        "message_id": inbound.message_id,
    }


def keep_stranger_words(ctx: Ctx) -> None:
    """Keep a stranger's report (nothing is lost) and tell them how to join."""
    i = ctx.inbound
    if i.text or i.media:
        conversations.keep_pending(ctx.session, platform=i.platform, sender_id=i.sender_id,
                                   chat_id=i.chat_id, payload=payload_of(i), now=ctx.clock.now())
    ctx.say(ctx.t("how_to_join"), request_contact=True)


def start(ctx: Ctx) -> None:
    """/start, with or without an invite code."""
    code = ctx.inbound.args[0] if ctx.inbound.args else ""
    if code.startswith(INVITE_PREFIX):
        _join_by_invite(ctx, code)
    elif ctx.actor is None:
        ctx.say(ctx.t("how_to_join"), request_contact=True)
    else:
        welcome(ctx)


def _join_by_invite(ctx: Ctx, code: str) -> None:
    i = ctx.inbound
    now = ctx.clock.now()
    if ctx.actor is None:
        person = create_person(ctx.session, name=i.sender_name or "居民", phone=None, now=now,
                               language=ctx.lang)
        assert person.id is not None
        link_identity(ctx.session, person_id=person.id, platform=i.platform,
                      external_id=i.sender_id, now=now)
        person_id = person.id
    else:
        person_id = ctx.actor.person.id
    redeem(ctx.session, code=code, person_id=person_id)
    ctx.actor = actor(ctx.session, person_id)
    welcome(ctx)
    route_pending(ctx)


def shared_phone(ctx: Ctx) -> None:
    """The sender shared their own contact: match it against the imported people."""
    i = ctx.inbound
    phone = normalize_phone(i.contact_phone or "")
    person_id = person_by_phone(ctx.session, phone) if phone else None
    if person_id is None:
        ctx.say(ctx.t("phone_not_found", phone=i.contact_phone or ""))
        return
    link_identity(ctx.session, person_id=person_id, platform=i.platform,
                  external_id=i.sender_id, now=ctx.clock.now())
    ctx.actor = actor(ctx.session, person_id)
    welcome(ctx)
    route_pending(ctx)


def welcome(ctx: Ctx) -> None:
    assert ctx.actor is not None
    a = ctx.actor
    leader_roles = [ROLE_LABEL_ZH[r] for r, _ in a.posts if r.value != "resident"]
    if leader_roles:
        ctx.say(ctx.t("welcome_leader", name=a.person.name, roles="、".join(leader_roles)))
    homes = a.residences()
    if homes or not leader_roles:
        home = homes[0].name if homes else "—"
        ctx.say(ctx.t("welcome_resident", name=a.person.name, home=home))


def route_pending(ctx: Ctx) -> None:
    """Open a case from everything the person sent before they joined."""
    assert ctx.actor is not None
    i = ctx.inbound
    if not ctx.actor.residences():
        return
    pending = conversations.take_pending(ctx.session, platform=i.platform, sender_id=i.sender_id)
    if not pending:
        return
    texts = [p.payload.get("text") for p in pending if p.payload.get("text")]
    media = [Media(**m) for p in pending for m in p.payload.get("media", [])]
    case = open_case(
        ctx.session, clock=ctx.clock, settings=ctx.settings, resident_id=ctx.actor.person.id,
        text="\n".join(t for t in texts if t), attachments=[to_attachment(m, i.platform)
                                                           for m in media],
        via=i.platform,
    )
    for p in pending:
        p.case_id = case.id
    ctx.say(ctx.t("pending_routed", n=len(pending)), case_id=case.id)


KIND_MAP = {"photo": "photo", "voice": "voice", "audio": "voice", "video": "video",
            "document": "file", "location": "location"}


def to_attachment(m: Media, platform: str) -> NewAttachment:
    return NewAttachment(
        kind=KIND_MAP.get(m.kind, "file"), file_ref=m.stored_ref or m.file_ref, platform=platform,
        mime=m.mime, size=m.size, caption=m.recognition, latitude=m.latitude,
        longitude=m.longitude, stored=m.stored_ref is not None,
    )
