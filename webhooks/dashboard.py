"""The dashboard for 书记 and town/district admins: sign-in, the warning map, cases, figures.

Pages are server-rendered HTML (no build step); webhooks/api.py serves the same data as JSON.
Every page reads through `Viewer`, which limits it to the signed-in person's subtrees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.dispatcher.recipients import configured_platforms
from bot.flows.refusals import event_note
from core import reports
from core.cases import services
from core.cases.model import ATTACHMENTS, STATE_LABEL_ZH, State
from core.cases.ops import EVENT_VERB_ZH
from core.container import Container
from core.db import session_scope, write_session
from core.errors import DomainError, NotFound
from core.hierarchy.model import Level
from core.media.store import MediaStore
from core.rollup import read as rollup
from core.sms import this_month as sms_month
from webhooks import dashboard_login
from webhooks.dashboard_auth import (
    ACTIONS_ZH,
    VERIFY_ACTIONS,
    SignedIn,
    Viewer,
    check_csrf,
    e,
)
from webhooks.dashboard_banner import case_banner, error_key
from webhooks.dashboard_figures import figures_body
from webhooks.dashboard_views import (
    HERE,
    _asset,
    _crumb_html,
    _fmt,
    _qs,
    case_in_scope,
    crumbs,
    figure_sheets,
    map_html,
    map_view,
    page,
    parse_day,
    pct_cell,
    period,
    role_zh,
    run_action,
    xlsx,
)
from webhooks.security_headers import media_type_of

# An attachment not shown yet says why in words, never the stored status key.
KIND_ZH = {"photo": "照片", "voice": "语音", "video": "视频", "document": "文件", "audio": "音频"}
FETCH_ZH = {"pending": "正在取回", "failed": "没能保存", "rejected": "文件不符合要求",
            "purged": "已匿名化删除"}

LEAFLET_IMAGES = ("layers.png", "layers-2x.png", "marker-icon.png", "marker-icon-2x.png",
                  "marker-shadow.png")


def router(c: Container) -> APIRouter:
    """The dashboard pages, sign-in, media and the JSON API (webhooks/api.py)."""
    from webhooks import api  # it imports this module's Viewer

    r = APIRouter()
    tz = c.tz

    r.include_router(dashboard_login.router(c))

    @r.get("/dashboard/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        kinds = {"dashboard.css": "text/css", "geo.js": "text/javascript",
                 "campaign.js": "text/javascript", "hotline.js": "text/javascript"}
        if name not in kinds:
            raise HTTPException(404)
        return Response(_asset(name), media_type=kinds[name],
                        headers={"Cache-Control": "max-age=300"})

    @r.get("/dashboard/static/leaflet/{name:path}", include_in_schema=False)
    def leaflet(name: str) -> Response:
        """Leaflet itself ships with the app (BSD-2), so the geographic view needs only a
        tile server, not a CDN."""
        kinds = {"leaflet.js": "text/javascript", "leaflet.css": "text/css",
                 **{f"images/{n}": "image/png" for n in LEAFLET_IMAGES}}
        if name not in kinds:
            raise HTTPException(404)
        return Response((HERE / "leaflet" / name).read_bytes(), media_type=kinds[name],
                        headers={"Cache-Control": "max-age=86400"})

    @r.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(v: SignedIn, node: str | None = None) -> HTMLResponse:
        m = map_view(c, v, node)
        head, body = map_html(c, v, m.node, m.path, m.tiles, m.own)
        return page(c, v, f"预警地图 · {m.node.name}", body, active="map", head=head)

    @r.get("/dashboard/cases", response_class=HTMLResponse, include_in_schema=False)
    def cases_page(request: Request, v: SignedIn, node: str | None = None,
                   state: str | None = None, category: int | None = None,
                   overdue: bool = False, start: str | None = None, end: str | None = None,
                   before: int | None = None) -> HTMLResponse:
        if state and state not in State.__members__:
            raise HTTPException(422, f"没有这个状态：{state}")
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            f = reports.CaseFilter(node=at, state=state, category_id=category, overdue=overdue,
                                   start=parse_day(start, tz), end=parse_day(end, tz),
                                   before=before, limit=c.settings.dashboard_page_size)
            rows, nxt = reports.case_list(s, f=f, now=c.clock.now())
            cats = reports.categories(s)
            path = crumbs(s, v, at)
        keep = {"node": at.code, "state": state, "category": category, "overdue": overdue,
                "start": start, "end": end}
        opts = "".join(f'<option value="{k}" {"selected" if k == state else ""}>{lbl}</option>'
                       for k, lbl in ((s_.value, STATE_LABEL_ZH[s_]) for s_ in State))
        copts = "".join(f'<option value="{i}" {"selected" if i == category else ""}>{e(n)}'
                        f'</option>' for i, n in cats)
        trs = "".join(
            f'<tr class="{"late" if row.overdue else ""}"><td data-label="编号">'
            f'<a href="/dashboard/cases/{row.id}">#{row.id}</a></td>'
            f'<td data-label="状态"><span class="st {row.state}">'
            f'{STATE_LABEL_ZH[State(row.state)]}</span>'
            f'{" <b class=warn>超时</b>" if row.overdue else ""}'
            f'</td><td class="txt" data-label="内容">{e(row.text[:60])}'
            f'{f" <b>{row.supporters}人反映</b>" if row.supporters > 1 else ""}</td>'
            f'<td data-label="类别">{e(row.category or "—")}</td>'
            f'<td data-label="承办人">{e(role_zh(row.holder_role))}{e(row.holder_name or "")}</td>'
            f'<td data-label="提交时间">{_fmt(row.opened_at, tz)}</td>'
            f'<td data-label="期限">{_fmt(row.deadline_at, tz)}</td></tr>'
            for row in rows) or '<tr><td colspan="7" class="empty">没有符合条件的工单</td></tr>'
        more = (f'<a class="btn" href="/dashboard/cases?{_qs(**keep, before=nxt)}">下一页 →</a>'
                if nxt else "")
        first = (f'<a class="btn" href="/dashboard/cases?{_qs(**keep)}">← 第一页</a>'
                 if before else "")
        body = f"""{_crumb_html(path, "/dashboard/cases")}<h1>工单 · {e(at.name)}</h1>
