"""Invite codes: a 邻's standing link (and QR poster) that makes whoever follows it a resident
there, and one-time person invites an admin makes for one leader who uses only WeChat, WeCom or
Telegram (a link, a QR code, or `绑定 <code>` typed into the chat)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from core.errors import InvalidInput, NotFound, PermissionDenied, Phrase
from core.hierarchy.model import ChatIdentity, Level, Person, Post, Proof, Role
from core.hierarchy.queries import Actor, NodeRef, actor, node_by_id, person_by_phone
from core.hierarchy.scope import OUTSIDE, TOO_HIGH, appoint_refusal
from core.hierarchy.services import link_identity

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no look-alikes on a printed poster
PREFIX = "j"  # every invite code, so `/start <code>` and `/join/<code>` take both kinds
PERSON_CODE_LEN = 8  # short enough to type into WeChat; one-time and expiring
TYPED = re.compile(r"^[a-z0-9]{8}$")


class Invite(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    node_id: int = Field(foreign_key="node.id", index=True)
    created_by: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    uses: int = 0
    revoked: bool = False
    # A person invite binds the account that redeems it to this person, once, before it expires.
    person_id: int | None = Field(default=None, foreign_key="person.id")
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    used_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite hands back naive datetimes


def invite_for(session: Session, *, by: Actor, node: NodeRef, now: datetime) -> Invite:
    """The standing invite of a neighborhood, made on first ask (its 邻长 or anyone above)."""
    if node.level is not Level.neighborhood:
        raise InvalidInput("invite_neighborhood_only")
    if not (by.leads(node) or by.is_admin_of(node)):
        raise PermissionDenied("invite_not_yours")
    existing = session.exec(select(Invite).where(
        Invite.node_id == node.id, Invite.revoked == False,  # noqa: E712
        Invite.person_id == None,  # noqa: E711
    ).order_by(sa.text("id"))).first()
    if existing is not None:
        return existing
    invite = Invite(code=PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(10)),
                    node_id=node.id, created_by=by.person.id, created_at=now)
    session.add(invite)
    session.flush()
    return invite


def _scope_refusal(by: Actor, posts: tuple[tuple[Role, NodeRef], ...]) -> Phrase | None:
    """Why `by` may not bind a chat account to the holder of these posts (None: they may):
    the scope rule for a person's chat accounts (core/hierarchy/scope.py)."""
    if not posts:
        return OUTSIDE
    refusals = {appoint_refusal(by, r, n, n.level) for r, n in posts} - {None}
    return OUTSIDE if OUTSIDE in refusals else next(iter(refusals), None)


def person_invite(session: Session, *, by: Actor, phone: str, now: datetime,
                  ttl: timedelta) -> tuple[Invite, Person]:
    """A one-time invite for the person with this phone; only for someone who could appoint
    every post they hold (a town admin invites village 书记 and below, not another town admin)."""
    if not by.admin_scopes():
        raise PermissionDenied("person_invite_admins_only")
    pid = person_by_phone(session, phone)
    target = actor(session, pid) if pid is not None else None
    why = _scope_refusal(by, target.posts) if target is not None else OUTSIDE
    if why == TOO_HIGH:
        raise PermissionDenied("person_invite_too_high")
    if why is not None or target is None:
        # One answer for "nobody" and "not yours": the command is no phone-number oracle.
        raise NotFound("person_invite_nobody", phone=phone)
    person = session.get(Person, target.person.id)
    assert person is not None
    node = next((n for r, n in target.posts if r is not Role.resident), target.posts[0][1])
    for older in session.exec(select(Invite).where(  # one live invite a person: the newest
            Invite.person_id == person.id, Invite.used_at == None,  # noqa: E711
            Invite.revoked == False)):  # noqa: E712
        older.revoked = True
    invite = Invite(code=PREFIX + "".join(secrets.choice(ALPHABET)
                                          for _ in range(PERSON_CODE_LEN)),
                    node_id=node.id, created_by=by.person.id, created_at=now,
                    person_id=person.id, expires_at=now + ttl)
    session.add(invite)
    session.flush()
    return invite, person


def open_person_invites(session: Session, *, by: Actor, now: datetime,
                        limit: int = 200) -> list[tuple[Invite, str]]:
    """The person invites still redeemable inside what `by` administers, newest first, with
    the invited person's name."""
    rows = session.exec(select(Invite, Person.name).join(
        Person, Person.id == Invite.person_id).where(  # type: ignore[arg-type]
        Invite.revoked == False, Invite.used_at == None,  # noqa: E711, E712
    ).order_by(sa.text("invite.id DESC")).limit(limit * 4)).all()
    out = []
    for invite, name in rows:
        if invite.expires_at is not None and _aware(invite.expires_at) <= now:
            continue
        if by.is_admin_of(node_by_id(session, invite.node_id)):
            out.append((invite, name))
    return out[:limit]


