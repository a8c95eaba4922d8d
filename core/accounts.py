"""Dashboard accounts: one-time login links from the bot, passwords set by admins, sessions.

Only hashes of tokens and passwords are stored, so a copy of the database signs nobody in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from core import attempts
from core.clock import as_utc
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Role
from core.hierarchy.queries import Actor, NodeRef, actor, person_by_phone
from core.hierarchy.scope import may_edit_person

_TS = sa.DateTime(timezone=True)
# Roles that may use the dashboard, and over which node: 书记 their village, admins their office.
DASHBOARD_ROLES = frozenset({Role.admin, Role.secretary})
_SCRYPT: dict[str, int] = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
MIN_PASSWORD = 8


class LoginToken(SQLModel, table=True):
    """A one-time sign-in link the bot sent (/login)."""

    __tablename__ = "login_token"
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    person_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime = Field(sa_type=_TS, nullable=False)
    expires_at: datetime = Field(sa_type=_TS, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=_TS)


class DashboardSession(SQLModel, table=True):
    """A signed-in browser; the cookie carries the token, the table its hash."""

    __tablename__ = "dashboard_session"
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    person_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime = Field(sa_type=_TS, nullable=False)
    expires_at: datetime = Field(sa_type=_TS, nullable=False)
    method: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))


class PasswordCredential(SQLModel, table=True):
    """A dashboard password an admin set for a person (scrypt, per-person salt)."""

    __tablename__ = "password_credential"
    person_id: int = Field(foreign_key="person.id", primary_key=True)
    hash: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    set_at: datetime = Field(sa_type=_TS, nullable=False)
    set_by: int | None = Field(default=None, foreign_key="person.id")


@dataclass(frozen=True)
class LoginLimits:
    """At most `per_phone` failures for one phone number and `per_client` from one address
    within `window`; past that, sign-in is refused until the oldest failure ages out."""

    window: timedelta = timedelta(minutes=15)
    per_phone: int = 5
    per_client: int = 30


def login_limits(*, phone: str | None, client: str | None,
                 limits: LoginLimits) -> list[attempts.Limit]:
    """The limits one attempt counts against. A number counts in its normalised form, so
    "+86 139-0000-0006" shares the tries of 13900000006; input that is no number at all
    counts under one key per address."""
    out = []
    if phone is not None:
        norm = attempts.phone_of(phone)
        key = f"phone:{norm}" if norm else f"phone-unparsed:{client or '-'}"
        out.append(attempts.Limit(key, limits.per_phone, limits.window))
    if client:
        out.append(attempts.Limit(f"client:{client}", limits.per_client, limits.window))
    return out


def check_login_allowed(session: Session, *, phone: str | None, client: str | None,
                        now: datetime, limits: LoginLimits) -> None:
    """Refuse (TooManyAttempts) while this phone or address has failed too often lately."""
    checked = login_limits(phone=phone, client=client, limits=limits)
    attempts.serialise(session, keys=[lim.key for lim in checked])
    attempts.check(session, limits=checked, now=now, key="login_too_many")


def record_login_failure(session: Session, *, phone: str | None, client: str | None,
                         now: datetime, limits: LoginLimits) -> None:
    """Count one refused sign-in."""
    attempts.record(session, keys=[lim.key for lim in login_limits(
        phone=phone, client=client, limits=limits)], now=now)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def dashboard_scopes(who: Actor) -> list[NodeRef]:
    """The subtrees a person may see on the dashboard (empty: no dashboard for them)."""
    nodes = [n for r, n in who.posts if r in DASHBOARD_ROLES]
    # A node inside another scope adds nothing; keep the outermost ones, top first.
    nodes.sort(key=lambda n: len(n.path))
    out: list[NodeRef] = []
    for n in nodes:
        if not any(o.contains(n) for o in out):
            out.append(n)
    return out


def _require_dashboard_user(session: Session, person_id: int) -> Actor:
    who = actor(session, person_id)
    if not dashboard_scopes(who):
        raise PermissionDenied("dashboard_not_yours")
    return who


def issue_login_token(session: Session, *, person_id: int, now: datetime,
                      ttl: timedelta) -> str:
    """A fresh one-time token for the /login link; refused to people without a dashboard."""
    _require_dashboard_user(session, person_id)
    token = secrets.token_urlsafe(24)
    session.add(LoginToken(token_hash=_digest(token), person_id=person_id, created_at=now,
                           expires_at=now + ttl))
    session.flush()
    return token


def redeem_login_token(session: Session, *, token: str, now: datetime) -> int:
    """The person a login link is for; the link is spent by this call."""
    row = session.get(LoginToken, _digest(token), with_for_update=True)
    if row is None or row.used_at is not None or as_utc(row.expires_at) <= now:
        raise PermissionDenied("login_link_invalid")
    row.used_at = now
    _require_dashboard_user(session, row.person_id)
    return row.person_id


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${dk.hex()}"


def _verify(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    dk = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(dk.hex(), digest)


def set_password(session: Session, *, person_id: int, password: str, now: datetime,
                 by: int | None) -> None:
    """Give a person a dashboard password; `by` must be able to appoint every dashboard post
    the person holds (core.hierarchy.scope; None: the operator at the console)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("password_too_short", least=MIN_PASSWORD)
    who = _require_dashboard_user(session, person_id)
    if by is not None and by != person_id and not may_set_password(actor(session, by), who):
        raise PermissionDenied(PASSWORD_REFUSED)
    row = session.get(PasswordCredential, person_id)
    if row is None:
        row = PasswordCredential(person_id=person_id, hash="", set_at=now)
        session.add(row)
    row.hash = hash_password(password)
    row.set_at = now
    row.set_by = by
    session.flush()


