"""Person invites and residents' bind requests on the dashboard, and the QR code of any invite.

An admin makes, prints and revokes the one-time invites that bind a 邻长 or 书记 who uses only
WeChat or WeCom (or Telegram): the page shows the code to type (`绑定 K3M9-X2AB`), the links
and a QR code. The QR route draws any well-formed code without looking it up, so it tells
nobody whether a code exists; scanning opens the web chat's `/join/<code>`. Bind requests (a
typed resident's number) can be answered here as well as by the 邻长's one tap in chat.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from bot.flows.join import PLATFORM_ZH, answer_bind_request
from core.container import Container
from core.db import session_scope, write_session
from core.hierarchy.binding import open_requests
from core.hierarchy.invites import (
    Invite,
    open_person_invites,
    person_invite,
    person_invite_by_id,
    revoke,
    shown_code,
)
from core.hierarchy.model import Person
from core.outbox import Draft, enqueue_many
from webhooks.dashboard_auth import SignedIn, Viewer, check_csrf, e
from webhooks.dashboard_views import page

CODE = re.compile(r"j[a-z0-9]{8,40}")


def router(c: Container) -> APIRouter:
    """/invite-qr/{code} and /dashboard/invites."""
    r = APIRouter(tags=["invites"])
    s = c.settings
    tz = ZoneInfo(s.timezone)

    def base(request: Request) -> str:
        return s.public_url.rstrip("/") or str(request.base_url).rstrip("/")

    def admins_only(v: Viewer) -> None:
        if not v.who.admin_scopes():
            raise HTTPException(403, "只有管理员可以管理个人邀请")

    def when(at: datetime | None) -> str:
        if at is None:
            return "—"
        aware = at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite hands back naive ones
        return aware.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    @r.get("/invite-qr/{code}")
    async def invite_qr(request: Request, code: str) -> Response:
        import segno

        if not CODE.fullmatch(code):
            return Response("邀请码无效", status_code=404, media_type="text/plain; charset=utf-8")
        svg = segno.make(f"{base(request)}/join/{code}", error="m").svg_inline(scale=8,
                                                                               border=2)
        return Response(svg, media_type="image/svg+xml",
                        headers={"Cache-Control": "private, no-store",
                                 "X-Content-Type-Options": "nosniff"})

    def bind_forms(v: Viewer) -> str:
        with session_scope(c.engine) as session:
            asks = open_requests(session, by=v.who, now=c.clock.now(), ttl=s.bind_request_ttl)
        if not asks:
            return ""
        rows = "".join(
            f"<tr><td>{e(name)}（{e(home.name)}）想绑定{e(PLATFORM_ZH.get(req.platform, ''))}"
            f"</td><td>{e(when(req.created_at))}</td><td>"
            + "".join(f'<form method="post" action="/dashboard/bind-requests/{req.id}/{a}">'
                      f'<input type="hidden" name="csrf" value="{v.csrf}">'
                      f"<button>{label}</button></form>"
                      for a, label in (("yes", "是本人"), ("no", "不是本人")))
            + "</td></tr>" for req, name, home in asks)
        return (f'<section class="card"><h2>待确认的居民绑定</h2><p>有人输入了这些居民的手机号。'
                f"只有确认是本人时才点“是本人”；这样绑定的账号只能以居民身份使用。</p>"
                f"<table>{rows}</table></section>")

    @r.post("/dashboard/bind-requests/{request_id}/{answer}", include_in_schema=False)
    def bind_answer(request_id: int, answer: str, v: SignedIn,
                    csrf: str = Form("")) -> Response:
        check_csrf(v, csrf)
        if answer not in ("yes", "no"):
            raise HTTPException(404, "没有这个操作")
        with write_session(c.engine) as session:
            _, outs = answer_bind_request(session, by=v.who, request_id=request_id,
                                          yes=answer == "yes", clock=c.clock, settings=s)
            enqueue_many(session, now=c.clock.now(), drafts=[Draft(
                text=o.text, kind=o.kind, dedupe_key=f"bindreq:{request_id}:{n}",
                platform=o.platform, address=o.address, case_id=o.case_id)
                for n, o in enumerate(outs)])
        return RedirectResponse("/dashboard/invites", status_code=303)

    @r.get("/dashboard/invites", response_class=HTMLResponse, include_in_schema=False)
    def invites_page(v: SignedIn) -> HTMLResponse:
        admins_only(v)
        with session_scope(c.engine) as session:
            rows = open_person_invites(session, by=v.who, now=c.clock.now())
        items = "".join(
            f'<tr><td><a href="/dashboard/invites/{i.id}">{e(name)}</a></td>'
            f"<td>绑定 {e(shown_code(i.code))}</td><td>{e(when(i.expires_at))}</td></tr>"
            for i, name in rows) or '<tr><td colspan="3">暂无有效的个人邀请</td></tr>'
        body = f"""<section class="card"><h2>为本辖区干部生成个人邀请</h2>
