"""The built-in web chat: the page, its messages in, its event stream out, joining by a 邻's
link or a one-time phone code, the printable poster, and (demo mode) the person switcher.

Sessions: a cookie holds a random token (HttpOnly, SameSite=Lax, so that a link from another
site still finds the session instead of replacing it), the database its hash; every POST must
also carry the session's CSRF token (`X-CSRF-Token`, or the form field on /join), which a page
of another site cannot read or set; no GET changes who an existing session is. In demo mode each
pane of the switcher is a separate session under its own cookie name (`X-Chat-Pane`), so one
browser can be several people side by side.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    StreamingResponse,
)
from starlette.concurrency import run_in_threadpool

from bot.flows.refusals import say, sentence
from bot.flows.texts import t
from bot.flows.types import Press
from bot.handlers.jsonsafe import loads as read_json
from bot.handlers.web import transport as web_sender
from bot.handlers.web.inbound import Upload, handle
from core import attempts, web_sessions
from core.container import Container
from core.db import write_session
from core.errors import DomainError, TooManyAttempts
from core.hierarchy.services import link_identity
from core.media.store import MediaStore
from webhooks import webchat_pages

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "webchat_static"
COOKIE = "lz_chat"
PANE = re.compile(r"p\d{1,12}")
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{6,64}")
CODE_SENT = ("如果这个号码已登记并绑定了微信或Telegram，验证码已发到那里（{minutes}分钟内有效）。"
             "没有收到？请联系您的邻长，用本邻的邀请链接加入。")


def hub_of(app: FastAPI) -> web_sender.Hub:
    """The app's hub (made on first use, inside the running loop)."""
    hub = getattr(app.state, "web_hub", None)
    if hub is None:
        hub = app.state.web_hub = web_sender.Hub()
    assert isinstance(hub, web_sender.Hub)
    return hub


def _pane(value: str | None) -> str:
    return value if value and PANE.fullmatch(value) else ""


def _cookie(pane: str) -> str:
    return f"{COOKIE}_{pane}" if pane else COOKIE


