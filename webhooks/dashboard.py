"""The dashboard for 书记 and town/district admins: sign-in, the warning map, cases, figures.

Pages are server-rendered HTML (no build step); webhooks/api.py serves the same data as JSON.
Every page reads through `Viewer`, which limits it to the signed-in person's subtrees.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from string import Template
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from core import accounts, reports
from core.cases import actions, services, stats
from core.cases.model import ATTACHMENTS, STATE_LABEL_ZH, State
from core.cases.ops import EVENT_VERB_ZH
from core.clock import as_utc
from core.container import Container
from core.db import session_scope, write_session
from core.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Level, Node
from core.hierarchy.queries import Actor, NodeRef, actor, ancestors, children, node_by_code
from core.hierarchy.tree import LEVEL_LABEL_ZH, ROLE_LABEL_ZH
from core.media.store import MediaStore

HERE = Path(__file__).parent / "dashboard"
COOKIE = "lz_dash"
e = html.escape
LEVEL_ZH = {"green": "正常", "yellow": "关注", "orange": "预警", "red": "告急"}
MAP_LEVELS = (Level.district, Level.town, Level.village, Level.area, Level.group,
              Level.neighborhood)
ACTIONS_ZH = {"accept": "受理", "reply": "答复居民", "resolve": "办结", "escalate": "转上级",
              "whistle": "吹哨", "reject": "驳回", "merge": "合并到"}
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
            raise PermissionDenied(f"{found.name}不在您的管辖范围内")
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


@contextmanager
def domain_errors() -> Iterator[None]:
    """Domain errors to HTTP status codes."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except PermissionDenied as exc:
        raise HTTPException(403, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except InvalidInput as exc:
        raise HTTPException(422, str(exc)) from exc


# ---------------------------------------------------------------- shared reads


def thresholds(c: Container) -> stats.Thresholds:
    return stats.Thresholds.from_settings(c.settings)


@dataclass(frozen=True)
class Tile:
    status: stats.NodeStatus
    has_children: bool
    latitude: float | None
    longitude: float | None


def map_tiles(session: Session, c: Container, node: NodeRef) -> list[Tile]:
    """The node's children with their warning colours (departments are not on the map)."""
    now = c.clock.now()
    kids = [k for k in children(session, node) if k.level in MAP_LEVELS]
    if not kids:
        return []
    ids = [k.id for k in kids]
    coords = {r.id: (r.latitude, r.longitude) for r in session.execute(
        sa.select(N.c.id, N.c.latitude, N.c.longitude).where(N.c.id.in_(ids)))}
    parents = set(session.execute(
        sa.select(N.c.parent_id).where(N.c.parent_id.in_(ids)).distinct()).scalars())
    t = thresholds(c)
    return [Tile(stats.node_status(session, node=k, now=now, thresholds=t), k.id in parents,
                 *coords.get(k.id, (None, None))) for k in kids]


def crumbs(session: Session, viewer: Viewer, node: NodeRef) -> list[NodeRef]:
    return [n for n in ancestors(session, node, include_self=True) if viewer.sees(n)]


def parse_day(value: str | None, tz: ZoneInfo) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=tz)
    except ValueError:
        raise HTTPException(422, f"日期格式应为 YYYY-MM-DD：{value!r}") from None


def period(c: Container, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """[start, end) from dates in local time; default the last 30 days up to today."""
    tz = c.tz
    today = c.clock.now().astimezone(tz).date()
    end_dt = parse_day(end, tz) or datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz)
    start_dt = parse_day(start, tz) or end_dt - timedelta(days=30)
    if start_dt >= end_dt:
        raise HTTPException(422, "开始日期必须早于结束日期")
    return start_dt, end_dt


