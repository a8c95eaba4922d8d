"""Campaigns on the web: the JSON API (start, list, progress, close) and the progress board
(drill-down town → village → 片 → 组 → 邻 → the 邻长's list, coloured like the warning map,
refreshing itself through /dashboard/static/campaign.js, XLSX of any level).

The board reads the per-node counters (core/campaigns/counters.py): a node and its children,
whatever the number of households beneath them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from bot.flows.campaign import shown_title
from bot.flows.texts import t
from core.campaigns import progress
from core.campaigns.model import CAMPAIGNS, Campaign
from core.campaigns.progress import Board, Row
from core.campaigns.services import close_campaign, load, start_campaign
from core.cases.policy import CasePolicy
from core.clock import as_utc
from core.container import Container
from core.db import write_session
from core.errors import InvalidInput, PermissionDenied
from core.hierarchy.queries import NodeRef, ancestors, node_by_code, node_by_id
from webhooks.api import ApiViewer, ApiWriter, DbId
from webhooks.api_models import NodeOut
from webhooks.dashboard_auth import SignedIn, Viewer, check_csrf, e
from webhooks.dashboard_views import _qs, page
from webhooks.dashboard_xlsx import Pct, xlsx

COLOUR_ZH = {"green": "按进度", "yellow": "稍慢", "orange": "落后", "red": "严重落后"}


class CampaignIn(BaseModel):
    node_code: str = Field(max_length=40)
    title: str = Field(max_length=400)
    instructions: str = Field(default="", max_length=4000)
    outcomes: list[Annotated[str, Field(max_length=40)]] | None = Field(default=None,
                                                                         max_length=20)
    deadline: datetime


class CampaignIdOut(BaseModel):
    id: int


class CampaignOut(BaseModel):
    id: int
    title: str
    node: NodeOut
    state: str
    deadline: datetime
    outcomes: list[str]
    notice_id: int | None = Field(None, description="set when it is a notice's relay")


class RowOut(BaseModel):
    node: NodeOut
    total: int
    done: int
    not_yet: int
    by_outcome: dict[str, int]
    pct: float | None
    colour: str


class ItemOut(BaseModel):
    id: int
    address: str
    outcome: str | None
    note: str | None


class ProgressOut(BaseModel):
    campaign: CampaignOut
    as_of: str  # 截至 HH:MM, the deployment's local time
    deadline_local: str  # the deadline as YYYY-MM-DD HH:MM local time
    node: RowOut
    children: list[RowOut]
    items: list[ItemOut]
    breadcrumbs: list[NodeOut]


def _campaign_out(s: Session, c: Campaign) -> CampaignOut:
    assert c.id is not None
    return CampaignOut(id=c.id, title=c.title, node=NodeOut.of(node_by_id(s, c.node_id)),
                       state=c.state, deadline=as_utc(c.deadline_at), outcomes=c.outcomes,
                       notice_id=c.notice_id)


def _title(x: CampaignOut) -> str:
    return t("zh", "cmp_relay_title", title=x.title) if x.notice_id is not None else x.title


def _relay_line(x: CampaignOut) -> str:
    if x.notice_id is None:
        return ""
    return (f'<p class="relay">{e(t("zh", "cmp_relay_board"))}：'
            f'<a href="/dashboard/notices/{x.notice_id}">通知 #{x.notice_id}</a></p>')


def _row_out(b: Board, r: Row) -> RowOut:
    return RowOut(node=NodeOut.of(r.node), total=r.total, done=r.done, not_yet=r.not_yet,
                  by_outcome=dict(zip(b.campaign.outcomes, r.by_outcome, strict=True)),
                  pct=r.pct, colour=b.colour_of[r.node.id])


def board_for(c: Container, s: Session, v: Viewer, campaign_id: int,
              code: str | None) -> tuple[Board, list[NodeRef]]:
    """The board at a node both the viewer sees and the campaign covers."""
    camp = load(s, campaign_id)
    root = node_by_id(s, camp.node_id)
    if code:
        node = v.node(s, code)
    elif v.sees(root):
        node = root
    else:
        node = next((x for x in v.scopes if root.contains(x)), None) or v.node(s, root.code)
    if not (v.sees(node) and root.contains(node)):
        raise PermissionDenied("person_outside", name=node.name)
    b = progress.board(s, campaign=camp, node=node, now=c.clock.now())
    path = [n for n in ancestors(s, node, include_self=True)
            if root.contains(n) and v.sees(n)]
    return b, path


def _progress(c: Container, b: Board, path: list[NodeRef], s: Session) -> ProgressOut:
    return ProgressOut(
        campaign=_campaign_out(s, b.campaign),
        as_of=c.clock.now().astimezone(c.tz).strftime("%H:%M"),
        deadline_local=_local(c, b.campaign.deadline_at),
        node=_row_out(b, b.own), children=[_row_out(b, r) for r in b.children],
        items=[ItemOut(id=i.id, address=i.address, note=i.note,
                       outcome=b.campaign.outcomes[i.outcome] if i.outcome is not None
                       else None) for i in b.items],
        breadcrumbs=[NodeOut.of(n) for n in path])


def _deadline(c: Container, value: datetime) -> datetime:
    return value.replace(tzinfo=c.tz) if value.tzinfo is None else value


def _visible(s: Session, v: Viewer) -> list[Campaign]:
    """Campaigns on, above or below the viewer's nodes, newest first."""
    rows = list(s.execute(sa.select(Campaign).order_by(CAMPAIGNS.c.id.desc()).limit(500))
                .scalars())
    nodes = {n.id: n for n in (node_by_id(s, x.node_id) for x in rows)}
    return [x for x in rows if v.sees(nodes[x.node_id])
            or any(nodes[x.node_id].contains(sc) for sc in v.scopes)]


