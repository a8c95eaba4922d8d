"""The hotline console at /dashboard/hotline: an operator on the phone types the caller's
number (Enter looks up), their words (Ctrl+Enter files) and reads the receipt; the page then
waits on the number field for the next call. The rules are core/hotline.py's; this module
only draws them. Works without script: hotline.js adds Ctrl+Enter and keeps the focus where
the next keystroke belongs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.flows.refusals import sentence
from bot.flows.report import suggest_category
from bot.flows.texts import t
from core import hotline
from core.cases.model import STATE_LABEL_ZH
from core.container import Container
from core.db import session_scope, write_session
from core.errors import DomainError
from core.hierarchy.queries import NodeRef
from core.hierarchy.tree import LEVEL_LABEL_ZH
from core.privacy import clip
from webhooks.dashboard_auth import SignedIn, Viewer, check_csrf, e
from webhooks.dashboard_views import _fmt, page, role_zh
from webhooks.http_errors import STATUS

HEAD = '<script src="/dashboard/static/hotline.js" defer></script>'
LATE = '<span class="warn">已超时</span>'
UNKNOWN_CALLER = "来电群众"  # what an unregistered caller is called when the operator asks not


def _status(exc: DomainError) -> int:
    return next((STATUS[k] for k in type(exc).__mro__ if k in STATUS), 400)


def _lookup_form(phone: str, *, focus: bool) -> str:
    return (f'<form method="get" action="/dashboard/hotline" class="hl-lookup">'
            f'<label for="hl-phone">来电号码</label><div class="hl-row">'
            f'<input id="hl-phone" name="phone" type="tel" inputmode="tel" autocomplete="off"'
            f' value="{e(phone)}" placeholder="如 139 0000 0009"'
            f'{" autofocus data-focus" if focus else ""} required>'
            f'<button>查询 <kbd>回车</kbd></button></div></form>')


def _chain_html(caller: hotline.Caller) -> str:
    rows = []
    for ld in caller.chain:
        phone = (f'<a href="tel:{e(ld.phone)}">{e(ld.phone)}</a>' if ld.phone else "—")
        rows.append(f'<tr><td data-label="层级">{e(role_zh(ld.role.value))}</td>'
                    f'<td data-label="姓名">{e(ld.name) if ld.name else "（空缺）"}</td>'
                    f'<td data-label="电话">{phone}</td>'
                    f'<td data-label="网格">{e(ld.node.name)}</td></tr>')
    return ('<h3>包联干部（邻长 → 组长 → 片长 → 书记）</h3><table class="hl-chain">'
            '<thead><tr><th>层级</th><th>姓名</th><th>电话</th><th>网格</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _cases_html(c: Container, caller: hotline.Caller) -> str:
    if not caller.cases:
        return '<h3>未办结工单</h3><p class="muted">没有未办结的工单。</p>'
    rows = "".join(
        f'<tr class="{"late" if k.overdue else ""}"><td data-label="编号">'
        f'<a href="/dashboard/cases/{k.id}">#{k.id}</a></td>'
        f'<td data-label="内容" class="txt">{e(clip(k.text, 40))}</td>'
        f'<td data-label="状态"><span class="st {k.state.value}">{STATE_LABEL_ZH[k.state]}'
        f'</span></td><td data-label="承办">{e(role_zh(k.holder_role))}'
        f'{e(k.holder_name or "—")}</td><td data-label="期限">{_fmt(k.deadline_at, c.tz)}'
        f'{LATE if k.overdue else ""}</td></tr>'
        for k in caller.cases)
    return ('<h3>未办结工单</h3><table class="cards cases hl-cases"><thead><tr><th>编号</th>'
            '<th>内容</th><th>状态</th><th>承办</th><th>期限</th></tr></thead>'
            f'<tbody>{rows}</tbody></table>')


def _who_html(c: Container, caller: hotline.Caller) -> str:
    if caller.outside:
        return ('<section class="card hl-who"><p class="error">这个号码的登记住址不在您的辖区内。'
                '不能在这里查看或代为登记，请转给来电人所在街道或12345。</p></section>')
    if caller.home is None:
        known = ("此号码已登记，但没有住户住址。" if caller.person_id is not None
                 else "此号码没有登记。")
        return (f'<section class="card hl-who"><h2>未登记住址的来电 <small>{e(caller.phone)}'
                f'</small></h2><p>{known}仍可代为登记：在号码下方选择问题发生的邻（输入网格编码或'
                f'地址查找），或登记到本辖区办公室；工单照常分派并记录为电话来源。</p>'
                f'{_cases_html(c, caller)}</section>')
    level = LEVEL_LABEL_ZH.get(caller.home.level, "")
    told = {hotline.Told.chat: "有聊天账号：登记后回执自动发到对方聊天。",
            hotline.Told.sms: "没有聊天账号：登记后回执以短信发到此号码。"}.get(
        caller.told, "没有聊天账号：登记后请在电话里把回执读给对方听。")
    return (f'<section class="card hl-who"><h2>{e(caller.name or "")} <small>'
            f'{e(caller.phone)}</small></h2><dl><dt>住址</dt><dd>{e(caller.address or "—")}'
            f'</dd><dt>所在{level}</dt><dd>{e(caller.home.name)} <small class="muted">'
            f'{e(caller.home.code)}</small></dd><dt>回执</dt><dd>{told}</dd></dl>'
            f'{_chain_html(caller)}{_cases_html(c, caller)}</section>')


def _place_html(v: Viewer, caller: hotline.Caller, place_q: str,
                found: list[NodeRef]) -> tuple[str, str]:
    """The place search (its own GET form) and the place choice inside the filing form."""
    office = v.home
    search = (f'<form method="get" action="/dashboard/hotline" class="hl-place">'
              f'<input type="hidden" name="phone" value="{e(caller.phone)}">'
              f'<label for="hl-place-q">问题发生在哪个邻（网格编码或地址）</label>'
              f'<div class="hl-row"><input id="hl-place-q" name="place_q" autocomplete="off"'
              f' value="{e(place_q)}" placeholder="如 幸福社区3号楼"'
              f'{"" if place_q else " data-focus"}><button>查找</button></div></form>')
    options = [(n.code, f"{n.name}（{n.code}）") for n in found]
    options.append((office.code, f"本辖区办公室（{office.name}）"))
    picked = options[0][0]
    radios = "".join(
        f'<label class="hl-opt"><input type="radio" name="place" value="{e(code)}"'
        f'{" checked" if code == picked else ""}> {e(label)}</label>' for code, label in options)
    note = ("" if not place_q or found else
            '<p class="muted">没有找到匹配的邻，可换个说法再查，或登记到本辖区办公室。</p>')
    return search, (f'{note}<fieldset class="hl-places"><legend>登记到</legend>{radios}'
                    '</fieldset><label for="hl-name">来电人称呼（可不填）</label>'
                    '<input id="hl-name" name="caller_name" autocomplete="off" maxlength="40">')


def _file_form(v: Viewer, caller: hotline.Caller, words: str, place_fields: str,
               *, focus: bool) -> str:
    return (f'<form method="post" action="/dashboard/hotline" class="hl-file" id="hl-file">'
            f'<input type="hidden" name="csrf" value="{v.csrf}">'
            f'<input type="hidden" name="phone" value="{e(caller.phone)}">{place_fields}'
            f'<label for="hl-words">来电内容</label><textarea id="hl-words" name="words" rows="6"'
            f' maxlength="4000" placeholder="记下来电人反映的问题、地点和时间"'
            f'{" autofocus data-focus" if focus else ""}>{e(words)}</textarea>'
            f'<div class="hl-row"><button class="hl-submit">提交 <kbd>Ctrl+Enter</kbd></button>'
            f'<span class="muted">来源记为“电话”，受理人记为 {e(v.who.person.name)}</span>'
            '</div></form>')


def _receipt_html(c: Container, r: hotline.Receipt) -> str:
    holder = f"{role_zh(r.holder_role)}{r.holder_name or ''}"
    where = f"（{r.holder_node}）" if r.holder_node else ""
    when = _fmt(r.deadline_at, c.tz)
    head = (f"已补充到工单 #{r.case_id}（来电人几分钟前刚反映过，按补充处理）" if r.added
            else f"已登记工单 #{r.case_id}")
    if r.told is hotline.Told.chat:
        told = '<p class="ok">回执已发到来电人的聊天。</p>'
    elif r.told is hotline.Told.sms:
        told = '<p class="ok">回执将以短信发到来电人的手机。</p>'
    else:
        words = t("zh", "hotline_read_aloud_added" if r.added else "hotline_read_aloud",
                  case=r.case_id, holder=holder, when=when)
        told = ('<p class="hl-nochat">来电人没有绑定聊天账号，无法发送回执：'
                f'请在电话里读给对方听——</p><p class="hl-read" id="hl-read">{e(words)}</p>')
    return (f'<section class="card hl-receipt" id="hl-receipt" aria-live="polite"><h2>{head}</h2>'
            f'<dl><dt>编号</dt><dd><a href="/dashboard/cases/{r.case_id}">#{r.case_id}</a>'
            f'</dd><dt>转给</dt><dd>{e(holder)}{e(where)}</dd><dt>答复期限</dt>'
            f'<dd>{when}</dd><dt>来电人</dt><dd>{e(r.caller_name)}</dd></dl>{told}</section>')


def router(c: Container) -> APIRouter:
    """/dashboard/hotline: look up a caller, file their case, show the receipt."""
    r = APIRouter(tags=["hotline"])

    def render(v: Viewer, *, phone: str = "", place_q: str = "", words: str = "",
               error: str = "", receipt: hotline.Receipt | None = None,
               status: int = 200) -> HTMLResponse:
        caller: hotline.Caller | None = None
        found: list[NodeRef] = []
        with session_scope(c.engine) as s:
            if phone and not receipt:
                try:
                    caller = hotline.look_up(s, operator=v.who, phone=phone, now=c.clock.now(),
                                            sms_on=c.settings.sms_on)
                except DomainError as exc:
                    error = error or sentence(exc, "zh")
            if caller is not None and caller.home is None and not caller.outside:
                found = hotline.places(s, operator=v.who, query=place_q)
        left, right = "", ""
        if caller is not None and not caller.outside:
            search, fields = ("", "")
            if caller.home is None:
                search, fields = _place_html(v, caller, place_q, found)
            left = search + _file_form(v, caller, words, fields,
                                       focus=caller.home is not None or bool(place_q))
            right = _who_html(c, caller)
        elif caller is not None:
            right = _who_html(c, caller)
        elif words.strip():
            # A number that is none: the words are not lost, only not filed yet.
            left = f'<p class="muted">刚才填写的内容（未保存）：</p><p class="text">{e(words)}</p>'
        if receipt is not None:
            right = _receipt_html(c, receipt)
        flash = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        shown = "" if receipt is not None else (caller.phone if caller else phone)
        body = (f'<h1>热线受理 <small class="muted">12345 / 街道来电，代居民登记诉求</small></h1>'
                f'<div class="hotline"><section class="card hl-call">'
                f'{_lookup_form(shown, focus=caller is None or caller.outside)}{flash}{left}'
                f'<p class="muted hl-keys"><kbd>回车</kbd> 查询 · <kbd>Ctrl+Enter</kbd> 提交 · '
                f'<kbd>Esc</kbd> 回到号码</p></section><div class="hl-side">{right}</div></div>')
        resp = page(c, v, "热线受理", body, active="hotline", head=HEAD)
        resp.status_code = status
        return resp

    @r.get("/dashboard/hotline", response_class=HTMLResponse, include_in_schema=False)
    def console(v: SignedIn, phone: str = "", place_q: str = "", filed: int | None = None,
                added: int = 0) -> HTMLResponse:
        receipt = None
        if filed is not None:
            with session_scope(c.engine) as s:
                try:
                    receipt = hotline.receipt(s, operator=v.who, case_id=filed,
                                              added=bool(added), sms_on=c.settings.sms_on)
                except DomainError as exc:
                    return render(v, error=sentence(exc, "zh"), status=_status(exc))
        return render(v, phone=phone[:40], place_q=place_q[:60], receipt=receipt)

    @r.post("/dashboard/hotline", include_in_schema=False)
    def file(v: SignedIn, csrf: str = Form(""), phone: str = Form(""), words: str = Form(""),
             place: str = Form(""), caller_name: str = Form("")) -> Response:
        check_csrf(v, csrf)
        try:
            with write_session(c.engine) as s:
                got = hotline.file_call(
                    s, clock=c.clock, settings=c.settings, operator=v.who, phone=phone[:40],
                    words=words, place=place[:40] or None, category=suggest_category(words),
                    caller_name=caller_name or UNKNOWN_CALLER)
        except DomainError as exc:
            # Nothing was stored (the transaction rolled back); the words stay on screen.
            outside = exc.key == "hotline_caller_outside"
            return render(v, phone="" if outside else phone[:40], words="" if outside else words,
                          place_q=place[:40], error=sentence(exc, "zh"), status=_status(exc))
        query: dict[str, Any] = {"filed": got.case_id, **({"added": 1} if got.added else {})}
        return RedirectResponse(f"/dashboard/hotline?{urlencode(query)}", status_code=303)

    return r