def run_action(session: Session, c: Container, viewer: Viewer, *, case_id: int, action: str,
               version: int, text: str | None = None, into: int | None = None) -> None:
    """One leader action on a case in the viewer's scope, as in chat (version-checked)."""
    case_in_scope(session, viewer, case_id)
    kw: dict[str, Any] = {"clock": c.clock, "case_id": case_id,
                          "person_id": viewer.who.person.id, "version": version,
                          "via": "dashboard"}
    if action == "accept":
        actions.accept(session, **kw)
    elif action == "reply":
        actions.reply(session, text=text or "", **kw)
    elif action == "resolve":
        actions.resolve(session, note=text, **kw)
    elif action == "escalate":
        actions.escalate(session, reason=text or "", **kw)
    elif action == "whistle":
        actions.whistle(session, reason=text, **kw)
    elif action == "reject":
        actions.reject(session, reason=text or "", **kw)
    elif action == "merge":
        if into is None:
            raise InvalidInput("请填写要合并到的工单编号")
        case_in_scope(session, viewer, into)
        actions.merge(session, into_case_id=into, **kw)
    else:
        raise NotFound(f"没有这个操作：{action}")


def case_in_scope(session: Session, viewer: Viewer, case_id: int) -> str:
    """The case's home path; NotFound for a case outside the viewer's subtrees."""
    path = session.execute(sa.select(reports.C.c.node_path)
                           .where(reports.C.c.id == case_id)).scalar_one_or_none()
    if path is None or not viewer.sees(path):
        raise NotFound(f"没有工单#{case_id}")
    return str(path)