<form class="filters" method="get"><input type="hidden" name="node" value="{e(at.code)}">
<label>状态<select name="state"><option value="">全部</option>{opts}</select></label>
<label>类别<select name="category"><option value="">全部</option>{copts}</select></label>
<label>从<input type="date" name="start" value="{e(start or "")}"></label>
<label>到<input type="date" name="end" value="{e(end or "")}"></label>
<label class="cb"><input type="checkbox" name="overdue" value="1"
{"checked" if overdue else ""}>只看超时</label>
<button>筛选</button></form>
<table class="cases cards"><thead><tr><th>编号</th><th>状态</th><th>内容</th><th>类别</th>
<th>承办人</th><th>提交时间</th><th>期限</th></tr></thead><tbody>{trs}</tbody></table>
<div class="pager">{first}{more}</div>"""
        del request
        return page(c, v, "工单", body, active="cases")

    @r.get("/dashboard/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
    def case_page(case_id: int, v: SignedIn, msg: str | None = None,
                  ok: str | None = None) -> HTMLResponse:
        with session_scope(c.engine) as s:
            case_in_scope(s, v, case_id)
            cv = services.view(s, case_id=case_id, now=c.clock.now())
            events = services.history(s, case_id=case_id)
            atts = services.attachments_of(s, case_id=case_id)
            held = reports.holdings(s, case_id=case_id)
            names = reports.person_names(s, {ev.actor_id for ev in events if ev.actor_id})
            may = services.can_act(s, case_id=case_id, person_id=v.who.person.id)
        flash = case_banner(msg=msg, ok=ok)
        media = []
        for a in atts:
            said = ("整改后" + (f"：{a.caption}" if a.caption else "")) if a.purpose == "after" \
                else a.caption
            cap = f"<figcaption>{e(said)}</figcaption>" if said else ""
            if a.kind == "photo" and a.stored_ref:
                thumb = a.thumb_ref or a.stored_ref
                media.append(f'<figure><a href="/media/{e(a.stored_ref)}" target="_blank">'
                             f'<img src="/media/{e(thumb)}" alt="照片" loading="lazy"></a>{cap}'
                             f'</figure>')
            elif a.kind in ("voice", "video") and a.stored_ref:
                tag = "audio" if a.kind == "voice" else "video"
                media.append(f'<figure><{tag} controls preload="none" '
                             f'src="/media/{e(a.stored_ref)}"></{tag}>{cap}</figure>')
            elif a.kind == "location" and a.latitude is not None:
                media.append(f'<figure class="loc">📍 {a.latitude:.5f}, {a.longitude:.5f}'
                             f'{cap}</figure>')
            else:
                media.append(f'<figure class="pending">{e(KIND_ZH.get(a.kind, "附件"))}（'
                             f'{e(FETCH_ZH.get(a.fetch_status or "", "处理中"))}）</figure>')
        notes = [event_note(ev.kind, ev.note, ev.detail) for ev in events]
        timeline = "".join(
            f'<li class="ev {e(ev.kind)}"><time>{_fmt(ev.at, tz)}</time> '
            f'<b>{e(names.get(ev.actor_id, "系统") if ev.actor_id else "系统")}</b> '
            f'{e(role_zh(ev.role)) if ev.kind in ("escalated", "nagged") else ""}'
            f'{e(EVENT_VERB_ZH.get(ev.kind, ev.kind))}'
            f'{("：" + e(note)) if note else ""}</li>'
            for ev, note in zip(events, notes, strict=True))
        # A closed case's last holder held it until it closed, not "until now".
        ended = events[-1].at if cv.state is State.closed and events else None
        holders = "".join(
            f'<li><b>{e(role_zh(h.role))}{e(h.name or "—")}</b>：{_fmt(h.since, tz)} — '
            f'{_fmt(h.until or ended, tz) if (h.until or ended) else "至今"}</li>' for h in held)
        forms = ""
        if may and cv.stage == "verify":
            # 核查: approve, or send back with the reason; the photos are on the page.
            for act in VERIFY_ACTIONS:
                field = ('<input name="text" placeholder="退回重办的原因" required>'
                         if act == "send_back" else "")
                forms += (f'<form method="post" action="/dashboard/cases/{case_id}/{act}" '
                          f'class="act {act}"><input type="hidden" name="version" '
                          f'value="{cv.version}"><input type="hidden" name="csrf" '
                          f'value="{v.csrf}">{field}<button>{ACTIONS_ZH[act]}</button></form>')
        elif may and cv.state in (State.open, State.accepted):
            for act, label in ACTIONS_ZH.items():
                if act in VERIFY_ACTIONS or (act == "accept" and cv.state is not State.open):
                    continue
                field = ""
                if act in ("reply", "escalate", "reject", "resolve", "whistle"):
                    ph = {"reply": "答复内容", "escalate": "转上级的原因", "reject": "驳回理由",
                          "resolve": "办结说明（可不填）", "whistle": "吹哨说明（可不填）"}[act]
                    req = "required" if act in ("reply", "escalate", "reject") else ""
                    field = f'<input name="text" placeholder="{ph}" {req}>'
                elif act == "merge":
                    field = '<input name="into" type="number" placeholder="工单编号" required>'
                forms += (f'<form method="post" action="/dashboard/cases/{case_id}/{act}" '
                          f'class="act {act}"><input type="hidden" name="version" '
                          f'value="{cv.version}"><input type="hidden" name="csrf" '
                          f'value="{v.csrf}">{field}<button>{label}</button></form>')
        actions_html = (f'<section class="card"><h2>处理</h2>{forms}</section>' if forms else "")
        media_html = ("".join(media) or '<p class="muted">没有附件</p>')
        body = f"""<p><a href="/dashboard/cases">← 工单列表</a></p>{flash}
