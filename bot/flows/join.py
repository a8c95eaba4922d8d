"""Joining: an invite (/start <code>, `绑定 <code>`), a proven phone number (Telegram's own
contact, the web chat's code), or a typed one a 邻长 confirms; strangers' words are kept."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from bot.flows.context import Ctx
from bot.flows.texts import t
from bot.flows.types import Button, Inbound, Media, Outbound, Press
from core import conversations
from core.cases.services import NewAttachment, open_case
from core.clock import Clock
from core.hierarchy import binding
from core.hierarchy.invites import PREFIX as INVITE_PREFIX
from core.hierarchy.invites import lookup, redeem, redeem_person_invite
from core.hierarchy.model import STRONG_PROOFS, ChatIdentity, Person, Proof
from core.hierarchy.queries import Actor, actor, person_by_phone
from core.hierarchy.services import create_person, link_identity
from core.hierarchy.tree import ROLE_LABEL_ZH, normalize_phone
from core.settings import Settings

PLATFORM_ZH = {"wechat": "微信", "wecom": "企业微信", "telegram": "Telegram", "web": "网页聊天"}
# Where a shared phone number is proven: Telegram checks the contact is the sender's own, the
# web chat sent a code to an account the person already has. Anywhere else it is only typed.
PROVEN_PHONE = {"telegram": Proof.contact, "web": Proof.code}


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
        join_by_code(ctx, code)
    elif ctx.actor is None:
        ctx.say(ctx.t("how_to_join"), request_contact=True)
    else:
        welcome(ctx)


def join_by_code(ctx: Ctx, code: str) -> None:
    """An invite code, from a link or typed: a person invite binds this account to that
    person; a 邻's makes the sender a resident there."""
    invite = lookup(ctx.session, code=code)
    if invite.person_id is None:
        _join_by_invite(ctx, code)
        return
    i = ctx.inbound
    person_id = redeem_person_invite(ctx.session, invite=invite, platform=i.platform,
                                     external_id=i.sender_id, now=ctx.clock.now())
    ctx.actor = actor(ctx.session, person_id)
    welcome(ctx)
    route_pending(ctx)


def _join_by_invite(ctx: Ctx, code: str) -> None:
    i = ctx.inbound
    now = ctx.clock.now()
    if ctx.actor is None:
        person = create_person(ctx.session, name=i.sender_name or "居民", phone=None, now=now,
                               language=ctx.lang)
        assert person.id is not None
        link_identity(ctx.session, person_id=person.id, platform=i.platform,
                      external_id=i.sender_id, now=now, proof=Proof.invite)
        person_id = person.id
    else:
        person_id = ctx.actor.person.id
    redeem(ctx.session, code=code, person_id=person_id)
    ctx.actor = actor(ctx.session, person_id)
    welcome(ctx)
    route_pending(ctx)


def shared_phone(ctx: Ctx) -> None:
    """The sender shared their own, proven, number: match it against the imported people."""
    i = ctx.inbound
    proof = PROVEN_PHONE.get(i.platform)
    if proof is None:
        typed_phone(ctx, i.contact_phone or "")
        return
    phone = normalize_phone(i.contact_phone or "")
    person_id = person_by_phone(ctx.session, phone) if phone else None
    if person_id is None:
        ctx.say(ctx.t("phone_not_found", phone=i.contact_phone or ""))
        return
    if proof is Proof.code and not _channels_all_strong(ctx, person_id):
        # The code went to every account of the person; one of them proves only a typed number.
        proof = Proof.resident_confirmed
    link_identity(ctx.session, person_id=person_id, platform=i.platform,
                  external_id=i.sender_id, now=ctx.clock.now(), proof=proof)
    ctx.actor = actor(ctx.session, person_id)
    welcome(ctx)
    route_pending(ctx)


def _channels_all_strong(ctx: Ctx, person_id: int) -> bool:
    """Whether every account a web chat code could have reached proves its owner."""
    from sqlmodel import select

    proofs = ctx.session.exec(select(ChatIdentity.proof).where(
        ChatIdentity.person_id == person_id, ChatIdentity.platform != "web",
        ChatIdentity.unreachable == False)).all()  # noqa: E712
    return all(Proof(p) in STRONG_PROOFS for p in proofs)