def xlsx(sheets: list[tuple[str, list[list[Any]]]]) -> Response:
    """A workbook of plain tables; first row of each is the header."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets:
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append([v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in row])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for col in ws.columns:
            width = max(len(str(cell.value or "")) for cell in col)
            ws.column_dimensions[col[0].column_letter].width = min(max(10, width * 2), 50)
    buf = io.BytesIO()
    wb.save(buf)
    return Response(buf.getvalue(), media_type=XLSX_MIME)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def span(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.0f}分钟"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}小时"
    return f"{seconds / 86400:.1f}天"


def role_zh(role: str | None) -> str:
    if not role:
        return ""
    try:
        from core.hierarchy.model import Role

        return ROLE_LABEL_ZH[Role(role)]
    except (ValueError, KeyError):
        return role


TIER_ORDER = ("neighbor_leader", "group_leader", "area_leader", "secretary", "department", "admin")


def tier_roles(f: stats.Figures) -> list[str]:
    """The tiers that appear in the figures, bottom of the chain first."""
    found = set(f.on_time_first_reply) | set(f.escalations)
    return sorted(found, key=lambda r: (TIER_ORDER.index(r) if r in TIER_ORDER else 99, r))


def figure_sheets(f: stats.Figures, weeks: list[reports.WeekRow], node: NodeRef,
                  tz: ZoneInfo) -> dict[str, list[list[Any]]]:
    summary: list[list[Any]] = [
        ["指标", "数值"], ["范围", node.name], ["开始", f.start.astimezone(tz)],
        ["结束", f.end.astimezone(tz)], ["收到", f.received], ["办结", f.closed],
        ["办结率", f.resolution_rate], ["驳回", f.rejected], ["合并", f.merged],
        ["首次答复用时中位数(小时)", f.median_first_reply_s and f.median_first_reply_s / 3600],
        ["办结用时中位数(小时)", f.median_close_s and f.median_close_s / 3600],
        ["平均满意度", f.mean_rating],
    ]
    tiers: list[list[Any]] = [["层级", "按时首次答复", "应答复", "按时率", "上报次数"]]
    for role in tier_roles(f):
        tr = f.on_time_first_reply.get(role)
        tiers.append([role_zh(role), tr.on_time if tr else 0, tr.total if tr else 0,
                      tr.rate if tr else None, f.escalations.get(role, 0)])
    leaders: list[list[Any]] = [["邻长", "评价数", "平均满意度"]]
    leaders += [[r.name, r.rated, round(r.mean, 2)] for r in f.rating_by_neighbor_leader]
    trend: list[list[Any]] = [["周起", "收到", "已办结", "首次答复超时"]]
    trend += [[w.start.astimezone(tz).date(), w.received, w.closed, w.overdue_replies]
              for w in weeks]
    return {"概况": summary, "各层级": tiers, "邻长满意度": leaders, "周趋势": trend}


# ---------------------------------------------------------------- HTML


def _asset(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def page(c: Container, viewer: Viewer | None, title: str, body: str, *,
         active: str = "", head: str = "") -> HTMLResponse:
    nav = ""
    if viewer is not None:
        links = [("map", "/dashboard", "预警地图"), ("cases", "/dashboard/cases", "工单"),
                 ("figures", "/dashboard/figures", "统计考核")]
        nav = "".join(f'<a href="{u}" class="{"on" if k == active else ""}">{t}</a>'
                      for k, u, t in links)
        scope = "、".join(s.name for s in viewer.scopes)
        nav += (f'<span class="me">{e(viewer.who.person.name)} · {e(scope)}'
                f'<form method="post" action="/logout"><input type="hidden" name="csrf" '
                f'value="{viewer.csrf}"><button>退出</button></form></span>')
    doc = Template(_asset("layout.html")).substitute(
        title=e(title), nav=nav, body=body, head=head)
    return HTMLResponse(doc)


def _qs(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "", False)})


def _crumb_html(items: list[NodeRef], base: str, **extra: Any) -> str:
    parts = [f'<a href="{base}?{_qs(node=n.code, **extra)}">{e(n.name)}</a>' for n in items]
    return '<nav class="crumbs">' + ' <span>›</span> '.join(parts) + "</nav>"


def legend(c: Container) -> str:
    t = thresholds(c)
    rows = [("green", "正常", "未达关注线")]
    for i, lv in enumerate(("yellow", "orange", "red")):
        rule = f"未办结 ≥ {t.unresolved[i]} 件 或 超时 ≥ {t.overdue[i]} 件"
        rows.append((lv, LEVEL_ZH[lv], rule))
    items = "".join(f'<li><i class="sw {lv}"></i><b>{name}</b> {e(rule)}</li>'
                    for lv, name, rule in rows)
    return (f'<div class="legend"><h3>图例</h3><ul>{items}</ul>'
            '<p class="muted">颜色回落需低于阈值的'
            f'{(1 - t.hysteresis) * 100:.0f}%，避免反复跳动。</p></div>')


def _leaflet(c: Container, tiles: list[Tile]) -> tuple[str, str]:
    """The geographic view's head tags and block, when a tile server is set and nodes have
    coordinates; ("", "") otherwise, so the page stays offline-capable."""
    url = c.settings.tile_url
    placed = [t for t in tiles if t.latitude is not None and t.longitude is not None]
    if not url or not placed:
        return "", ""
    base = c.settings.leaflet_url
    if not base:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}/leaflet"
    base = base.rstrip("/")
    points = [{"name": t.status.node.name, "code": t.status.node.code,
               "level": t.status.level.name, "lat": t.latitude, "lon": t.longitude,
               "unresolved": t.status.unresolved, "overdue": t.status.overdue}
              for t in placed]
    head = (f'<link rel="stylesheet" href="{e(base)}/leaflet.css">'
            f'<script src="{e(base)}/leaflet.js" defer></script>'
            '<script src="/dashboard/static/geo.js" defer></script>')
    block = (f'<h2>地理视图</h2><div id="geo" data-tiles="{e(url)}" '
             f'data-points="{e(json.dumps(points, ensure_ascii=False))}"></div>')
    return head, block


def map_html(c: Container, viewer: Viewer, node: NodeRef, path: list[NodeRef],
             tiles: list[Tile], own: stats.NodeStatus) -> tuple[str, str]:
    cells = []
    for t in tiles:
        s = t.status
        n = s.node
        label = LEVEL_LABEL_ZH.get(n.level, "")
        href = (f"/dashboard?{_qs(node=n.code)}" if t.has_children
                else f"/dashboard/cases?{_qs(node=n.code)}")
        cells.append(
            f'<a class="tile {s.level.name}" href="{href}" data-code="{e(n.code)}" '
            f'data-level="{s.level.name}" title="{e(n.name)}：{LEVEL_ZH[s.level.name]}">'
            f'<span class="lvl">{LEVEL_ZH[s.level.name]}</span>'
            f'<span class="name">{e(n.name)}</span><span class="kind">{label}</span>'
            f'<span class="nums"><b>{s.unresolved}</b> 未办结 · <b>{s.overdue}</b> 超时</span></a>')
    grid = "".join(cells) or '<p class="empty">这一级下面没有网格了。</p>'
    head, geo = _leaflet(c, tiles)
    counts = {lv: sum(1 for t in tiles if t.status.level.name == lv)
              for lv in ("red", "orange", "yellow", "green")}
    summary = " ".join(f'<span class="chip {lv}">{LEVEL_ZH[lv]} {n}</span>'
                       for lv, n in counts.items())
    body = f"""
{_crumb_html(path, "/dashboard")}
<section class="head">
  <div class="title {own.level.name}"><h1>{e(node.name)}</h1>
    <p>{LEVEL_LABEL_ZH.get(node.level, "")} · 当前 <b>{LEVEL_ZH[own.level.name]}</b> ·
    未办结 <b>{own.unresolved}</b> 件，超时 <b>{own.overdue}</b> 件</p>
    <p class="links"><a href="/dashboard/cases?{_qs(node=node.code)}">查看工单</a>
    <a href="/dashboard/cases?{_qs(node=node.code, overdue=1)}">只看超时</a>
    <a href="/dashboard/figures?{_qs(node=node.code)}">统计</a></p></div>
  <div class="summary">{summary}</div>