def _error(status: int, message: str, retry_after: int = 0) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def render_page(name: str, **values: str) -> str:
    text = (STATIC / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text


def router(container: Container) -> APIRouter:
    r = APIRouter(tags=["web chat"])
    c = container
    s = c.settings
    ttl = s.web_session_ttl
    max_body = s.max_photo_bytes + s.max_voice_bytes + (1 << 20)
    code_limits = web_sessions.CodeLimits.from_settings(s)

    def set_cookie(resp: Response, pane: str, token: str) -> None:
        resp.set_cookie(_cookie(pane), token, max_age=int(ttl.total_seconds()), httponly=True,
                        samesite="lax", secure=s.dashboard_cookie_secure, path="/")

    def current(request: Request, pane: str) -> web_sessions.WebSession | None:
        token = request.cookies.get(_cookie(pane), "")
        with write_session(c.engine) as session:
            row = web_sessions.session_for(session, token=token, now=c.clock.now())
            if row is not None:
                session.expunge(row)
            return row

    def new_session(chat_id: str, person_id: int | None = None
                    ) -> tuple[str, web_sessions.WebSession]:
        with write_session(c.engine) as session:
            now = c.clock.now()
            if person_id is not None:
                link_identity(session, person_id=person_id, platform="web", external_id=chat_id,
                              now=now, proof="demo")
            token, row = web_sessions.open_session(session, chat_id=chat_id, now=now, ttl=ttl)
            session.expunge(row)
            return token, row

    def person_of(chat_id: str) -> tuple[str, bool]:
        """The chat's person's name, and whether they hold any post above resident."""
        with c.engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT p.name, EXISTS (SELECT 1 FROM post x WHERE x.person_id = p.id"
                " AND x.role <> 'resident') FROM chat_identity i JOIN person p"
                " ON p.id = i.person_id WHERE i.platform = 'web' AND i.external_id = :e"),
                {"e": chat_id}).first()
        return (str(row[0] or ""), bool(row[1])) if row else ("", False)

    def checked(request: Request) -> web_sessions.WebSession | JSONResponse:
        pane = _pane(request.headers.get("X-Chat-Pane"))
        row = current(request, pane)
        if row is None:
            return _error(401, "会话已过期，请刷新页面")
        if not web_sessions.csrf_ok(row, request.headers.get("X-CSRF-Token", "")):
            log.warning("web chat: bad CSRF token for session %s", row.id)
            return _error(403, "页面已失效，请刷新后再试")
        return row

    async def after_handle(request: Request) -> None:
        hub_of(request.app).notify()

    @r.get("/chat", response_class=HTMLResponse)
    async def chat_page(request: Request) -> Response:
        as_person = request.query_params.get("as")
        pane = ""
        person_id: int | None = None
        if as_person is not None:
            if not s.demo_mode or not as_person.isdigit():
                return Response("演示模式未开启", status_code=404, media_type="text/plain")
            person_id = int(as_person)
            pane = f"p{person_id}"
        row = await run_in_threadpool(current, request, pane)
        token = None
        if row is None:
            chat_id = f"demo-{person_id}" if person_id is not None else web_sessions.new_chat_id()
            try:
                token, row = await run_in_threadpool(new_session, chat_id, person_id)
            except DomainError as exc:
                return Response(sentence(exc), status_code=404, media_type="text/plain")
        assert row is not None
        name, leader = await run_in_threadpool(person_of, row.chat_id)
        body = render_page("chat.html", csrf=row.csrf, pane=pane, who=name or "访客",
                           demo="1" if s.demo_mode else "", leader="1" if leader else "",
                           placeholder="回复居民或输入命令…" if leader else "请描述您遇到的问题…")
        resp = HTMLResponse(body, headers={"Cache-Control": "no-store"})
        if token is not None:
            set_cookie(resp, pane, token)
        return resp

    @r.get("/chat/static/{name}")
    async def static(name: str) -> Response:
        if name not in ("chat.js", "chat.css", "demo.js", "demo.css", "poster.js", "poster.css",
                        "card.css"):
            return Response(status_code=404)
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return FileResponse(STATIC / name, media_type=f"{kind}; charset=utf-8")

    @r.post("/chat/send")
    async def send(request: Request) -> Response:
        row = await run_in_threadpool(checked, request)
        if isinstance(row, JSONResponse):
            return row
        length = int(request.headers.get("content-length") or 0)
        if length > max_body:
            return _error(413, f"文件太大（上限{max_body // 2**20}MB），请压缩后再发")
        async with request.form(max_files=2, max_fields=20) as form:
            client_id = str(form.get("client_id") or "")
            if not CLIENT_ID.fullmatch(client_id):
                return _error(400, "消息编号无效，请刷新页面")
            uploads = []
            for kind in ("photo", "voice"):
                f = form.get(kind)
                if f is not None and not isinstance(f, str):
                    data = await f.read()
                    uploads.append(Upload(kind, data, f.filename or "", f.content_type or ""))
            loc = None
            lat, lon = form.get("lat"), form.get("lon")
            if isinstance(lat, str) and isinstance(lon, str) and lat and lon:
                try:
                    loc = (float(lat), float(lon))
                except ValueError:
                    return _error(400, "位置无效")
            text = str(form.get("text") or "")[:4000]
            rt_text = str(form.get("reply_to_text") or "") or None
            rt_id = str(form.get("reply_to_message_id") or "") or None
        res = await run_in_threadpool(
            lambda: handle(c, chat_id=row.chat_id, client_id=client_id, text=text,
                           uploads=tuple(uploads), location=loc, reply_to_text=rt_text,
                           reply_to_message_id=rt_id))
        await after_handle(request)
        body: dict[str, Any] = {"ok": not res.errors, "duplicate": res.duplicate,
                                "errors": res.errors}
        if res.errors:
            body["error"] = res.errors[0]
        if res.unsaved:
            # The message was taken (a retry is a duplicate and changes nothing); only our
            # disk failed, which the chat line, /healthz and /metrics say: 200, not a 5xx.
            body["unsaved"] = res.unsaved
        status = 413 if res.too_large else (422 if res.errors else 200)
        return JSONResponse(body, status_code=status)

    @r.post("/chat/press")
    async def press(request: Request) -> Response:
        row = await run_in_threadpool(checked, request)
        if isinstance(row, JSONResponse):
            return row
        try:
            data = read_json(await request.body())
            client_id = str(data["client_id"])
            p = Press(action=str(data["action"]), case_id=int(data["case_id"]),
                      version=int(data["version"]),
                      arg=None if data.get("arg") is None else str(data["arg"]),
                      message_id=str(data.get("message_id") or "") or None)
            label = str(data.get("label") or "")
        except (ValueError, KeyError, TypeError):
            return _error(400, "按钮数据无效")
        if not (0 < p.case_id < 2**31 and 0 <= p.version < 2**31 and len(p.action) <= 32
                and len(p.arg or "") <= 256 and len(p.message_id or "") <= 64):
            # Bounded like the other platforms' buttons: ids past the database's integers
            # would fail the flow and lose the press.
            return _error(400, "按钮数据无效")
        if not CLIENT_ID.fullmatch(client_id):
            return _error(400, "消息编号无效，请刷新页面")
        res = await run_in_threadpool(
            lambda: handle(c, chat_id=row.chat_id, client_id=client_id, press=p,
                           press_label=label))
        await after_handle(request)
        return JSONResponse({"ok": True, "duplicate": res.duplicate})

    @r.post("/chat/phone")
    async def phone(request: Request) -> Response:
        row = await run_in_threadpool(checked, request)
        if isinstance(row, JSONResponse):
            return row
        try:
            number = attempts.phone_of(str(read_json(await request.body())["phone"]))
        except (ValueError, KeyError, TypeError):
            number = None
        if number is None:
            return _error(400, "请填写11位手机号")
        chat_id, client = row.chat_id, _client(request)

        def issue() -> str | None:
            with write_session(c.engine) as session:
                return web_sessions.send_code(session, chat_id=chat_id, phone=number,
                                              client=client, now=c.clock.now(),
                                              limits=code_limits, demo=s.demo_mode,
                                              wording=lambda lang, **p: t(lang, "web_code", **p))

        try:
            shown = await run_in_threadpool(issue)
        except TooManyAttempts as exc:
            return _error(429, sentence(exc), retry_after=exc.retry_after)
        # One answer whoever has (or nobody has) this number, so that it tells nothing.
        if shown is not None:
            return JSONResponse({"ok": True, "code": shown,
                                 "message": f"演示模式：验证码是 {shown}"})
        minutes = max(1, int(code_limits.ttl.total_seconds()) // 60)
        return JSONResponse({"ok": True, "message": CODE_SENT.format(minutes=minutes)})

    @r.post("/chat/code")
    async def code(request: Request) -> Response:
        row = await run_in_threadpool(checked, request)
        if isinstance(row, JSONResponse):
            return row
        try:
            given = str(read_json(await request.body())["code"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "请填写验证码")
        chat_id, client = row.chat_id, _client(request)

        def verify() -> web_sessions.CodeCheck:
            with write_session(c.engine) as session:
                return web_sessions.check_code(session, chat_id=chat_id, code=given[:64],
                                               client=client, now=c.clock.now(),
                                               limits=code_limits)

        result = await run_in_threadpool(verify)
        if result.phone is None:
            assert result.error is not None
            return _error(result.status, say(result.error.key, result.error.params, "zh"),
                          retry_after=result.retry_after)
        number = result.phone
        await run_in_threadpool(lambda: handle(
            c, chat_id=chat_id, client_id=f"phone-{secrets.token_hex(8)}", contact_phone=number))
        await after_handle(request)
        return JSONResponse({"ok": True})

    @r.get("/chat/events", response_class=StreamingResponse, responses={200: {
        "content": {"text/event-stream": {}},
        "description": "server-sent events: the bot's messages to this chat, keep-alives"}})
    async def events(request: Request) -> Response:
        pane = _pane(request.query_params.get("pane"))
        row = await run_in_threadpool(current, request, pane)
        if row is None:
            return Response("会话已过期，请刷新页面", status_code=401, media_type="text/plain")
        chat_id = row.chat_id
        raw = request.headers.get("Last-Event-ID") or request.query_params.get("after") or "0"
        after = int(raw) if raw.isdigit() else 0
        hub = hub_of(request.app)
        loop = asyncio.get_running_loop()

        def fetch(cursor: int) -> list[dict[str, Any]]:
            with c.engine.connect() as conn, conn.begin():
                from sqlmodel import Session

                with Session(bind=conn) as session:
                    return [{"id": m.id, "dir": m.direction, "text": m.text,
                             "client_id": m.client_id,
                             "actions": m.actions, "options": m.options or {},
                             "case_id": m.case_id, "kind": m.kind, "edit_of": m.edit_of}
                            for m in web_sessions.messages_after(session, chat_id=chat_id,
                                                                 after=cursor)]

        async def stream() -> AsyncIterator[str]:
            cursor = after
            started = last_beat = loop.time()
            yield "retry: 1000\n\n"
            while loop.time() - started < s.web_stream_seconds:
                if await request.is_disconnected():
                    return
                rows = await run_in_threadpool(fetch, cursor)
                for m in rows:
                    cursor = int(m["id"])
                    yield f"id: {cursor}\nevent: msg\ndata: {json.dumps(m, ensure_ascii=False)}\n\n"
                if rows:
                    continue
                if loop.time() - last_beat >= s.web_keepalive_seconds:
                    last_beat = loop.time()
                    yield ": keep-alive\n\n"
                await hub.wait(1.0)
            # Bounded: the browser reconnects with Last-Event-ID and loses nothing.

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @r.get("/chat/media/{ref:path}")
    async def media(request: Request, ref: str) -> Response:
        row = await run_in_threadpool(current, request, _pane(request.query_params.get("pane")))
        if row is None:
            return Response(status_code=401)

        def visible() -> bool:
            with c.engine.connect() as conn:
                from sqlmodel import Session

                with Session(bind=conn) as session:
                    return web_sessions.media_visible(session, chat_id=row.chat_id, ref=ref)

        if not await run_in_threadpool(visible):
            return Response(status_code=404)
        try:
            path = MediaStore.from_settings(s).path(ref)
        except DomainError:
            return Response(status_code=404)
        if not path.is_file():
            return Response(status_code=404)
        from webhooks.security_headers import media_type_of

        mime, headers = media_type_of(ref)  # a known picture or sound, else a download
        return FileResponse(path, media_type=mime,
                            headers={"Cache-Control": "private, max-age=86400", **headers})

    r.include_router(webchat_pages.router(c, webchat_pages.Sessions(
        current=current, new_session=new_session, set_cookie=set_cookie, after=after_handle)))
    return r