<h1>工单 #{cv.id} <span class="st {cv.state.value}">{STATE_LABEL_ZH[cv.state]}</span>
{'<b class="warn">超时</b>' if cv.overdue else ""}</h1>
<div class="cols"><div>
<section class="card"><p class="text">{e(cv.text)}</p>
<dl><dt>类别</dt><dd>{e(cv.category or "未分类")}</dd>
<dt>承办人</dt><dd>{e(role_zh(cv.holder_role))}{e(cv.holder_name or "—")}</dd>
<dt>提交</dt><dd>{_fmt(cv.opened_at, tz)}</dd><dt>期限</dt><dd>{_fmt(cv.deadline_at, tz)}</dd>
<dt>满意度</dt><dd>{cv.rating or "—"}</dd>
<dt>反映人数</dt><dd>{cv.supporters} 人反映</dd></dl></section>
<section class="card"><h2>照片与语音</h2><div class="media">{media_html}</div></section>
{actions_html}</div><div>
<section class="card"><h2>承办经过</h2><ul class="holders">{holders}</ul></section>
<section class="card"><h2>处理记录</h2><ol class="timeline">{timeline}</ol></section>
</div></div>"""
        return page(c, v, f"工单 #{case_id}", body, active="cases")

    @r.post("/dashboard/cases/{case_id}/{action}", include_in_schema=False)
    def case_action(case_id: int, action: str, v: SignedIn,
                    version: int = Form(...), csrf: str = Form(""), text: str = Form(""),
                    into: int | None = Form(None)) -> Response:
        check_csrf(v, csrf)
        back = f"/dashboard/cases/{case_id}"
        try:
            with write_session(c.engine) as s:
                run_action(s, c, v, case_id=case_id, action=action, version=version,
                           text=text or None, into=into)
        except NotFound:
            raise  # a 404, from the app's handler
        except DomainError as exc:
            # A key, never the text: a link of someone else's making shows no words of theirs.
            return RedirectResponse(f"{back}?{_qs(msg=error_key(exc))}", status_code=303)
        return RedirectResponse(f"{back}?{_qs(ok=action)}", status_code=303)

    @r.get("/dashboard/figures", response_class=HTMLResponse, include_in_schema=False)
    def figures_page(v: SignedIn, node: str | None = None,
                     start: str | None = None, end: str | None = None) -> HTMLResponse:
        start_dt, end_dt = period(c, start, end)
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            f, rolled, as_of = rollup.figures_for(s, node=at, start=start_dt, end=end_dt,
                                                  tz=tz, leaders=10)
            weeks = rollup.weekly_for(s, node=at, start=start_dt, end=end_dt, tz=tz)
            cats = rollup.categories_for(s, node=at, start=start_dt, end=end_dt, tz=tz)
            level = Level.village if at.level in (Level.town, Level.village) else Level.town
            ranked, too_few = rollup.ranking_for(s, scope=at, level=level, start=start_dt,
                                                 end=end_dt, tz=tz,
                                                 min_cases=c.settings.dashboard_min_cases)
            path = crumbs(s, v, at)
            # SMS is the deployment's bill, counted per message, not per node: the root only.
            texts = sms_month(s, now=c.clock.now(), tz=tz, cost_fen=c.settings.sms_cost_fen) \
                if at.parent_id is None and "sms" in configured_platforms(c.settings) else None
        body = figures_body(c, f=f, rolled=rolled, as_of=as_of, weeks=weeks, cats=cats,
                            level=level, ranked=ranked, too_few=too_few, at=at, path=path,
                            sms=texts)
        return page(c, v, "统计", body, active="figures")

    @r.get("/dashboard/export/{kind}.xlsx", include_in_schema=False)
    def export(kind: str, v: SignedIn, node: str | None = None,
               start: str | None = None, end: str | None = None) -> Response:
        return export_xlsx(c, v, kind, node, start, end)

    @r.get("/media/{ref:path}", include_in_schema=False)
    def media(ref: str, v: SignedIn) -> Response:
        """A stored file of any case the viewer may see: the same bytes sent to two cases are
        one file with two attachment rows, and either case's viewers may open it."""
        A = ATTACHMENTS
        with session_scope(c.engine) as s:
            rows = s.execute(
                sa.select(A.c.mime, reports.C.c.node_path, A.c.stored_ref)
                .join(reports.C, reports.C.c.id == A.c.case_id)
                .where(sa.or_(A.c.stored_ref == ref, A.c.thumb_ref == ref))
            ).all()
        row = next((x for x in rows if v.sees(x.node_path)), None)
        if row is None:
            raise HTTPException(404, "没有这个文件")
        store = MediaStore.from_settings(c.settings)
        data = store.open(ref)
        mime, headers = media_type_of(ref, row.mime if ref == row.stored_ref else None)
        return Response(data, media_type=mime,
                        headers={"Cache-Control": "private, max-age=86400", **headers})

    r.include_router(api.router(c))
    return r


