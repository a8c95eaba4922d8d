"""Dashboard sign-in: one-time links from the bot, passwords, sign-out; refused attempts
are counted per phone number (however it is written) and per client address so that guessing
is slowed down."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from bot.flows.refusals import sentence
from core import accounts, attempts
from core.container import Container
from core.db import write_session
from core.errors import DomainError, TooManyAttempts
from webhooks.dashboard_auth import COOKIE, check_csrf, e, need_viewer
from webhooks.dashboard_views import page


def router(c: Container) -> APIRouter:
    """/login (form and links) and /logout."""
    r = APIRouter()

    def signed_in(person_id: int, method: str) -> RedirectResponse:
        with write_session(c.engine) as s:
            token = accounts.start_session(s, person_id=person_id, now=c.clock.now(),
                                           ttl=c.settings.dashboard_session_ttl, method=method)
        resp = RedirectResponse("/dashboard", status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="lax",
                        secure=c.settings.dashboard_cookie_secure,
                        max_age=int(c.settings.dashboard_session_ttl.total_seconds()))
        return resp

    def login_form(message: str = "", status: int = 200) -> HTMLResponse:
        msg = f'<p class="error">{e(message)}</p>' if message else ""
        body = f"""<div class="login"><h1>邻长制 管理后台</h1>{msg}
<form method="post" action="/login"><label>手机号<input name="phone" autocomplete="username"
required></label><label>密码<input name="password" type="password"
autocomplete="current-password" required></label><button>登录</button></form>
<p class="muted">也可以在聊天中向机器人发送 <code>/login</code>，
点开收到的一次性链接直接登录。</p>{demo_sign_ins()}</div>"""
        resp = page(c, None, "登录", body)
        resp.status_code = status
        return resp

    def demo_sign_ins() -> str:
        """In demo mode only: a one-time link for each of the story's three people."""
        if not c.settings.demo_mode:
            return ""
        from core.demo_seed import sign_ins

        with write_session(c.engine) as s:
            links = [(who, accounts.issue_login_token(
                s, person_id=who.person_id, now=c.clock.now(),
                ttl=c.settings.dashboard_login_ttl)) for who in sign_ins(s.connection())]
        if not links:
            return ""
        items = "".join(f'<a class="button demo-login" href="/login/{token}">{e(who.label)} '
                        f'<b>{e(who.name)}</b></a>' for who, token in links)
        return f'<div class="demo-logins"><h2>演示：以这些身份登录</h2>{items}</div>'

    @r.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page() -> HTMLResponse:
        return login_form()

    limits = accounts.LoginLimits()

    def sign_in(request: Request, phone: str | None, check: Callable[[Session], int],
                method: str) -> Response:
        """Run one sign-in check under the failure limits; a refusal is counted."""
        client = request.client.host if request.client else None
        now = c.clock.now()
        try:
            with write_session(c.engine) as s:
                accounts.check_login_allowed(s, phone=phone, client=client, now=now,
                                             limits=limits)
                pid = check(s)
        except TooManyAttempts as exc:
            resp = login_form(sentence(exc), 429)
            resp.headers["Retry-After"] = str(exc.retry_after)
            return resp
        except DomainError as exc:
            with write_session(c.engine) as s:
                accounts.record_login_failure(s, phone=phone, client=client, now=now,
                                              limits=limits)
            return login_form(sentence(exc), 403)
        return signed_in(pid, method)

    @r.post("/login", include_in_schema=False)
    def login_password(request: Request, phone: str = Form(...),
                       password: str = Form(...)) -> Response:
        # Full-width digits (a Chinese keyboard's) are the same number.
        number = attempts.phone_of(phone) or phone
        return sign_in(request, phone, lambda s: accounts.check_password(
            s, phone=number, password=password), "password")

    @r.get("/login/{token}", include_in_schema=False)
    def login_link(request: Request, token: str) -> Response:
        return sign_in(request, None, lambda s: accounts.redeem_login_token(
            s, token=token, now=c.clock.now()), "link")

    @r.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")) -> Response:
        v = need_viewer(request)
        check_csrf(v, csrf)
        with write_session(c.engine) as s:
            accounts.end_session(s, token=v.token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    return r
