"""Web chat pages around the chat itself: joining by a 邻's link (and confirming it when the
browser is already someone's chat), the printable poster with its QR code, the demo switcher
(demo mode), and where / leads."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from bot.handlers.web.inbound import handle
from core import web_sessions
from core.container import Container
from core.hierarchy.queries import chain_for_resident
from core.hierarchy.tree import ROLE_LABEL_ZH

INVITE = re.compile(r"j[A-Za-z0-9_-]{2,40}")
PANE = re.compile(r"p\d{1,12}")


def _pane(value: str | None) -> str:
    return value if value and PANE.fullmatch(value) else ""


@dataclass(frozen=True)
class Sessions:
    """The chat router's session helpers (webhooks/webchat.py)."""

    current: Callable[[Request, str], web_sessions.WebSession | None]
    new_session: Callable[[str], tuple[str, web_sessions.WebSession]]
    set_cookie: Callable[[Response, str, str], None]
    after: Callable[[Request], Awaitable[None]]


def _text(message: str, status: int) -> Response:
    return Response(message, status_code=status, media_type="text/plain; charset=utf-8")


def router(c: Container, sessions: Sessions) -> APIRouter:
    """/join/{code}, /poster/{code}, /demo and /."""
    from webhooks.webchat import render_page

    r = APIRouter(tags=["web chat"])
    s = c.settings

    async def run_join(request: Request, chat_id: str, code: str) -> None:
        await run_in_threadpool(lambda: handle(c, chat_id=chat_id, client_id=f"join-{code}"[:64],
                                               text=f"/start {code}"))
        await sessions.after(request)

    @r.get("/join/{code}")
    async def join(request: Request, code: str) -> Response:
        if not INVITE.fullmatch(code):
            return _text("邀请链接无效", 404)
        row = await run_in_threadpool(sessions.current, request, "")
        if row is None:
            # A fresh browser joins in one step (the poster's QR code).
            token, fresh = await run_in_threadpool(sessions.new_session,
                                                   web_sessions.new_chat_id())
            resp = RedirectResponse("/chat", status_code=303)
            sessions.set_cookie(resp, "", token)
            await run_join(request, fresh.chat_id, code)
            return resp
        who, node, already = await run_in_threadpool(_join_view, c, row.chat_id, code)
        if who is None:
            await run_join(request, row.chat_id, code)
            return RedirectResponse("/chat", status_code=303)
        if node is None:
            return _text("邀请链接无效或已停用，请向您的邻长索取新的二维码", 404)
        if already:
            return RedirectResponse("/chat", status_code=303)
        # Someone's chat already: a link (maybe from another site) changes nothing until they
        # say yes on this page.
        body = render_page("join.html", who=who, node=node, code=code, csrf=row.csrf)
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    @r.post("/join/{code}")
    async def join_confirmed(request: Request, code: str) -> Response:
        if not INVITE.fullmatch(code):
            return _text("邀请链接无效", 404)
        row = await run_in_threadpool(sessions.current, request, "")
        if row is None:
            return _text("会话已过期，请重新打开邀请链接", 401)
        async with request.form(max_files=0, max_fields=4) as form:
            given = form.get("csrf")
        if not isinstance(given, str) or not web_sessions.csrf_ok(row, given):
            return _text("页面已失效，请重新打开邀请链接", 403)
        await run_join(request, row.chat_id, code)
        return RedirectResponse("/chat", status_code=303)

    @r.get("/poster/{code}", response_class=HTMLResponse)
    async def poster(request: Request, code: str) -> Response:
        import segno

        if not INVITE.fullmatch(code):
            return Response("邀请链接无效", status_code=404, media_type="text/plain")
        base = s.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        link = f"{base}/join/{code}"
        svg = segno.make(link, error="m").svg_inline(scale=8, border=2)
        with c.engine.connect() as conn:
            node = conn.execute(sa.text(
                "SELECT n.name FROM invite i JOIN node n ON n.id = i.node_id WHERE i.code = :c"),
                {"c": code}).scalar()
        body = render_page("poster.html", link=link, node=str(node or "本邻"))
        body = body.replace("{{svg}}", svg)
        return HTMLResponse(body)

    @r.get("/chat/card")
    async def chat_card(request: Request) -> Response:
        row = await run_in_threadpool(sessions.current, request,
                                      _pane(request.query_params.get("pane")))
        if row is None:
            return JSONResponse({"ok": False, "error": "会话已过期，请刷新页面"}, status_code=401)
        card = await run_in_threadpool(_card_of_chat, c, row.chat_id)
        return JSONResponse({"ok": True, "card": card})

    @r.get("/card/{code}", response_class=HTMLResponse)
    async def contact_card(code: str) -> Response:
        # Like the poster: whoever holds the 邻's invite (its 邻长 and everyone above, by
        # /invite) may print it; a revoked or unknown invite shows nothing.
        if not INVITE.fullmatch(code):
            return _text("邀请链接无效", 404)
        card = await run_in_threadpool(_card_of_invite, c, code)
        if card is None:
            return _text("邀请链接无效或已停用，请向您的邻长索取新的联系卡", 404)
        return HTMLResponse(render_card(card))

    @r.get("/demo", response_class=HTMLResponse)
    async def demo(request: Request) -> Response:
        if not s.demo_mode:
            return Response("演示模式未开启", status_code=404, media_type="text/plain")
        people, panes = await run_in_threadpool(_demo_people, c)
        options = "".join(
            f'<option value="{p["id"]}">{html.escape(p["label"])}</option>' for p in people)
        frames = "".join(
            f'<section class="pane"><select data-pane>{options}</select>'
            f'<iframe src="/chat?as={pid}" data-person="{pid}" title="pane"></iframe></section>'
            for pid in panes)
        return HTMLResponse(render_page("demo.html").replace("{{panes}}", frames))

    @r.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/demo" if s.demo_mode else "/chat", status_code=307)

    return r


