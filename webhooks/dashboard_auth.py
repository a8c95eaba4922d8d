"""Dashboard sign-in and scope: who is looking, their session cookie and CSRF token, and
how domain errors become HTTP answers."""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from core import accounts
from core.container import Container
from core.db import session_scope
from core.errors import NotFound, PermissionDenied
from core.hierarchy.model import Level, Node
from core.hierarchy.queries import Actor, NodeRef, actor, node_by_code

HERE = Path(__file__).parent / "dashboard"
COOKIE = "lz_dash"
e = html.escape
LEVEL_ZH = {"green": "正常", "yellow": "关注", "orange": "预警", "red": "告急"}
MAP_LEVELS = (Level.district, Level.town, Level.village, Level.area, Level.group,
              Level.neighborhood)
ACTIONS_ZH = {"accept": "受理", "reply": "答复居民", "resolve": "办结", "escalate": "转上级",
              "whistle": "吹哨", "reject": "驳回", "merge": "合并到",
              "verify_ok": "核查通过", "send_back": "退回重办"}
VERIFY_ACTIONS = ("verify_ok", "send_back")  # 核查: the only actions while a check waits
N: sa.Table = Node.__table__  # type: ignore[attr-defined]
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"




# ---------------------------------------------------------------- who is looking


@dataclass(frozen=True)
class Viewer:
    """The signed-in person and the subtrees they may see."""

    who: Actor
    scopes: list[NodeRef]
    token: str
    csrf: str

    @property
    def home(self) -> NodeRef:
        return self.scopes[0]

    def sees(self, node: NodeRef | str) -> bool:
        return any(s.contains(node) for s in self.scopes)

    def node(self, session: Session, code: str | None) -> NodeRef:
        """The named node (inside a scope), or the person's own top node."""
        if not code:
            return self.home
        found = node_by_code(session, code)
        if not self.sees(found):
            raise PermissionDenied("person_outside", name=found.name)
        return found


def _secret(c: Container) -> bytes:
    s = c.settings.session_secret
    if s is not None:
        return s.get_secret_value().encode()
    # Unset: a per-process secret; form tokens then die with the process, sessions do not.
    if not hasattr(c, "_dashboard_secret"):
        c._dashboard_secret = secrets.token_bytes(32)  # type: ignore[attr-defined]
    return c._dashboard_secret  # type: ignore[attr-defined]


def csrf_for(c: Container, token: str) -> str:
    return hmac.new(_secret(c), token.encode(), hashlib.sha256).hexdigest()[:32]


def load_viewer(c: Container, request: Request) -> Viewer | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    with session_scope(c.engine) as s:
        try:
            pid = accounts.session_person(s, token=token, now=c.clock.now())
        except NotFound:
            return None
        who = actor(s, pid)
    scopes = accounts.dashboard_scopes(who)
    if not scopes:
        return None
    return Viewer(who, scopes, token, csrf_for(c, token))


def need_viewer(request: Request) -> Viewer:
    """The signed-in viewer of a page, or a redirect to the sign-in form."""
    v = load_viewer(request.app.state.container, request)
    if v is None:
        raise HTTPException(303, "请先登录", headers={"Location": "/login"})
    return v


SignedIn = Annotated[Viewer, Depends(need_viewer)]


def check_csrf(viewer: Viewer, given: str | None) -> None:
    if not given or not hmac.compare_digest(given, viewer.csrf):
        raise HTTPException(403, "表单已失效，请刷新页面后重试")


# ---------------------------------------------------------------- shared reads


