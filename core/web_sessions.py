"""The built-in web chat's own state: browser sessions, one-time phone codes, and the message log
the chat page reads (what the person said and what the bot delivered to them).

A web "chat" is one web identity (`ChatIdentity(platform="web", external_id=chat_id)`); several
browser sessions (tabs, devices) may show the same chat. A message's id is the cursor the page's
event stream resumes from.

Phone codes are limited by number, not by session (fresh sessions are free): codes sent per
number, per client address and in all, and wrong codes per number and per address, counted in
`core/attempts` so that every worker shares the counts. A code is issued, and counted, the same
way whether or not anyone has the number, so the answer tells nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from core import attempts
from core.clock import as_utc
from core.errors import Phrase, phrase
from core.hierarchy.model import ChatIdentity, Person
from core.hierarchy.queries import person_by_phone
from core.outbox import Draft, enqueue
from core.settings import Settings


class WebSession(SQLModel, table=True):
    """One browser's sign-in to the web chat; the cookie holds the token, we keep its hash."""

    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False, index=True))
    csrf: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class WebMessage(SQLModel, table=True):
    """One line of a web chat: `inbound` from the person, `outbound` from the bot, or an
    `edit` that replaces an earlier outbound card (`edit_of`)."""

    __tablename__ = "web_message"
    __table_args__ = (
        sa.UniqueConstraint("chat_id", "client_id", name="uq_web_message_client"),
        sa.Index("ix_web_message_chat", "chat_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    direction: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    client_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    text: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    actions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    options: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    case_id: int | None = Field(default=None)
    kind: str = Field(default="", sa_column=sa.Column(sa.String(24), nullable=False))
    outbox_id: int | None = Field(default=None)
    edit_of: int | None = Field(default=None)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class PhoneCode(SQLModel, table=True):
    """A one-time code that proves a web chat belongs to the person with this phone number."""

    __tablename__ = "web_phone_code"
    id: int | None = Field(default=None, primary_key=True)
    chat_id: str = Field(sa_column=sa.Column(sa.String(128), nullable=False, index=True))
    phone: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    code_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    attempts: int = Field(default=0, nullable=False)
    used: bool = Field(default=False, nullable=False)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


WS: sa.Table = WebSession.__table__  # type: ignore[attr-defined]
WM: sa.Table = WebMessage.__table__  # type: ignore[attr-defined]
PC: sa.Table = PhoneCode.__table__  # type: ignore[attr-defined]
CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_chat_id() -> str:
    """A fresh web chat id for a browser nobody knows yet."""
    return "w" + secrets.token_urlsafe(12)


def open_session(session: Session, *, chat_id: str, now: datetime, ttl: timedelta
                 ) -> tuple[str, WebSession]:
    """Start a browser session on a chat; returns the cookie token (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    row = WebSession(token_hash=_hash(token), chat_id=chat_id, csrf=secrets.token_urlsafe(24),
                     created_at=now, expires_at=now + ttl)
    session.add(row)
    session.flush()
    return token, row


def session_for(session: Session, *, token: str, now: datetime) -> WebSession | None:
    """The live session of a cookie token, or None (unknown or expired)."""
    if not token:
        return None
    row = session.execute(sa.select(WebSession).where(WS.c.token_hash == _hash(token))
                          ).scalar_one_or_none()
    if row is None or as_utc(row.expires_at) <= now:
        return None
    return row


def csrf_ok(row: WebSession, given: str) -> bool:
    """Whether the header token matches the session's (constant time)."""
    return bool(given) and hmac.compare_digest(row.csrf.encode(), given.encode())


def log_inbound(session: Session, *, chat_id: str, client_id: str, text: str,
                options: dict[str, Any] | None, now: datetime) -> bool:
    """Keep what the person sent for the page's history; False when this client id was seen."""
    seen = session.execute(sa.select(WM.c.id).where(
        WM.c.chat_id == chat_id, WM.c.client_id == client_id)).first()
    if seen is not None:
        return False
    session.add(WebMessage(chat_id=chat_id, direction="inbound", client_id=client_id, text=text,
                           options=options, kind="inbound", created_at=now))
    session.flush()
    return True


def deliver(session: Session, *, chat_id: str, text: str, actions: list[dict[str, Any]],
            options: dict[str, Any] | None, case_id: int | None, kind: str,
            outbox_id: int | None, now: datetime, edit_of: int | None = None) -> int:
    """Append a bot message (or an edit of one) to a web chat; its id."""
    row = WebMessage(chat_id=chat_id, direction="edit" if edit_of else "outbound", text=text,
                     actions=actions, options=options, case_id=case_id, kind=kind,
                     outbox_id=outbox_id, edit_of=edit_of, created_at=now)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def messages_after(session: Session, *, chat_id: str, after: int, limit: int = 200
                   ) -> list[WebMessage]:
    """A chat's lines with an id above `after`, oldest first."""
    q = (sa.select(WebMessage).where(WM.c.chat_id == chat_id, WM.c.id > after)
         .order_by(WM.c.id).limit(limit))
    return list(session.execute(q).scalars())


def last_id(session: Session, *, chat_id: str) -> int:
    """The newest line's id of a chat (0 when empty)."""
    q = sa.select(sa.func.max(WM.c.id)).where(WM.c.chat_id == chat_id)
    return int(session.execute(q).scalar_one_or_none() or 0)


def media_visible(session: Session, *, chat_id: str, ref: str) -> bool:
    """Whether a stored file was sent in or to this chat (the page may show it)."""
    for (opts,) in session.execute(sa.select(WM.c.options).where(
            WM.c.chat_id == chat_id, WM.c.options.is_not(None))):
        if isinstance(opts, dict) and ref in (opts.get("photo"), opts.get("voice"),
                                              opts.get("document")):
            return True
    return False


@dataclass(frozen=True)
class CodeLimits:
    """How often codes go out and how many wrong ones a number takes (settings `WEB_CODE*`)."""

    ttl: timedelta = timedelta(minutes=10)
    window: timedelta = timedelta(hours=1)
    per_phone: int = 3
    per_client: int = 10
    total: int = 300
    wrong_per_phone: int = 5
    wrong_per_client: int = 20

    @classmethod
    def from_settings(cls, s: Settings) -> CodeLimits:
        return cls(ttl=s.web_code_ttl, window=s.web_code_window, per_phone=s.web_codes_per_phone,
                   per_client=s.web_codes_per_client, total=s.web_codes_total,
                   wrong_per_phone=s.web_code_wrong_per_phone,
                   wrong_per_client=s.web_code_wrong_per_client)


@dataclass(frozen=True)
class CodeCheck:
    """What a typed code proved: the phone number, or why not (`status` 400 or 429)."""

    phone: str | None = None
    error: Phrase | None = None  # why not, as a message key (bot/flows/texts.py)
    status: int = 200
    retry_after: int = 0


def _keys(phone: str, client: str | None) -> dict[str, str]:
    return {"sent": f"webcode-sent:{phone}", "sent_client": f"webcode-sent-client:{client}",
            "sent_all": "webcode-sent-all", "wrong": f"webcode-wrong:{phone}",
            "wrong_client": f"webcode-wrong-client:{client}"}


def _burn(session: Session, *, phone: str) -> None:
    session.execute(sa.update(PC).where(PC.c.phone == phone, PC.c.used.is_(False))
                    .values(used=True))


def issue_code(session: Session, *, chat_id: str, phone: str, client: str | None,
               now: datetime, limits: CodeLimits) -> str:
    """A fresh 6-digit code for confirming `phone` from this chat, within the limits per
    number, per address and in all, whether or not anyone has this number."""
    k = _keys(phone, client)
    attempts.serialise(session, keys=[k["wrong"], k["sent"], k["sent_client"], k["sent_all"]])
    # A number that took too many wrong codes gets no new one until they age out.
    attempts.check(session, limits=[attempts.Limit(k["wrong"], limits.wrong_per_phone,
                                                   limits.window)], now=now,
                   key="code_number_locked")
    sent = [attempts.Limit(k["sent"], limits.per_phone, limits.window),
            attempts.Limit(k["sent_all"], limits.total, limits.window)]
    if client:
        sent.append(attempts.Limit(k["sent_client"], limits.per_client, limits.window))
    attempts.check(session, limits=sent, now=now, key="code_sent_too_often")
    attempts.record(session, keys=[lim.key for lim in sent], now=now)
    session.execute(sa.update(PC).where(PC.c.chat_id == chat_id, PC.c.used.is_(False))
                    .values(used=True))
    code = f"{secrets.randbelow(10**6):06d}"
    session.add(PhoneCode(chat_id=chat_id, phone=phone, code_hash=_hash(f"{chat_id}:{code}"),
                          created_at=now, expires_at=now + limits.ttl))
    session.flush()
    return code


def send_code(session: Session, *, chat_id: str, phone: str, client: str | None,
              now: datetime, limits: CodeLimits, demo: bool,
              wording: Callable[..., str]) -> str | None:
    """Issue a code and send it through the number's person's other chat account, if any,
    in words `wording(language, code=, minutes=)` gives. Returns the code only in demo mode,
    for a person of the city with no other chat."""
    code = issue_code(session, chat_id=chat_id, phone=phone, client=client, now=now,
                      limits=limits)
    pid = person_by_phone(session, phone)
    if pid is None:
        return None
    other = session.execute(sa.select(CI.c.id).where(
        CI.c.person_id == pid, CI.c.platform != "web", CI.c.unreachable.is_(False))).first()
    if other is None:
        return code if demo else None
    minutes = max(1, int(limits.ttl.total_seconds()) // 60)
    person = session.get(Person, pid)
    enqueue(session, draft=Draft(
        text=wording(person.language if person else None, code=code, minutes=minutes),
        kind="web_code", dedupe_key=f"webcode:{chat_id}:{secrets.token_hex(8)}",
        person_id=pid), now=now)
    return None


def _locked(wait: int) -> CodeCheck:
    return CodeCheck(error=phrase("code_locked", minutes=(wait + 59) // 60), status=429,
                     retry_after=wait)


def check_code(session: Session, *, chat_id: str, code: str, client: str | None,
               now: datetime, limits: CodeLimits) -> CodeCheck:
    """The phone a right code confirms. A wrong one is counted against its number across
    every session (past the limit all its codes die) and against the address; returned,
    not raised, so that the count is committed."""
    row = session.execute(
        sa.select(PhoneCode).where(PC.c.chat_id == chat_id)
        .order_by(PC.c.id.desc()).limit(1).with_for_update()).scalar_one_or_none()
    if row is None:
        return CodeCheck(error=phrase("code_expired"), status=400)
    k = _keys(row.phone, client)
    attempts.serialise(session, keys=[k["wrong"], k["wrong_client"]])
    number = attempts.Limit(k["wrong"], limits.wrong_per_phone, limits.window)
    address = attempts.Limit(k["wrong_client"], limits.wrong_per_client, limits.window)
    wait = attempts.wait_seconds(session, limit=number, now=now)
    if row.used or as_utc(row.expires_at) <= now:
        # Burnt by wrong codes rather than by time: say so.
        return _locked(wait) if wait else CodeCheck(error=phrase("code_expired"), status=400)
    if wait:
        _burn(session, phone=row.phone)
        return _locked(wait)
    if client and (busy := attempts.wait_seconds(session, limit=address, now=now)):
        return CodeCheck(error=phrase("code_client_locked", minutes=(busy + 59) // 60),
                         status=429, retry_after=busy)
    if hmac.compare_digest(row.code_hash, _hash(f"{chat_id}:{code.strip()}")):
        row.used = True
        return CodeCheck(phone=row.phone)
    row.attempts += 1
    attempts.record(session, keys=[number.key] + ([address.key] if client else []), now=now)
    if wait := attempts.wait_seconds(session, limit=number, now=now):
        _burn(session, phone=row.phone)
        return _locked(wait)
    used, _ = attempts.count(session, key=number.key, since=now - limits.window)
    return CodeCheck(error=phrase("code_wrong", left=limits.wrong_per_phone - used),
                     status=400)
