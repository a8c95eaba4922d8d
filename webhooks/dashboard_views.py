"""Dashboard rendering: map tiles, formatting, figures sheets and the HTML page frame."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from string import Template
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import HTTPException
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from core import reports
from core.cases import actions, stats, verify, warning_map
from core.clock import as_utc
from core.container import Container
from core.db import session_scope, write_session
from core.errors import InvalidInput, NotFound
from core.hierarchy import boundaries
from core.hierarchy.queries import NodeRef, ancestors, children
from core.hierarchy.tree import LEVEL_LABEL_ZH, ROLE_LABEL_ZH
from webhooks.dashboard_auth import (
    HERE,
    LEVEL_ZH,
    MAP_LEVELS,
    N,
    Viewer,
    e,
)
from webhooks.dashboard_xlsx import hours_cell, pct_cell, xlsx  # noqa: F401 (re-exported)


def thresholds(c: Container) -> stats.Thresholds:
    return stats.Thresholds.from_settings(c.settings)


@dataclass(frozen=True)
class Tile:
    status: stats.NodeStatus
    has_children: bool
    latitude: float | None
    longitude: float | None
    inside: tuple[warning_map.Mini, ...] = ()
    shape: dict[str, Any] | None = None  # the cut-down boundary (core/hierarchy/boundaries.py)


@dataclass(frozen=True)
class MapView:
    node: NodeRef
    own: stats.NodeStatus
    tiles: list[Tile]
    path: list[NodeRef]


def map_view(c: Container, viewer: Viewer, code: str | None) -> MapView:
    """The map one level below a node, read without the write lock; colours that changed are
    stored afterwards in a short write of their own (they steer the next view's hysteresis)."""
    changed: list[tuple[int, stats.WarningLevel]] = []
    now = c.clock.now()
    with session_scope(c.engine) as s:
        at = viewer.node(s, code)
        kids = [k for k in children(s, at) if k.level in MAP_LEVELS]
        below = warning_map.map_below(s, node=at, children=kids, now=now,
                                      thresholds=thresholds(c), levels=MAP_LEVELS,
                                      changed=changed)
        ids = [k.id for k in kids]
        coords = {r.id: (r.latitude, r.longitude) for r in s.execute(
            sa.select(N.c.id, N.c.latitude, N.c.longitude).where(N.c.id.in_(ids)))}
        # The children on screen only: a district view never carries the city's streets.
        shapes = boundaries.shapes(s.connection(), ids)
        parents = set(s.execute(
            sa.select(N.c.parent_id).where(N.c.parent_id.in_(ids)).distinct()).scalars())
        path = crumbs(s, viewer, at)
    if changed:
        with write_session(c.engine) as s:
            stats.remember_levels(s, changed=changed, now=now)
    tiles = [Tile(st, st.node.id in parents, *coords.get(st.node.id, (None, None)),
                  tuple(below.inside.get(st.node.id, ())), shapes.get(st.node.id))
             for st in below.children]
    return MapView(at, below.own, tiles, path)


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
    elif action == "verify_ok":
        verify.approve(session, **kw)
    elif action == "send_back":
        verify.send_back(session, reason=text or "", **kw)
    elif action == "merge":
        if into is None:
            raise InvalidInput("merge_needs_target")
        case_in_scope(session, viewer, into)
        actions.merge(session, into_case_id=into, **kw)
    else:
        raise NotFound("action_unknown", action=action)


def case_in_scope(session: Session, viewer: Viewer, case_id: int) -> str:
    """The case's home path; NotFound for a case outside the viewer's subtrees."""
    path = session.execute(sa.select(reports.C.c.node_path)
                           .where(reports.C.c.id == case_id)).scalar_one_or_none()
    if path is None or not viewer.sees(path):
        raise NotFound("case_not_found", case=case_id)
    return str(path)


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
        ["办结率", pct_cell(f.resolution_rate)], ["驳回", f.rejected], ["合并", f.merged],
        ["首次答复用时中位数(小时)", hours_cell(f.median_first_reply_s)],
        ["办结用时中位数(小时)", hours_cell(f.median_close_s)],
        ["平均满意度", None if f.mean_rating is None else round(f.mean_rating, 2)],
    ]
    tiers: list[list[Any]] = [["层级", "应答复", "按时", "超时答复", "未答复(超时转上级)",
                               "按时率", "上报次数"]]
    for role in tier_roles(f):
        tr = f.on_time_first_reply.get(role, stats.TierRate(0, 0))
        tiers.append([role_zh(role), tr.total, tr.on_time, tr.late, tr.missed,
                      pct_cell(tr.rate), f.escalations.get(role, 0)])
    leaders: list[list[Any]] = [["邻长(办结人)", "评价数", "平均满意度"]]
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
                 ("hotline", "/dashboard/hotline", "热线受理"),
                 ("figures", "/dashboard/figures", "统计"),
                 ("kaohe", "/dashboard/kaohe", "考核"),
                 ("notices", "/dashboard/notices", "通知"),
                 ("campaigns", "/dashboard/campaigns", "摸排"),
                 ("policies", "/dashboard/policies", "类别规则")]
        # A phone folds the links behind a menu button: a checkbox and its label, CSS only.
        nav = ('<input type="checkbox" id="nav-toggle" class="nav-toggle" aria-label="菜单">'
               '<label for="nav-toggle" class="nav-button">菜单</label><div class="nav-links">')
        nav += "".join(f'<a href="{u}" class="{"on" if k == active else ""}">{t}</a>'
                       for k, u, t in links)
        scope = "、".join(s.name for s in viewer.scopes)
        nav += (f'<span class="me">{e(viewer.who.person.name)} · {e(scope)}'
                f'<form method="post" action="/logout"><input type="hidden" name="csrf" '
                f'value="{viewer.csrf}"><button>退出</button></form></span></div>')
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
    """The geographic view's head tags and block: the children's boundaries as shapes on a
    blank background (no tile server needed), map tiles underneath only when TILE_URL is set,
    and a dot for a child with a point but no shape when tiles give it a place. ("", "") when
    there is nothing to draw."""
    url = c.settings.tile_url or ""
    shaped = [t for t in tiles if t.shape is not None]
    placed = [t for t in tiles if t.shape is None and t.latitude is not None
              and t.longitude is not None] if url else []
    if not shaped and not placed:
        return "", ""
    base = (c.settings.leaflet_url or "/dashboard/static/leaflet").rstrip("/")

    def about(t: Tile) -> dict[str, Any]:
        n = t.status.node
        return {"name": n.name, "code": n.code, "level": t.status.level.name,
                "unresolved": t.status.unresolved, "overdue": t.status.overdue,
                "href": (f"/dashboard?{_qs(node=n.code)}" if t.has_children
                         else f"/dashboard/cases?{_qs(node=n.code)}")}

    points = [{**about(t), "lat": t.latitude, "lon": t.longitude} for t in placed]
    shapes = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": about(t), "geometry": t.shape} for t in shaped]}
    head = (f'<link rel="stylesheet" href="{e(base)}/leaflet.css">'
            f'<script src="{e(base)}/leaflet.js" defer></script>'
            '<script src="/dashboard/static/geo.js" defer></script>')
    block = (f'<h2>地理视图</h2><div id="geo" class="{"tiled" if url else "blank"}" '
             f'data-tiles="{e(url)}" '
             f'data-points="{e(json.dumps(points, ensure_ascii=False))}" '
             f'data-shapes="{e(json.dumps(shapes, ensure_ascii=False))}"></div>')
    return head, block


def _inside_html(inside: tuple[warning_map.Mini, ...], most: int = 48) -> str:
    """The tile's own children as small coloured cells, in the order of their codes, so that
    a place is always found in the same spot."""
    if not inside:
        return ""
    cells = "".join(
        f'<i class="mini {m.level.name}" data-code="{e(m.node.code)}" '
        f'title="{e(m.node.name)}：{LEVEL_ZH[m.level.name]}，未办结{m.unresolved}，'
        f'超时{m.overdue}"></i>' for m in inside[:most])
    more = f'<em>+{len(inside) - most}</em>' if len(inside) > most else ""
    return f'<span class="inside">{cells}{more}</span>'


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
            f'<span class="nums"><b>{s.unresolved}</b> 未办结 · <b>{s.overdue}</b> 超时</span>'
            f'{_inside_html(t.inside)}</a>')
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
{geo}
<div class="layout"><div class="grid" id="tiles">{grid}</div>{legend(c)}</div>"""
    return head, body


def _fmt(dt: datetime | None, tz: ZoneInfo) -> str:
    return as_utc(dt).astimezone(tz).strftime("%Y-%m-%d %H:%M") if dt else "—"


# ---------------------------------------------------------------- routes


