"""Notices on the web: `POST /api/notices`, `GET /api/notices/{id}` (totals and per-child-node
counts), and the dashboard page that sends one and shows its receipts.

Same sign-in, scope and CSRF rules as the other dashboard routes (webhooks/dashboard_auth.py);
what may be sent where is core's rule (core/hierarchy/scope.py, `notice_refusal`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from bot.flows.refusals import sentence
from bot.flows.texts import t
from core.cases.policy import CasePolicy
from core.clock import as_utc
from core.container import Container
from core.db import session_scope, write_session
from core.errors import DomainError, InvalidInput
from core.hierarchy.model import Node
from core.hierarchy.queries import node_by_code
from core.hierarchy.scope import notice_nodes
from core.hierarchy.tree import subtree_bounds
from core.media.store import MediaStore
from core.notices import services
from core.notices.audience import AUDIENCE_ROLES
from core.notices.model import NOTICE
from webhooks.api import ApiViewer, ApiWriter, DbId
from webhooks.api_models import NodeOut
from webhooks.dashboard_auth import SignedIn, check_csrf, e
from webhooks.dashboard_views import page
from webhooks.dashboard_xlsx import xlsx


class NoticeIn(BaseModel):
    node_code: str = Field(max_length=40)
    audience: list[str] = Field(max_length=5, description=(
        "roles: area_leader, group_leader, neighbor_leader, department, resident"))
    text: str = Field(max_length=4000)
    confirm: bool = False
    deadline: datetime | None = Field(None, description="ISO 8601 with a time zone")
    photo: str | None = Field(None, max_length=200, description="a stored media ref")
    document: str | None = Field(None, max_length=200, description="a stored media ref")


class NoticeSentOut(BaseModel):
    id: int
    recipients: int
    by_role: dict[str, int]
    relay_households: int


class CountsOut(BaseModel):
    recipients: int
    delivered: int
    confirmed: int
    unreachable: int
    relay_households: int


class ChildCountsOut(CountsOut):
    node: NodeOut


class RelayOut(BaseModel):
    """The notice's relay: households of residents without a chat, told by their 邻长."""

    campaign_id: int
    households: int
    done: int
    by_outcome: dict[str, int]
    not_yet: int
    state: str


class NoticeOut(BaseModel):
    id: int
    node: NodeOut
    text: str
    audience: list[str]
    confirm: bool
    deadline: datetime | None
    state: str
    created_at: datetime
    totals: CountsOut
    children: list[ChildCountsOut]
    relay: RelayOut | None = None


REFRESH_S = 30
ROSTER_STATE = {"confirmed": "已确认", "waiting": "未确认", "unreachable": "联系不上",
                "undelivered": "发送中"}
VIA = {"telegram": "Telegram", "wechat": "微信", "wecom": "政务微信", "web": "网页",
       "dashboard": "后台"}


def _attachments(c: Container, photo: UploadFile | None,
                 document: UploadFile | None) -> tuple[str | None, str | None]:
    """Keep the form's optional photo and document in the media store; their refs."""
    from core.media import check_media, process_image

    st = c.settings
    store = MediaStore.from_settings(st)
    photo_ref = doc_ref = None
    if photo is not None and photo.filename:
        data = photo.file.read(st.max_photo_bytes + 1)
        img = process_image(data, max_bytes=st.max_photo_bytes, max_pixels=st.max_image_pixels)
        photo_ref = store.put(img.image, img.suffix)
    if document is not None and document.filename:
        data = document.file.read(st.max_document_bytes + 1)
        info = check_media(data, kind="document", max_bytes=st.max_document_bytes,
                           filename=document.filename)
        doc_ref = store.put(data, info.suffix)
    return photo_ref, doc_ref


def _counts(c: services.Counts) -> dict[str, int]:
    return dict(c.__dict__)


def _relay_html(x: RelayOut | None) -> str:
    if x is None:
        return ""
    cells = "".join(f"<td>{n}</td>" for n in x.by_outcome.values())
    heads = "".join(f"<th>{e(o)}</th>" for o in x.by_outcome)
    pct = f"{x.done * 100 // x.households}%" if x.households else "—"
    return ('<section class="card"><h2>邻长转达进度</h2><table id="relay"><tr><th>户数</th>'
            f"{heads}<th>未转达</th><th>完成</th></tr><tr><td>{x.households}</td>{cells}"
            f"<td>{x.not_yet}</td><td>{pct}</td></tr></table>"
            f'<p><a href="/dashboard/campaigns/{x.campaign_id}">查看转达清单</a></p></section>')


