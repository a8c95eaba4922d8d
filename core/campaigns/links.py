"""The link that opens a 邻长's checklist as a web page (`/checklist/<token>`), for chats whose
cards are cramped (WeCom: 4 households a card) and for older volunteers who read large type.

The token is signed, not stored: `<campaign>.<person>.<expiry>.<signature>`, an HMAC-SHA256 of
the first three with the deployment's key, so showing a checklist in chat writes nothing and
any worker can check a link. The key is derived from SESSION_SECRET; without one it is a
random key made once and kept in `ops_state` (a per-process key, as the dashboard's form
tokens use, would break a link on the next restart or on another worker). A link expires a
day after the campaign's deadline. The form value the page's POSTs carry is derived from the
link with the same key, under another label.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.campaigns.model import Campaign
from core.clock import as_utc
from core.errors import NotFound, PermissionDenied
from core.settings import Settings

GRACE = timedelta(days=1)
KEY_NAME = "checklist_link_key"
# ops_state (core/ops.py) by name: that module pulls in the sweep and the notifier's tables.
OPS = sa.table("ops_state", sa.column("key", sa.String), sa.column("value", sa.Text),
               sa.column("updated_at", sa.DateTime(timezone=True)))
SHAPE = re.compile(r"(\d{1,12})\.(\d{1,12})\.(\d{1,12})\.([A-Za-z0-9_-]{22})")


@dataclass(frozen=True)
class Link:
    """What a valid token says: whose checklist of which campaign, good until when."""

    campaign_id: int
    person_id: int
    expires_at: datetime


def _stored_key(s: Session, now: datetime) -> bytes:
    q = sa.select(OPS.c.value).where(OPS.c.key == KEY_NAME)
    found = s.execute(q).scalar_one_or_none()
    if not found:
        stmt: Any
        if s.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            stmt = pg_insert(OPS)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert
            stmt = sqlite_insert(OPS)
        # Two workers may make one at the same moment: the first row wins for both.
        s.execute(stmt.values(key=KEY_NAME, value=secrets.token_hex(32), updated_at=now)
                  .on_conflict_do_nothing(index_elements=["key"]))
        found = s.execute(q).scalar_one()
    return bytes.fromhex(str(found))


def signing_key(s: Session, *, settings: Settings, now: datetime) -> bytes:
    """The deployment's key for checklist links (SESSION_SECRET's, else the stored one)."""
    secret = settings.session_secret
    base = secret.get_secret_value().encode() if secret is not None else _stored_key(s, now)
    return hmac.new(base, b"linzhang checklist link", hashlib.sha256).digest()


def _mac(key: bytes, label: str, text: str) -> str:
    digest = hmac.new(key, f"{label}:{text}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(*, key: bytes, campaign: Campaign, person_id: int) -> str:
    """The token of this person's checklist of this campaign (the same one every time)."""
    assert campaign.id is not None
    expires = int((as_utc(campaign.deadline_at) + GRACE).timestamp())
    body = f"{campaign.id}.{person_id}.{expires}"
    return f"{body}.{_mac(key, 'link', body)}"


def read(*, key: bytes, token: str, now: datetime) -> Link:
    """What a token names; a forged or malformed one is refused, so is an expired one."""
    m = SHAPE.fullmatch(token or "")
    if m is None or not hmac.compare_digest(
            m.group(4), _mac(key, "link", ".".join(m.group(1, 2, 3)))):
        raise PermissionDenied("checklist_link_bad")
    expires = datetime.fromtimestamp(int(m.group(3)), UTC)
    if expires <= now:
        raise PermissionDenied("checklist_link_expired")
    return Link(int(m.group(1)), int(m.group(2)), expires)


def form_value(*, key: bytes, token: str) -> str:
    """The value every form of the link's page carries back (not in the URL, not a cookie)."""
    return _mac(key, "form", token)


def form_ok(*, key: bytes, token: str, given: str | None) -> bool:
    """Whether a POST carries the form value of its own link (constant time)."""
    return bool(given) and hmac.compare_digest(form_value(key=key, token=token), given or "")


def campaign_of(s: Session, link: Link) -> Campaign:
    """The campaign a valid link names (gone: NotFound)."""
    c = s.get(Campaign, link.campaign_id)
    if c is None:
        raise NotFound("campaign_unknown", campaign=link.campaign_id)
    return c