<p>邀请只能使用一次，{s.person_invite_ttl.days or 1}天内有效。对方在微信公众号或企业微信里发送
“绑定 邀请码”，或扫描二维码、打开链接，即绑定到本人。</p>
<form method="post" action="/dashboard/invites"><input type="hidden" name="csrf"
value="{v.csrf}"><label>手机号 <input name="phone" inputmode="tel" required></label>
<button>生成邀请</button></form></section>
<section class="card"><h2>有效的个人邀请</h2><table><tr><th>姓名</th><th>邀请码</th>
<th>有效期至</th></tr>{items}</table></section>{bind_forms(v)}"""
        return page(c, v, "个人邀请", body)

    @r.post("/dashboard/invites", include_in_schema=False)
    def make_invite(v: SignedIn, phone: str = Form(""), csrf: str = Form("")) -> Response:
        check_csrf(v, csrf)
        admins_only(v)
        with write_session(c.engine) as session:
            inv, _ = person_invite(session, by=v.who, phone=phone.strip()[:32],
                                   now=c.clock.now(), ttl=s.person_invite_ttl)
            invite_id = inv.id
        return RedirectResponse(f"/dashboard/invites/{invite_id}", status_code=303)

    @r.get("/dashboard/invites/{invite_id}", response_class=HTMLResponse,
           include_in_schema=False)
    def invite_page(request: Request, invite_id: int, v: SignedIn) -> HTMLResponse:
        admins_only(v)
        with session_scope(c.engine) as session:
            inv: Invite = person_invite_by_id(session, by=v.who, invite_id=invite_id)
            person = session.get(Person, inv.person_id)
            name = person.name if person else "—"
        state = ("已作废" if inv.revoked else "已使用" if inv.used_at else
                 f"有效期至 {when(inv.expires_at)}")
        tg = s.telegram_bot_username
        tg_line = (f"<li>Telegram：{e(f'https://t.me/{tg}?start={inv.code}')}</li>"
                   if tg else "")
        revoke_form = "" if inv.revoked or inv.used_at else (
            f'<form method="post" action="/dashboard/invites/{inv.id}/revoke">'
            f'<input type="hidden" name="csrf" value="{v.csrf}"><button>作废此邀请</button>'
            "</form>")
        body = f"""<section class="card"><h2>{e(name)} 的个人邀请（{e(state)}）</h2>
<p>只能使用一次，请只交给本人。</p><ul>
<li>微信公众号或企业微信里发送：<b>绑定 {e(shown_code(inv.code))}</b></li>{tg_line}
<li>网页聊天：{e(f"{base(request)}/join/{inv.code}")}</li></ul>
<p><img src="/invite-qr/{e(inv.code)}" alt="邀请二维码" width="240" height="240"></p>
{revoke_form}<p><a href="/dashboard/invites">返回</a></p></section>"""
        return page(c, v, "个人邀请", body)

    @r.post("/dashboard/invites/{invite_id}/revoke", include_in_schema=False)
    def revoke_invite(invite_id: int, v: SignedIn, csrf: str = Form("")) -> Response:
        check_csrf(v, csrf)
        admins_only(v)
        with write_session(c.engine) as session:
            inv = person_invite_by_id(session, by=v.who, invite_id=invite_id)
            revoke(session, by=v.who, code=inv.code)
        return RedirectResponse(f"/dashboard/invites/{invite_id}", status_code=303)

    return r
