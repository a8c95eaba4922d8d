"""Write side of the hierarchy outside imports: chat accounts, posts and bound chats."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, phrase
from core.hierarchy.model import (
    STRONG_PROOFS,
    ChatBinding,
    ChatIdentity,
    Level,
    Person,
    Platform,
    Post,
    Proof,
    Role,
    Tier,
)
from core.hierarchy.queries import Actor, NodeRef, node_by_code, node_by_id
from core.hierarchy.scope import appoint_refusal, may_bind
from core.hierarchy.tree import (
    ROLE_LABEL_ZH,
    ROLE_LEVELS,
    TIER_FOR_LEVEL,
    normalize_phone,
    parse_role,
    role_error,
)


def link_identity(session: Session, *, person_id: int, platform: Platform | str,
                  external_id: str, now: datetime, proof: Proof | str) -> ChatIdentity:
    """Bind a chat account to a person, recording the proof; refuses an account that already
    belongs to another. A stronger proof for the same person replaces a weaker one."""
    platform, proof = Platform(platform), Proof(proof)
    existing = session.exec(select(ChatIdentity).where(
        ChatIdentity.platform == platform.value, ChatIdentity.external_id == str(external_id)
    )).first()
    if existing is not None:
        if existing.person_id != person_id:
            raise Conflict("identity_taken", platform=platform.value)
        existing.last_seen_at = now
        existing.unreachable = False
        if proof in STRONG_PROOFS and Proof(existing.proof) not in STRONG_PROOFS:
            existing.proof = proof.value
        return existing
    ident = ChatIdentity(person_id=person_id, platform=platform.value,
                         external_id=str(external_id), last_seen_at=now, proof=proof.value)
    session.add(ident)
    session.flush()
    return ident


def identity_proof(session: Session, *, platform: str, external_id: str) -> Proof | None:
    """How this chat account was bound (None: it is not)."""
    got = session.exec(select(ChatIdentity.proof).where(
        ChatIdentity.platform == platform, ChatIdentity.external_id == str(external_id)
    )).first()
    return Proof(got) if got is not None else None


def create_person(session: Session, *, name: str, phone: str | None, now: datetime,
                  language: str = "zh") -> Person:
    """A new person (a resident joining by invite may not have given a phone)."""
    norm = None
    if phone:
        norm = normalize_phone(phone)
        if norm is None:
            raise InvalidInput("phone_malformed", phone=phone)
        if session.exec(select(Person).where(Person.phone == norm)).first() is not None:
            raise Conflict("phone_taken")
    person = Person(name=name.strip()[:100] or ROLE_LABEL_ZH[Role.resident], phone=norm,
                    language=language, created_at=now)
    session.add(person)
    session.flush()
    return person


def assign_role(session: Session, *, by: Actor, phone: str, role: Role | str,
                node_code: str) -> Post:
    """An admin gives the person with this phone a post on a node within their subtree,
    ranking below their own (core.hierarchy.scope)."""
    parsed = parse_role(str(role))
    if parsed is None:
        raise InvalidInput("role_unknown", role=str(role))
    node = node_by_code(session, node_code)
    refused = appoint_refusal(by, parsed, node, node.level)
    if refused:
        raise PermissionDenied("appoint_refused", post=phrase(f"role.{parsed.value}"),
                               node=node.name, code=node.code, why=refused)
    if role_error(parsed, node.level):
        allowed = sorted(lv.value for lv in ROLE_LEVELS[parsed] or ())
        raise InvalidInput("role_not_on_level", role=parsed.value, level=node.level.value,
                           where=" or ".join(allowed))
    norm = normalize_phone(phone)
    if norm is None:
        raise InvalidInput("phone_malformed", phone=phone)
    person = session.exec(select(Person).where(Person.phone == norm)).first()
    if person is None:
        raise NotFound("phone_nobody", phone=norm)
    post = session.exec(select(Post).where(
        Post.person_id == person.id, Post.role == parsed.value, Post.node_id == node.id
    )).first()
    if post is None:
        assert person.id is not None
        post = Post(person_id=person.id, node_id=node.id, role=parsed.value)
        session.add(post)
        session.flush()
    return post


def bind_chat(session: Session, *, by: Actor, platform: Platform | str, chat_id: str,
              node_code: str, title: str | None, now: datetime,
              tier: Tier | str | None = None) -> ChatBinding:
    """Bind a chat group to a node and the tier pair it mirrors (an admin of that node only)."""
    node = node_by_code(session, node_code)
    if not may_bind(by, node):
        raise PermissionDenied("bind_not_yours", code=node.code)
    chosen = Tier(tier) if tier else TIER_FOR_LEVEL.get(node.level)
    if chosen is None:
        raise InvalidInput("bind_level", level=node.level.value)
    existing = session.exec(select(ChatBinding).where(
        ChatBinding.platform == str(Platform(platform).value), ChatBinding.chat_id == str(chat_id)
    )).first()
    if existing is not None:
        if not may_bind(by, node_by_id(session, existing.node_id)):
            # Re-binding moves the chat off its node: that node's admins decide that.
            raise PermissionDenied("rebind_not_yours")
        existing.node_id, existing.tier, existing.title = node.id, chosen.value, title
        existing.bound_by, existing.created_at = by.person.id, now
        return existing
    binding = ChatBinding(platform=Platform(platform).value, chat_id=str(chat_id),
                          node_id=node.id, tier=chosen.value, title=title,
                          bound_by=by.person.id, created_at=now)
    session.add(binding)
    session.flush()
    return binding


def unbind_chat(session: Session, *, by: Actor, platform: Platform | str, chat_id: str) -> None:
    """Remove a chat group's binding (an admin of its node only)."""
    binding = session.exec(select(ChatBinding).where(
        ChatBinding.platform == Platform(platform).value, ChatBinding.chat_id == str(chat_id)
    )).first()
    if binding is None:
        raise NotFound("chat_not_bound")
    if not may_bind(by, node_by_id(session, binding.node_id)):
        raise PermissionDenied("unbind_not_yours")
    session.delete(binding)


def bindings_for(session: Session, *, nodes: list[NodeRef]) -> list[ChatBinding]:
    """The chats bound to any of these nodes (where a case card is posted)."""
    if not nodes:
        return []
    return list(session.exec(select(ChatBinding).where(
        ChatBinding.node_id.in_([n.id for n in nodes])  # type: ignore[attr-defined]
    ).order_by(sa.text("id"))))


__all__ = ["Level", "assign_role", "bind_chat", "bindings_for", "create_person",
           "identity_proof", "link_identity", "unbind_chat"]