# One answer for "no such number", "no dashboard" and "not yours": a 书记 probing numbers
# outside their village learns nothing.
PASSWORD_REFUSED = "password_refused"


def may_set_password(by: Actor, target: Actor) -> bool:
    """A password opens every dashboard scope of its holder, so the setter must reach them all."""
    posts = [(r, n, n.level) for r, n in target.posts if r in DASHBOARD_ROLES]
    return bool(posts) and may_edit_person(by, posts)


def set_password_by_phone(session: Session, *, phone: str, password: str, now: datetime,
                          by: int) -> None:
    """An admin (dashboard or API) sets the password of the person with this phone; every
    refusal but a too-short password is the same PermissionDenied."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("password_too_short", least=MIN_PASSWORD)
    pid = person_by_phone(session, phone)
    target = actor(session, pid) if pid is not None else None
    if target is None or not (pid == by or may_set_password(actor(session, by), target)):
        raise PermissionDenied(PASSWORD_REFUSED)
    assert pid is not None
    set_password(session, person_id=pid, password=password, now=now, by=by)


def check_password(session: Session, *, phone: str, password: str) -> int:
    """The person whose phone and password these are; one vague refusal for any mismatch."""
    refused = PermissionDenied("login_wrong")
    pid = person_by_phone(session, phone)
    row = session.get(PasswordCredential, pid) if pid is not None else None
    if row is None:
        # Spend the same time as a real check, so timing does not tell who has a password.
        _verify(password, "scrypt$00$00")
        raise refused
    if not _verify(password, row.hash):
        raise refused
    _require_dashboard_user(session, row.person_id)
    return row.person_id


def start_session(session: Session, *, person_id: int, now: datetime, ttl: timedelta,
                  method: str) -> str:
    """A new browser session; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    session.add(DashboardSession(token_hash=_digest(token), person_id=person_id,
                                 created_at=now, expires_at=now + ttl, method=method))
    session.flush()
    return token


def session_person(session: Session, *, token: str, now: datetime) -> int:
    """Who a session cookie signs in; NotFound when it is unknown or expired."""
    row = session.get(DashboardSession, _digest(token))
    if row is None or as_utc(row.expires_at) <= now:
        raise NotFound("session_expired")
    return row.person_id


def end_session(session: Session, *, token: str) -> None:
    """Sign a browser out."""
    row = session.get(DashboardSession, _digest(token))
    if row is not None:
        session.delete(row)


def person_for_phone(session: Session, *, phone: str) -> int:
    pid = person_by_phone(session, phone)
    if pid is None:
        raise NotFound("phone_unknown", phone=phone)
    return pid