def _join_view(c: Container, chat_id: str, code: str) -> tuple[str | None, str | None, bool]:
    """Who this chat is (None: nobody yet), the invite's 邻 (None: no such invite), and
    whether they live there already."""
    with c.engine.connect() as conn:
        who = conn.execute(sa.text(
            "SELECT p.id, p.name FROM chat_identity i JOIN person p ON p.id = i.person_id"
            " WHERE i.platform = 'web' AND i.external_id = :e"), {"e": chat_id}).first()
        if who is None:
            return None, None, False
        node = conn.execute(sa.text(
            "SELECT n.id, n.name FROM invite i JOIN node n ON n.id = i.node_id"
            " WHERE i.code = :c AND NOT i.revoked"), {"c": code}).first()
        if node is None:
            return str(who[1]), None, False
        already = conn.execute(sa.text(
            "SELECT 1 FROM post WHERE person_id = :p AND node_id = :n AND role = 'resident'"),
            {"p": who[0], "n": node[0]}).first() is not None
    return str(who[1]), str(node[1]), already


def _demo_people(c: Container) -> tuple[list[dict[str, Any]], list[int]]:
    """Everyone of the demo city with their posts, and the default panes: a resident, then the
    people above them up to a town admin."""
    from sqlmodel import Session

    with c.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.id, p.name, x.role, n.name, n.code FROM post x JOIN person p"
            " ON p.id = x.person_id JOIN node n ON n.id = x.node_id ORDER BY x.role <> 'resident',"
            " n.code, p.id")).all()
        people: dict[int, dict[str, Any]] = {}
        for pid, name, role, node, _code in rows:
            from core.hierarchy.model import Role

            label = f"{ROLE_LABEL_ZH.get(Role(role), role)}·{node}"
            entry = people.setdefault(pid, {"id": pid, "name": name, "labels": []})
            entry["labels"].append(label)
        first_resident = next((int(r[0]) for r in rows if r[2] == "resident"), None)
        panes: list[int] = []
        if first_resident is not None:
            panes.append(first_resident)
            with Session(bind=conn) as session:
                chain = chain_for_resident(session, first_resident)
                for step in chain.filled():
                    if step.role.value != "area_leader":  # four panes fit a laptop screen
                        panes.extend(h.id for h in step.holders[:1])
    out = [{"id": p["id"], "label": f'{p["name"]}（{"、".join(p["labels"])}）'}
           for p in people.values()]
    return out, panes[:5]


def _card_of_chat(c: Container, chat_id: str) -> dict[str, Any] | None:
    """The contact card of the 邻 this web chat's person lives in (None: not a resident)."""
    from sqlmodel import Session

    from bot.flows.contact import card_for_resident
    from core.errors import NotFound

    with c.engine.connect() as conn, Session(bind=conn) as session:
        pid = conn.execute(sa.text(
            "SELECT person_id FROM chat_identity WHERE platform = 'web' AND external_id = :e"),
            {"e": chat_id}).scalar()
        if pid is None:
            return None
        try:
            card = card_for_resident(session, int(pid), office_hours=c.settings.office_hours)
        except NotFound:
            return None
        return card.to_json()


def _card_of_invite(c: Container, code: str) -> Any:
    from sqlmodel import Session

    from bot.flows.contact import card_for_node
    from core.hierarchy.queries import node_by_id

    with c.engine.connect() as conn, Session(bind=conn) as session:
        node_id = conn.execute(sa.text(
            "SELECT node_id FROM invite WHERE code = :c AND NOT revoked"), {"c": code}).scalar()
        if node_id is None:
            return None
        return card_for_node(session, node_by_id(session, int(node_id)),
                             office_hours=c.settings.office_hours)


def render_card(card: Any) -> str:
    """The printable 邻长联系卡: every name and number escaped, numbers as tel: links."""
    from webhooks.webchat import render_page

    rows = "".join(
        f'<li><span class="role">{html.escape(x.role)}</span> '
        f'<span class="name">{html.escape(x.name)}</span>'
        + (f' <a class="tel" href="tel:{html.escape(x.phone)}">{html.escape(x.phone)}</a>'
           if x.phone else "") + "</li>"
        for x in card.contacts) or "<li>本邻暂未安排邻长</li>"
    hours = (f'<p class="hours">办公时间：{html.escape(card.office_hours)}</p>'
             if card.office_hours else "")
    body = render_page("card.html", node=card.node_name)
    return body.replace("{{rows}}", rows).replace("{{hours}}", hours)