</section>
<div class="layout"><div class="grid" id="tiles">{grid}</div>{legend(c)}</div>
{geo}"""
    return head, body


def _fmt(dt: datetime | None, tz: ZoneInfo) -> str:
    return as_utc(dt).astimezone(tz).strftime("%Y-%m-%d %H:%M") if dt else "—"


# ---------------------------------------------------------------- routes


def router(c: Container) -> APIRouter:
    """The dashboard pages, sign-in, media and the JSON API (webhooks/api.py)."""
    from webhooks import api  # it imports this module's Viewer

    r = APIRouter()
    tz = c.tz

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
点开收到的一次性链接直接登录。</p></div>"""
        resp = page(c, None, "登录", body)
        resp.status_code = status
        return resp

    @r.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page() -> HTMLResponse:
        return login_form()

    @r.post("/login", include_in_schema=False)
    def login_password(phone: str = Form(...), password: str = Form(...)) -> Response:
        try:
            with write_session(c.engine) as s:
                pid = accounts.check_password(s, phone=phone, password=password)
        except DomainError as exc:
            return login_form(str(exc), 403)
        return signed_in(pid, "password")

    @r.get("/login/{token}", include_in_schema=False)
    def login_link(token: str) -> Response:
        try:
            with write_session(c.engine) as s:
                pid = accounts.redeem_login_token(s, token=token, now=c.clock.now())
        except DomainError as exc:
            return login_form(str(exc), 403)
        return signed_in(pid, "link")

    @r.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")) -> Response:
        v = need_viewer(request)
        check_csrf(v, csrf)
        with write_session(c.engine) as s:
            accounts.end_session(s, token=v.token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @r.get("/dashboard/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        kinds = {"dashboard.css": "text/css", "geo.js": "text/javascript"}
        if name not in kinds:
            raise HTTPException(404)
        return Response(_asset(name), media_type=kinds[name],
                        headers={"Cache-Control": "max-age=300"})

    @r.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(v: SignedIn, node: str | None = None) -> HTMLResponse:
        with domain_errors(), write_session(c.engine) as s:
            at = v.node(s, node)
            tiles = map_tiles(s, c, at)
            own = stats.node_status(s, node=at, now=c.clock.now(), thresholds=thresholds(c))
            path = crumbs(s, v, at)
        head, body = map_html(c, v, at, path, tiles, own)
        return page(c, v, f"预警地图 · {at.name}", body, active="map", head=head)

    @r.get("/dashboard/cases", response_class=HTMLResponse, include_in_schema=False)
    def cases_page(request: Request, v: SignedIn, node: str | None = None,
                   state: str | None = None, category: int | None = None,
                   overdue: bool = False, start: str | None = None, end: str | None = None,
                   before: int | None = None) -> HTMLResponse:
        if state and state not in State.__members__:
            raise HTTPException(422, f"没有这个状态：{state}")
        with domain_errors(), session_scope(c.engine) as s:
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
            f'<tr class="{"late" if row.overdue else ""}"><td><a href="/dashboard/cases/{row.id}">'
            f'#{row.id}</a></td><td><span class="st {row.state}">'
            f'{STATE_LABEL_ZH[State(row.state)]}</span>'
            f'{" <b class=warn>超时</b>" if row.overdue else ""}'
            f'</td><td class="txt">{e(row.text[:60])}</td><td>{e(row.category or "—")}</td>'
            f'<td>{e(role_zh(row.holder_role))}{e(row.holder_name or "")}</td>'
            f'<td>{_fmt(row.opened_at, tz)}</td><td>{_fmt(row.deadline_at, tz)}</td></tr>'
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
<table class="cases"><thead><tr><th>编号</th><th>状态</th><th>内容</th><th>类别</th><th>承办人</th>
<th>提交时间</th><th>期限</th></tr></thead><tbody>{trs}</tbody></table>
<div class="pager">{first}{more}</div>"""
        del request
        return page(c, v, "工单", body, active="cases")

    @r.get("/dashboard/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
    def case_page(case_id: int, v: SignedIn, msg: str | None = None,
                  ok: str | None = None) -> HTMLResponse:
        with domain_errors(), session_scope(c.engine) as s:
            case_in_scope(s, v, case_id)
            cv = services.view(s, case_id=case_id, now=c.clock.now())
            events = services.history(s, case_id=case_id)
            atts = services.attachments_of(s, case_id=case_id)
            held = reports.holdings(s, case_id=case_id)
            names = reports.person_names(s, {ev.actor_id for ev in events if ev.actor_id})
            may = services.can_act(s, case_id=case_id, person_id=v.who.person.id)
        flash = ""
        if msg:
            flash = f'<p class="error">{e(msg)}</p>'
        elif ok:
            flash = f'<p class="ok">{e(ok)}</p>'
        media = []
        for a in atts:
            cap = f"<figcaption>{e(a.caption)}</figcaption>" if a.caption else ""
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
                media.append(f'<figure class="pending">{e(a.kind)}（{e(a.fetch_status or "")}）'
                             f'</figure>')
        timeline = "".join(
            f'<li class="ev {e(ev.kind)}"><time>{_fmt(ev.at, tz)}</time> '
            f'<b>{e(names.get(ev.actor_id, "系统") if ev.actor_id else "系统")}</b> '
            f'{e(role_zh(ev.role)) if ev.kind in ("escalated", "nagged") else ""}'
            f'{e(EVENT_VERB_ZH.get(ev.kind, ev.kind))}'
            f'{("：" + e(ev.note)) if ev.note else ""}</li>'
            for ev in events)
        holders = "".join(
            f'<li><b>{e(role_zh(h.role))}{e(h.name or "—")}</b>：{_fmt(h.since, tz)} — '
            f'{_fmt(h.until, tz) if h.until else "至今"}</li>' for h in held)
        forms = ""
        if may and cv.state in (State.open, State.accepted):
            for act, label in ACTIONS_ZH.items():
                if act == "accept" and cv.state is not State.open:
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
<dt>满意度</dt><dd>{cv.rating or "—"}</dd><dt>版本</dt><dd>{cv.version}</dd></dl></section>
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
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except DomainError as exc:
            return RedirectResponse(f"{back}?{_qs(msg=str(exc))}", status_code=303)
        return RedirectResponse(f"{back}?{_qs(ok=ACTIONS_ZH.get(action, action) + '：已完成')}",
                                status_code=303)

    @r.get("/dashboard/figures", response_class=HTMLResponse, include_in_schema=False)
    def figures_page(v: SignedIn, node: str | None = None,
                     start: str | None = None, end: str | None = None) -> HTMLResponse:
        start_dt, end_dt = period(c, start, end)
        with domain_errors(), session_scope(c.engine) as s:
            at = v.node(s, node)
            f = stats.figures(s, node=at, start=start_dt, end=end_dt, leaders=10)
            weeks = reports.weekly(s, node=at, end=end_dt)
            level = Level.village if at.level in (Level.town, Level.village) else Level.town
            ranked, too_few = reports.ranking(s, scope=at, level=level, start=start_dt,
                                              end=end_dt, min_cases=c.settings.dashboard_min_cases)
            path = crumbs(s, v, at)
        q = _qs(node=at.code, start=start_dt.astimezone(tz).date().isoformat(),
                end=end_dt.astimezone(tz).date().isoformat())
        tiers = "".join(
            f"<tr><td>{e(role_zh(role))}</td><td>{pct(tr.rate)}</td><td>{tr.on_time}/{tr.total}"
            f"</td><td>{f.escalations.get(role, 0)}</td></tr>"
            for role in tier_roles(f)
            for tr in [f.on_time_first_reply.get(role, stats.TierRate(0, 0))]
        ) or '<tr><td colspan="4">—</td></tr>'
        peak = max([w.received for w in weeks] + [1])
        bars = "".join(
            f'<div class="bar" title="{w.start.astimezone(tz):%m-%d} '
            f'收到{w.received} 办结{w.closed}">'
            f'<i style="height:{w.received / peak * 100:.0f}%"></i>'
            f'<i class="closed" style="height:{w.closed / peak * 100:.0f}%"></i>'
            f'<span>{w.start.astimezone(tz):%m-%d}</span></div>' for w in weeks)
        rank_rows = "".join(
            f"<tr><td>{i}</td><td><a href=\"/dashboard/figures?{_qs(node=x.node.code)}\">"
            f"{e(x.node.name)}</a></td><td>{x.received}</td><td>{pct(x.resolution_rate)}</td>"
            f"<td>{pct(x.on_time_rate)}</td>"
            f"<td>{(x.mean_rating and round(x.mean_rating, 2)) or '—'}"
            f"</td><td><b>{x.score}</b></td></tr>" for i, x in enumerate(ranked, 1)
        ) or '<tr><td colspan="7" class="empty">没有达到样本量的单位</td></tr>'
        few = ("、".join(e(x.node.name) for x in too_few[:30])
               + ("等" if len(too_few) > 30 else ""))
        leaders = "".join(f"<tr><td>{e(x.name)}</td><td>{x.rated}</td><td>{x.mean:.2f}</td></tr>"
                          for x in f.rating_by_neighbor_leader[:20])
        body = f"""{_crumb_html(path, "/dashboard/figures")}<h1>统计考核 · {e(at.name)}</h1>
<form class="filters" method="get"><input type="hidden" name="node" value="{e(at.code)}">
<label>从<input type="date" name="start" value="{start_dt.astimezone(tz).date()}"></label>
<label>到(不含)<input type="date" name="end" value="{end_dt.astimezone(tz).date()}"></label>
<button>查看</button> <a class="btn" href="/dashboard/export/figures.xlsx?{q}">导出 Excel</a></form>
<div class="kpis"><div><b>{f.received}</b>收到</div><div><b>{f.closed}</b>办结</div>
<div><b>{pct(f.resolution_rate)}</b>办结率</div>
<div><b>{span(f.median_first_reply_s)}</b>答复用时(中位)</div>
<div><b>{span(f.median_close_s)}</b>办结用时(中位)</div>
<div><b>{f"{f.mean_rating:.2f}" if f.mean_rating is not None else "—"}</b>平均满意度</div></div>
<div class="cols"><section class="card"><h2>各层级按时首次答复</h2><table><thead><tr><th>层级</th>
<th>按时率</th><th>按时/应答</th><th>上报</th></tr></thead><tbody>{tiers}</tbody></table></section>
<section class="card"><h2>每周趋势 <small>蓝：收到 绿：其中已办结</small>
<a class="btn small" href="/dashboard/export/weekly.xlsx?{q}">导出</a></h2>
<div class="bars">{bars}</div></section></div>
<section class="card"><h2>{LEVEL_LABEL_ZH[level]}考核排名 <small>得分=办结率50+按时答复30+满意度20；
少于{c.settings.dashboard_min_cases}件不参与排名</small>
<a class="btn small" href="/dashboard/export/ranking.xlsx?{q}">导出</a></h2>
<table><thead><tr><th>名次</th><th>单位</th><th>收到</th><th>办结率</th><th>按时答复</th>
<th>满意度</th><th>得分</th></tr></thead><tbody>{rank_rows}</tbody></table>
{f'<p class="muted">样本不足未排名：{few}</p>' if few else ""}</section>
<section class="card"><h2>邻长满意度</h2><table><thead><tr><th>邻长</th><th>评价数</th>
<th>平均</th></tr></thead><tbody>{leaders or '<tr><td colspan="3">—</td></tr>'}</tbody></table>
</section>"""
        return page(c, v, "统计考核", body, active="figures")

    @r.get("/dashboard/export/{kind}.xlsx", include_in_schema=False)
    def export(kind: str, v: SignedIn, node: str | None = None,
               start: str | None = None, end: str | None = None) -> Response:
        return export_xlsx(c, v, kind, node, start, end)

    @r.get("/media/{ref:path}", include_in_schema=False)
    def media(ref: str, v: SignedIn) -> Response:
        A = ATTACHMENTS
        with session_scope(c.engine) as s:
            row = s.execute(
                sa.select(A.c.mime, reports.C.c.node_path, A.c.stored_ref)
                .join(reports.C, reports.C.c.id == A.c.case_id)
                .where(sa.or_(A.c.stored_ref == ref, A.c.thumb_ref == ref)).limit(1)
            ).first()
        if row is None or not v.sees(row.node_path):
            raise HTTPException(404, "没有这个文件")
        store = MediaStore.from_settings(c.settings)
        with domain_errors():
            data = store.open(ref)
        mime = row.mime if ref == row.stored_ref and row.mime else _mime_of(ref)
        return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=86400"})

    r.include_router(api.router(c))
    return r


def _mime_of(ref: str) -> str:
    ext = ref.rsplit(".", 1)[-1]
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
            "ogg": "audio/ogg", "oga": "audio/ogg", "mp3": "audio/mpeg", "m4a": "audio/mp4",
            "amr": "audio/amr", "mp4": "video/mp4"}.get(ext, "application/octet-stream")


def export_xlsx(c: Container, v: Viewer, kind: str, node: str | None, start: str | None,
                end: str | None) -> Response:
    """figures | weekly | ranking as an XLSX workbook."""
    if kind not in ("figures", "weekly", "ranking"):
        raise HTTPException(404, "没有这个导出")
    start_dt, end_dt = period(c, start, end)
    tz = c.tz
    with domain_errors(), session_scope(c.engine) as s:
        at = v.node(s, node)
        if kind == "ranking":
            level = Level.village if at.level in (Level.town, Level.village) else Level.town
            ranked, too_few = reports.ranking(s, scope=at, level=level, start=start_dt,
                                              end=end_dt, min_cases=c.settings.dashboard_min_cases)
            head = ["名次", "编码", "单位", "收到", "办结", "办结率", "按时首次答复率",
                    "平均满意度",
                    "得分"]
            rows: list[list[Any]] = [head] + [
                [i, x.node.code, x.node.name, x.received, x.closed, x.resolution_rate,
                 x.on_time_rate, x.mean_rating, x.score] for i, x in enumerate(ranked, 1)]
            left: list[list[Any]] = [["编码", "单位", "收到"]] + [
                [x.node.code, x.node.name, x.received] for x in too_few]
            sheets = [("考核排名", rows), ("样本不足", left)]
        else:
            f = stats.figures(s, node=at, start=start_dt, end=end_dt)
            weeks = reports.weekly(s, node=at, end=end_dt)
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