def export_xlsx(c: Container, v: Viewer, kind: str, node: str | None, start: str | None,
                end: str | None) -> Response:
    """figures | weekly | ranking as an XLSX workbook."""
    if kind not in ("figures", "weekly", "ranking"):
        raise HTTPException(404, "没有这个导出")
    start_dt, end_dt = period(c, start, end)
    tz = c.tz
    with session_scope(c.engine) as s:
        at = v.node(s, node)
        if kind == "ranking":
            level = Level.village if at.level in (Level.town, Level.village) else Level.town
            ranked, too_few = rollup.ranking_for(s, scope=at, level=level, start=start_dt,
                                                 end=end_dt, tz=tz,
                                                 min_cases=c.settings.dashboard_min_cases)
            head = ["名次", "编码", "单位", "收到", "办结", "办结率", "按时首次答复率",
                    "平均满意度",
                    "得分"]
            rows: list[list[Any]] = [head] + [
                [i, x.node.code, x.node.name, x.received, x.closed,
                 pct_cell(x.resolution_rate), pct_cell(x.on_time_rate),
                 None if x.mean_rating is None else round(x.mean_rating, 2), x.score]
                for i, x in enumerate(ranked, 1)]
            left: list[list[Any]] = [["编码", "单位", "收到"]] + [
                [x.node.code, x.node.name, x.received] for x in too_few]
            sheets = [("考核排名", rows), ("样本不足", left)]
        else:
            f = rollup.figures_for(s, node=at, start=start_dt, end=end_dt, tz=tz).figures
            weeks = rollup.weekly_for(s, node=at, start=start_dt, end=end_dt, tz=tz)
            all_sheets = figure_sheets(f, weeks, at, tz)
            sheets = (list(all_sheets.items()) if kind == "figures"
                      else [("周趋势", all_sheets["周趋势"])])
    resp = xlsx([(t, [[_local(x, tz) for x in row] for row in rows_])
                 for t, rows_ in sheets])
    name = f"{kind}-{at.code}-{start_dt.astimezone(tz).date()}.xlsx"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


def _local(x: Any, tz: ZoneInfo) -> Any:
    return x.astimezone(tz) if isinstance(x, datetime) else x