def router(c: Container) -> APIRouter:
    """The campaign API under /api and the board pages under /dashboard."""
    r = APIRouter()

    @r.post("/api/campaigns", response_model=CampaignIdOut, tags=["campaigns"])
    def api_start(body: CampaignIn, v: ApiWriter) -> CampaignIdOut:
        """Start a campaign on a node (an admin on their subtree, a 书记 on their village)."""
        with write_session(c.engine) as s:
            node = node_by_code(s, body.node_code)
            camp = start_campaign(s, node_id=node.id, title=body.title,
                                  instructions=body.instructions, outcomes=body.outcomes,
                                  deadline=_deadline(c, body.deadline),
                                  started_by=v.who.person.id, clock=c.clock,
                                  policy=CasePolicy.from_settings(c.settings))
            assert camp.id is not None
            return CampaignIdOut(id=camp.id)

    @r.get("/api/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
    def api_list(v: ApiViewer) -> list[CampaignOut]:
        with Session(c.engine) as s:
            return [_campaign_out(s, x) for x in _visible(s, v)]

    @r.get("/api/campaigns/{campaign_id}/progress", response_model=ProgressOut,
           tags=["campaigns"])
    def api_progress(campaign_id: DbId, v: ApiViewer,
                     node: Annotated[str | None, Query(max_length=40)] = None) -> ProgressOut:
        """Households total / done / by outcome / not yet and % done, for the node and each
        child (and a 邻's households), as of now."""
        with Session(c.engine) as s:
            b, path = board_for(c, s, v, campaign_id, node)
            return _progress(c, b, path, s)

    @r.post("/api/campaigns/{campaign_id}/close", response_model=CampaignIdOut,
            tags=["campaigns"])
    def api_close(campaign_id: DbId, v: ApiWriter) -> CampaignIdOut:
        with write_session(c.engine) as s:
            close_campaign(s, campaign_id=campaign_id, person_id=v.who.person.id, clock=c.clock)
        return CampaignIdOut(id=campaign_id)

    @r.get("/dashboard/campaigns", response_class=HTMLResponse, include_in_schema=False)
    def list_page(v: SignedIn, msg: str | None = None) -> HTMLResponse:
        with Session(c.engine) as s:
            found = _visible(s, v)
            names = {x.node_id: node_by_id(s, x.node_id).name for x in found}
        rows = "".join(
            f'<tr><td><a href="/dashboard/campaigns/{x.id}">{e(shown_title("zh", x))}</a></td>'
            f'<td>{e(names[x.node_id])}</td><td>{_local(c, x.deadline_at)}</td>'
            f'<td>{"进行中" if x.state == "open" else "已结束"}</td></tr>' for x in found)
        note = f'<p class="banner">{e(msg)}</p>' if msg else ""
        body = (f'<h1>摸排 / 敲门行动</h1>{note}<table class="list"><tr><th>标题</th><th>范围</th>'
                f'<th>截止</th><th>状态</th></tr>{rows or "<tr><td colspan=4>暂无</td></tr>"}'
                f'</table>{_start_form(v)}')
        return page(c, v, "摸排", body, active="campaigns")

    @r.post("/dashboard/campaigns", include_in_schema=False)
    def start_page(v: SignedIn, csrf: Annotated[str, Form()],
                   node_code: Annotated[str, Form(max_length=40)],
                   title: Annotated[str, Form(max_length=400)],
                   deadline: Annotated[str, Form(max_length=40)],
                   instructions: Annotated[str, Form(max_length=4000)] = "") -> Response:
        check_csrf(v, csrf)
        try:
            when = _deadline(c, datetime.fromisoformat(deadline))
        except ValueError:
            raise InvalidInput("campaign_deadline_naive") from None
        with write_session(c.engine) as s:
            camp = start_campaign(s, node_id=node_by_code(s, node_code).id, title=title,
                                  instructions=instructions, outcomes=None, deadline=when,
                                  started_by=v.who.person.id, clock=c.clock,
                                  policy=CasePolicy.from_settings(c.settings))
        return RedirectResponse(f"/dashboard/campaigns/{camp.id}", status_code=303)

    @r.get("/dashboard/campaigns/{campaign_id}", response_class=HTMLResponse,
           include_in_schema=False)
    def board_page(campaign_id: DbId, v: SignedIn,
                   node: Annotated[str | None, Query(max_length=40)] = None) -> HTMLResponse:
        with Session(c.engine) as s:
            b, path = board_for(c, s, v, campaign_id, node)
            data = _progress(c, b, path, s)
        every = max(1000, int(c.settings.campaign_board_refresh.total_seconds() * 1000))
        return page(c, v, f"摸排进度 · {shown_title('zh', b.campaign)}", _board_html(data, every),
                    active="campaigns",
                    head='<script src="/dashboard/static/campaign.js" defer></script>')

    @r.get("/dashboard/campaigns/{campaign_id}/export.xlsx", include_in_schema=False)
    def export(campaign_id: DbId, v: SignedIn,
               node: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        with Session(c.engine) as s:
            b, path = board_for(c, s, v, campaign_id, node)
            data = _progress(c, b, path, s)
        head = ["编码", "名称", "总户数", "已登记", *data.campaign.outcomes, "未登记", "完成率"]
        rows: list[list[Any]] = [head]
        for x in [data.node, *data.children]:
            rows.append([x.node.code, x.node.name, x.total, x.done,
                         *x.by_outcome.values(), x.not_yet,
                         Pct(x.pct / 100) if x.pct is not None else None])
        sheets = [("进度", rows)]
        if data.items:
            sheets.append(("住户", [["住址", "结果", "备注"], *[[i.address, i.outcome or "未登记",
                                                           i.note or ""] for i in data.items]]))
        resp = xlsx(sheets)
        resp.headers["Content-Disposition"] = \
            f'attachment; filename="campaign-{campaign_id}-{data.node.node.code}.xlsx"'
        return resp

    return r


def _local(c: Container, when: datetime) -> str:
    return as_utc(when).astimezone(c.tz).strftime("%Y-%m-%d %H:%M")


def _start_form(v: Viewer) -> str:
    return (
        '<h2>发起摸排</h2><form class="filters" method="post" action="/dashboard/campaigns">'
        f'<input type="hidden" name="csrf" value="{v.csrf}">'
        f'<label>范围编码 <input name="node_code" value="{e(v.home.code)}" required></label>'
        '<label>标题 <input name="title" required></label>'
        '<label>说明 <input name="instructions"></label>'
        '<label>截止 <input type="datetime-local" name="deadline" required></label>'
        '<button>发起</button></form>')


def _cells(p: ProgressOut, x: RowOut, link: bool) -> str:
    k = x.node.id
    name = (f'<a href="/dashboard/campaigns/{p.campaign.id}?{_qs(node=x.node.code)}">'
            f'{e(x.node.name)}</a>' if link else e(x.node.name))
    outs = "".join(f'<td data-k="{k}:o{i}">{n}</td>' for i, n in enumerate(x.by_outcome.values()))
    pct = "—" if x.pct is None else f"{x.pct:.1f}%"
    return (f'<tr data-node="{k}"><td><i class="sw {x.colour}" data-k="{k}:colour"></i> '
            f'{name}</td><td data-k="{k}:total">{x.total}</td><td data-k="{k}:done">{x.done}'
            f'</td>{outs}<td data-k="{k}:not_yet">{x.not_yet}</td>'
            f'<td data-k="{k}:pct">{pct}</td></tr>')


def _board_html(p: ProgressOut, every_ms: int = 15000) -> str:
    crumbs = " <span>›</span> ".join(
        f'<a href="/dashboard/campaigns/{p.campaign.id}?{_qs(node=n.code)}">{e(n.name)}</a>'
        for n in p.breadcrumbs)
    head = "".join(f"<th>{e(o)}</th>" for o in p.campaign.outcomes)
    table = (f'<table class="list board"><tr><th>范围</th><th>总户数</th><th>已登记</th>{head}'
             f'<th>未登记</th><th>完成率</th></tr>{_cells(p, p.node, False)}'
             + "".join(_cells(p, x, True) for x in p.children) + "</table>")
    items = ""
    if p.items:
        items = ('<h2>住户清单</h2><table class="list items"><tr><th>住址</th><th>结果</th>'
                 '<th>备注</th></tr>' + "".join(
                     f'<tr><td>{e(i.address)}</td><td data-item="{i.id}">'
                     f'{e(i.outcome or "未登记")}</td><td>{e(i.note or "")}</td></tr>'
                     for i in p.items) + "</table>")
    legend = "".join(f'<li><i class="sw {k}"></i>{v}</li>' for k, v in COLOUR_ZH.items())
    state = "进行中" if p.campaign.state == "open" else "已结束"
    api = f"/api/campaigns/{p.campaign.id}/progress?{_qs(node=p.node.node.code)}"
    xlsx_url = f"/dashboard/campaigns/{p.campaign.id}/export.xlsx?{_qs(node=p.node.node.code)}"
    return (f'<div id="campaign-board" data-api="{e(api)}" data-every="{every_ms}">'
            f'<nav class="crumbs">{crumbs}</nav>'
            f'<h1>{e(_title(p.campaign))}</h1>{_relay_line(p.campaign)}'
            f'<p>{state} · 截止 {p.deadline_local} · '
            f'<b>截至 <span id="as-of">{p.as_of}</span></b> · '
            f'<a href="{e(xlsx_url)}">导出 XLSX</a></p>'
            f'<ul class="board-legend">{legend}</ul>{table}{items}</div>')