def router(c: Container) -> APIRouter:
    """/api/notices and /dashboard/notices."""
    r = APIRouter()
    tz = ZoneInfo(c.settings.timezone)

    def send(v: SignedIn, body: NoticeIn) -> services.Sent:
        deadline = body.deadline
        if deadline is not None and deadline.tzinfo is None:
            raise InvalidInput("notice_deadline_tz")
        store = MediaStore.from_settings(c.settings)
        for ref in (body.photo, body.document):
            if ref is not None and not store.exists(ref):  # refused before anything is written
                raise InvalidInput("notice_media_unknown", ref=ref[:80])
        with write_session(c.engine) as s:
            node = node_by_code(s, body.node_code)
            return services.send(
                s, who=v.who, node=node, audience=body.audience, text=body.text,
                confirm=body.confirm, deadline=deadline, now=c.clock.now(),
                reping=c.settings.notice_reping, policy=CasePolicy.from_settings(c.settings),
                relay_window=c.settings.notice_relay_window,
                photo=body.photo, document=body.document, by_sms=c.settings.sms_on)

    def read(v: SignedIn, notice_id: int) -> NoticeOut:
        with session_scope(c.engine) as s:
            st = services.status(s, notice_id=notice_id, viewer_scopes=v.scopes)
        n = st.notice
        assert n.id is not None
        return NoticeOut(
            id=n.id, node=NodeOut.of(st.node), text=n.text, audience=list(n.audience),
            confirm=n.confirm, deadline=as_utc(n.deadline) if n.deadline else None,
            state=n.state, created_at=as_utc(n.created_at),
            totals=CountsOut(**_counts(st.totals)),
            children=[ChildCountsOut(node=NodeOut.of(k), **_counts(x)) for k, x in st.children],
            relay=RelayOut(campaign_id=st.relay.campaign_id, households=st.relay.total,
                           done=st.relay.done, by_outcome=dict(st.relay.by_outcome),
                           not_yet=max(0, st.relay.total - st.relay.done),
                           state=st.relay.state) if st.relay else None)

    @r.post("/api/notices", response_model=NoticeSentOut, tags=["notices"], responses={
        403: {"description": "the node is outside the sender's subtree"},
        422: {"description": "empty text, past deadline, or nobody in the audience"}})
    def post_notice(body: NoticeIn, v: ApiWriter) -> NoticeSentOut:
        """Send a notice to the chosen tiers of a node's subtree; refused whole or sent whole."""
        sent = send(v, body)
        return NoticeSentOut(id=sent.notice_id, recipients=sent.recipients,
                             by_role=sent.by_role, relay_households=sent.relay_households)

    @r.get("/api/notices/{notice_id}", response_model=NoticeOut, tags=["notices"])
    def get_notice(notice_id: DbId, v: ApiViewer) -> NoticeOut:
        """Totals and per-child-node counts of recipients, delivered, confirmed, unreachable;
        `relay`: the progress of the households its 邻长 pass it on to (null without one)."""
        return read(v, notice_id)

    def when(at: datetime | None) -> str:
        return as_utc(at).astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else "—"

    @r.get("/dashboard/notices", response_class=HTMLResponse, include_in_schema=False)
    def notices_page(v: SignedIn, msg: str | None = None) -> HTMLResponse:
        with session_scope(c.engine) as s:
            nodes = notice_nodes(v.who)
            q = sa.select(NOTICE.c.id, NOTICE.c.text, NOTICE.c.created_at, NOTICE.c.state,
                          NOTICE.c.recipients).order_by(NOTICE.c.id.desc()).limit(50)
            n = Node.__table__  # type: ignore[attr-defined]
            q = q.join(n, n.c.id == NOTICE.c.node_id).where(sa.or_(*[
                (n.c.path >= lo) & (n.c.path < hi)
                for sc in v.scopes for lo, hi in [subtree_bounds(sc.path)]]))
            recent = s.execute(q).all()
        options = "".join(f'<option value="{e(x.code)}">{e(x.name)}</option>' for x in nodes)
        roles = "".join(
            f'<label><input type="checkbox" name="audience" value="{x.value}"'
            f'{" checked" if x.value == "neighbor_leader" else ""}> '
            f'{e(t("zh", "notice_role_" + x.value))}</label> ' for x in AUDIENCE_ROLES)
        rows = "".join(
            f'<tr><td><a href="/dashboard/notices/{x.id}">#{x.id}</a></td>'
            f"<td>{e(x.text[:40])}</td><td>{e(when(x.created_at))}</td>"
            f"<td>{x.recipients}</td><td>{'进行中' if x.state == 'open' else '已截止'}</td></tr>"
            for x in recent)
        note = f'<p class="error" role="alert">{e(msg[:200])}</p>' if msg else ""
        form = (f'<section class="card"><h2>发通知</h2>{note}'
                f'<form method="post" action="/dashboard/notices" enctype="multipart/form-data">'
                f'<input type="hidden" name="csrf" value="{v.csrf}">'
                f'<p><label>发往 <select name="node_code">{options}</select></label></p>'
                f"<p>接收人：{roles}</p>"
                f'<p><textarea name="text" rows="4" cols="60" maxlength="2000" '
                f'placeholder="通知内容" required></textarea></p>'
                f'<p><label>照片（可选） <input type="file" name="photo" accept="image/*"></label> '
                f'<label>文件（可选） <input type="file" name="document"></label></p>'
                f'<p><label><input type="checkbox" name="confirm" value="1" checked> '
                f"需要回复“收到”</label> "
                f'<label>截止 <input type="datetime-local" name="deadline"></label></p>'
                f"<p><button>发送</button></p></form></section>") if nodes else (
                '<section class="card"><p>只有管理员、书记、片长、组长可以发通知。</p></section>')
        body = (form + '<section class="card"><h2>已发通知</h2><table><tr><th>编号</th>'
                "<th>内容</th><th>发出</th><th>人数</th><th>状态</th></tr>"
                f"{rows}</table></section>")
        return page(c, v, "通知", body, active="notices")

    @r.post("/dashboard/notices", include_in_schema=False)
    def notices_post(v: SignedIn, csrf: str = Form(""), node_code: str = Form(""),
                     audience: Annotated[list[str] | None, Form()] = None,
                     text: str = Form(""),
                     confirm: str = Form(""), deadline: str = Form(""),
                     photo: UploadFile | None = None,
                     document: UploadFile | None = None) -> Response:
        check_csrf(v, csrf)
        try:
            dl = None
            if deadline.strip():
                try:
                    dl = datetime.fromisoformat(deadline.strip()).replace(tzinfo=tz)
                except ValueError:
                    raise InvalidInput("notice_deadline_past") from None
            # The files are checked (type by their bytes, size, pixels) and kept before the
            # notice is sent; a refusal of either sends nothing.
            photo_ref, doc_ref = _attachments(c, photo, document)
            sent = send(v, NoticeIn(node_code=node_code[:40], audience=(audience or [])[:5],
                                    text=text[:4000], confirm=bool(confirm), deadline=dl,
                                    photo=photo_ref, document=doc_ref))
        except DomainError as exc:
            return RedirectResponse("/dashboard/notices?" + urlencode(
                {"msg": sentence(exc, "zh")}), status_code=303)
        return RedirectResponse(f"/dashboard/notices/{sent.notice_id}", status_code=303)

    @r.get("/dashboard/notices/{notice_id}", response_class=HTMLResponse,
           include_in_schema=False)
    def notice_page(notice_id: DbId, v: SignedIn) -> HTMLResponse:
        out = read(v, notice_id)

        def row(name: str, x: CountsOut) -> str:
            pct = f"{x.confirmed * 100 // x.recipients}%" if x.recipients else "—"
            return (f"<tr><td>{e(name)}</td><td>{x.recipients}</td><td>{x.delivered}</td>"
                    f"<td>{x.confirmed}</td><td>{pct}</td><td>{x.unreachable}</td>"
                    f"<td>{x.relay_households}</td></tr>")
        rows = "".join(row(k.node.name, k) for k in out.children if k.recipients)
        body = (f'<section class="card"><h2>通知 #{out.id} · {e(out.node.name)}</h2>'
                f'<p class="notice-text">{e(out.text)}</p>'
                f"<p>发出 {e(when(out.created_at))}"
                f"{'，截止 ' + e(when(out.deadline)) if out.deadline else ''}"
                f"，{'进行中' if out.state == 'open' else '已截止'}"
                f' <a class="btn small" href="/dashboard/notices/{out.id}/export.xlsx">'
                "导出名单</a></p></section>"
                '<section class="card"><h2>回执</h2><table id="receipts"><tr><th>范围</th>'
                "<th>接收人</th><th>已送达</th><th>已确认</th><th>确认率</th><th>联系不上</th>"
                "<th>请邻长转达(户)</th></tr>"
                f"{row('合计', out.totals)}{rows}</table></section>" + _relay_html(out.relay))
        # While receipts still come in, the page reloads itself (a plain refresh: no script).
        head = (f'<meta http-equiv="refresh" content="{REFRESH_S}">'
                if out.state == "open" else "")
        return page(c, v, f"通知 #{out.id}", body, active="notices", head=head)

    @r.get("/dashboard/notices/{notice_id}/export.xlsx", include_in_schema=False)
    def notice_export(notice_id: DbId, v: SignedIn) -> Response:
        """The receipts (per child node) and the roster of every recipient, for chasing."""
        out = read(v, notice_id)
        with session_scope(c.engine) as s:
            people = services.roster(s, notice_id=notice_id, viewer_scopes=v.scopes)
        head = ["范围", "接收人", "已送达", "已确认", "联系不上", "请邻长转达(户)"]
        summary = [head] + [[name, x.recipients, x.delivered, x.confirmed, x.unreachable,
                             x.relay_households]
                            for name, x in [("合计", out.totals)]
                            + [(k.node.name, k) for k in out.children if k.recipients]]
        roster = [["姓名", "岗位", "所在", "状态", "确认时间", "方式", "请转达(户)"]] + [
            [p.name, t("zh", "notice_role_" + p.role), p.node, ROSTER_STATE[p.state],
             as_utc(p.confirmed_at).astimezone(tz).replace(tzinfo=None)
             if p.confirmed_at else None, VIA.get(p.via or "", p.via or ""),
             p.relay_households] for p in people]
        resp = xlsx([("回执", summary), ("名单", roster)])
        resp.headers["Content-Disposition"] = (
            f'attachment; filename="notice-{notice_id}.xlsx"')
        return resp

    return r