def person_invite_by_id(session: Session, *, by: Actor, invite_id: int) -> Invite:
    """A person invite inside what `by` administers (anything else: not found)."""
    invite = session.get(Invite, invite_id)
    if invite is None or invite.person_id is None or not by.is_admin_of(
            node_by_id(session, invite.node_id)):
        raise NotFound("invite_not_found")
    return invite


def typed_code(text: str) -> str | None:
    """The invite code in `绑定 K3M9X2AB` (any case, spaces or dashes), or None."""
    bare = re.sub(r"[\s\-]", "", text).lower()
    return PREFIX + bare if TYPED.fullmatch(bare) else None


def shown_code(code: str) -> str:
    """How a person invite's code is printed for typing: `K3M9-X2AB`."""
    bare = code.removeprefix(PREFIX).upper()
    return f"{bare[:4]}-{bare[4:]}"


def lookup(session: Session, *, code: str) -> Invite:
    """The invite behind a code; a polite refusal when it is unknown or revoked."""
    code = code.strip()
    if not code or len(code) > 64:
        raise InvalidInput("invite_malformed")
    invite = session.exec(select(Invite).where(Invite.code == code)).first()
    if invite is None:
        raise NotFound("invite_unknown")
    if invite.revoked:
        raise NotFound("invite_withdrawn")
    return invite


def redeem(session: Session, *, code: str, person_id: int) -> NodeRef:
    """Make the person a resident of the invite's neighborhood; returns that neighborhood."""
    invite = lookup(session, code=code)
    if invite.person_id is not None:
        raise InvalidInput("invite_is_personal")
    node = node_by_id(session, invite.node_id)
    held = session.exec(select(Post).where(
        Post.person_id == person_id, Post.role == Role.resident.value, Post.node_id == node.id
    )).first()
    if held is None:
        session.add(Post(person_id=person_id, node_id=node.id, role=Role.resident.value))
    elif held.moved_at is not None:
        held.moved_at = None  # marked 已搬离 by a campaign, and joining again: back in routing
    invite.uses += 1
    session.flush()
    return node


def redeem_person_invite(session: Session, *, invite: Invite, platform: str, external_id: str,
                         now: datetime) -> int:
    """Bind the sender's chat account to the invited person, once; returns the person's id."""
    if invite.person_id is None:
        raise InvalidInput("invite_not_personal")
    if invite.used_at is not None:
        raise InvalidInput("invite_used")
    if invite.expires_at is not None and _aware(invite.expires_at) <= now:
        raise InvalidInput("invite_expired")
    _claim_from_poster(session, person_id=invite.person_id, platform=platform,
                       external_id=external_id)
    link_identity(session, person_id=invite.person_id, platform=platform,
                  external_id=external_id, now=now, proof=Proof.person_invite)
    invite.used_at, invite.uses = now, invite.uses + 1
    session.flush()
    return invite.person_id


def _claim_from_poster(session: Session, *, person_id: int, platform: str,
                       external_id: str) -> None:
    """A leader who first joined by a 邻's poster became a throwaway resident: their person
    invite takes the account over, with its resident posts, when it has reported nothing."""
    ident = session.exec(select(ChatIdentity).where(
        ChatIdentity.platform == platform, ChatIdentity.external_id == external_id)).first()
    if ident is None or ident.person_id == person_id or ident.proof != Proof.invite.value:
        return
    old = ident.person_id
    phone = session.exec(select(Person.phone).where(Person.id == old)).first()
    roles = set(session.exec(select(Post.role).where(Post.person_id == old)).all())
    reported = session.execute(sa.text("SELECT 1 FROM cases WHERE resident_id = :p LIMIT 1"),
                               {"p": old}).first()
    if phone is not None or roles - {Role.resident.value}:
        return  # a real person: link_identity refuses the account politely
    if reported is not None:
        raise InvalidInput("invite_account_in_use")
    for post in session.exec(select(Post).where(Post.person_id == old)).all():
        held = session.exec(select(Post).where(
            Post.person_id == person_id, Post.role == post.role, Post.node_id == post.node_id
        )).first()
        if held is None:
            post.person_id = person_id
        else:
            session.delete(post)
    ident.person_id = person_id
    session.flush()


def revoke(session: Session, *, by: Actor, code: str) -> Invite:
    """Stop an invite: its maker, or an admin of its node (a 邻's: also its 邻长)."""
    invite = lookup(session, code=code)
    node = node_by_id(session, invite.node_id)
    if not (invite.created_by == by.person.id or by.is_admin_of(node)
            or (invite.person_id is None and by.leads(node))):
        raise NotFound("invite_unknown")
    invite.revoked = True
    return invite