def typed_phone(ctx: Ctx, text: str) -> None:
    """A stranger typed a phone number: one answer whoever it belongs to (no oracle); only a
    resident's may be bound, once their 邻长 taps 是."""
    i = ctx.inbound
    ctx.say(ctx.t("phone_typed"), request_contact=True)  # Telegram can prove it at once
    phone = normalize_phone(text)
    asked = binding.ask(ctx.session, phone=phone or "", platform=i.platform,
                        external_id=i.sender_id, chat_id=i.chat_id,
                        now=ctx.clock.now()) if phone else None
    if asked is None:
        return
    rid = asked.request.id or 0
    for who in asked.confirmers:
        lang = _lang_of(ctx, who.id)
        ctx.out.append(Outbound(
            text=t(lang, "bind_ask", name=asked.resident.name, home=asked.home.name,
                   platform=PLATFORM_ZH.get(i.platform, i.platform)),
            kind="bind_request", person_id=who.id,
            buttons=(Button(t(lang, "bind_yes"), "bind_yes", rid),
                     Button(t(lang, "bind_no"), "bind_no", rid))))


def _lang_of(ctx: Ctx, person_id: int) -> str:
    person = ctx.session.get(Person, person_id)
    return person.language if person else "zh"


def decide(ctx: Ctx, p: Press) -> None:
    """The 邻长 tapped 是 or 不是 on a bind request."""
    assert ctx.actor is not None
    answer, outs = answer_bind_request(ctx.session, by=ctx.actor, request_id=p.case_id,
                                       yes=p.action == "bind_yes", clock=ctx.clock,
                                       settings=ctx.settings, lang=ctx.lang)
    ctx.ack(answer)
    ctx.say(answer)
    ctx.out.extend(outs)


def answer_bind_request(session: Session, *, by: Actor, request_id: int, yes: bool,
                        clock: Clock, settings: Settings, lang: str = "zh"
                        ) -> tuple[str, list[Outbound]]:
    """A 邻长's or admin's answer to a bind request (chat or dashboard): the sentence for them
    and what the requester is told; on 是 what they sent before binding becomes a case."""
    req, home = binding.decide(session, by=by, request_id=request_id, yes=yes,
                               now=clock.now(), ttl=settings.bind_request_ttl)
    resident = session.get(Person, req.person_id)
    assert resident is not None
    rl = resident.language
    answer = t(lang, "bind_done_yes" if yes else "bind_done_no", name=resident.name)

    def tell(text: str, case_id: int | None = None) -> Outbound:
        return Outbound(text=text, platform=req.platform, address=req.chat_id, case_id=case_id)

    if not yes:
        return answer, [tell(t(rl, "bind_refused"))]
    outs = [tell(t(rl, "welcome_resident", name=resident.name, home=home.name))]
    routed = open_pending(session, clock=clock, settings=settings, person_id=req.person_id,
                          platform=req.platform, sender_id=req.external_id)
    if routed is not None:
        outs.append(tell(t(rl, "pending_routed", n=routed[1]), routed[0]))
    return answer, outs


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
    routed = open_pending(ctx.session, clock=ctx.clock, settings=ctx.settings,
                          person_id=ctx.actor.person.id, platform=i.platform,
                          sender_id=i.sender_id)
    if routed is not None:
        ctx.say(ctx.t("pending_routed", n=routed[1]), case_id=routed[0])


def open_pending(session: Session, *, clock: Clock, settings: Settings, person_id: int,
                 platform: str, sender_id: str) -> tuple[int, int] | None:
    """A case from what this chat account sent before it was bound: (case id, messages)."""
    if not actor(session, person_id).residences():
        return None
    pending = conversations.take_pending(session, platform=platform, sender_id=sender_id)
    if not pending:
        return None
    texts = [p.payload.get("text") for p in pending if p.payload.get("text")]
    media = [Media(**m) for p in pending for m in p.payload.get("media", [])]
    case = open_case(
        session, clock=clock, settings=settings, resident_id=person_id,
        text="\n".join(x for x in texts if x), attachments=[to_attachment(m, platform)
                                                           for m in media],
        via=platform,
    )
    for p in pending:
        p.case_id = case.id
    assert case.id is not None
    return case.id, len(pending)


KIND_MAP = {"photo": "photo", "voice": "voice", "audio": "voice", "video": "video",
            "document": "file", "location": "location"}


def to_attachment(m: Media, platform: str) -> NewAttachment:
    return NewAttachment(
        kind=KIND_MAP.get(m.kind, "file"), file_ref=m.stored_ref or m.file_ref, platform=platform,
        mime=m.mime, size=m.size, caption=m.recognition, latitude=m.latitude,
        longitude=m.longitude, stored=m.stored_ref is not None,
    )
