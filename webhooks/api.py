"""The dashboard's JSON API under /api, with response models so /openapi.json describes it.

Same sign-in as the pages (the session cookie); writes also need the X-CSRF-Token header that
GET /api/me returns, because a cookie alone would let another site post on the user's behalf.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import Field

from bot.flows.refusals import event_note
from core import accounts, reports
from core.cases import services, stats
from core.cases.model import State
from core.container import Container
from core.db import session_scope, write_session
from core.hierarchy.model import Level
from core.rollup import read as rollup
from webhooks import dashboard as d
from webhooks import dashboard_auth as dauth
from webhooks import dashboard_views as dviews
from webhooks.api_models import (
    ActionIn,
    AttachmentOut,
    CaseOut,
    CasePageOut,
    CaseRowOut,
    CategoryOut,
    EventOut,
    FiguresOut,
    HoldingOut,
    InsideOut,
    LeaderOut,
    MapOut,
    MeOut,
    NodeOut,
    OkOut,
    PasswordIn,
    RankingOut,
    RankOut,
    ThresholdsOut,
    TierOut,
    TileOut,
    WeekOut,
)
from webhooks.dashboard_auth import Viewer

# Ids are INTEGER columns: a larger number is no id of ours (and PostgreSQL would refuse it).
DbId = Annotated[int, Field(ge=0, le=2**31 - 1)]


def _rank(x: reports.RankRow, i: int | None) -> RankOut:
    return RankOut(rank=i, node=NodeOut.of(x.node), received=x.received, closed=x.closed,
                   resolution_rate=x.resolution_rate, on_time_rate=x.on_time_rate,
                   mean_rating=x.mean_rating, score=x.score)


def api_viewer(request: Request) -> Viewer:
    """The signed-in viewer of an API call (401 without a session)."""
    v = dauth.load_viewer(request.app.state.container, request)
    if v is None:
        raise HTTPException(401, "请先登录")
    return v


ApiViewer = Annotated[Viewer, Depends(api_viewer)]


def api_writer(v: ApiViewer, x_csrf_token: str | None = Header(None)) -> Viewer:
    """A viewer whose POST carries the session's CSRF token."""
    dauth.check_csrf(v, x_csrf_token)
    return v


ApiWriter = Annotated[Viewer, Depends(api_writer)]


def router(c: Container) -> APIRouter:
    """The /api routes."""
    r = APIRouter(prefix="/api", tags=["dashboard"])

    @r.get("/me", response_model=MeOut)
    def me(v: ApiViewer) -> MeOut:
        return MeOut(person_id=v.who.person.id, name=v.who.person.name,
                     scopes=[NodeOut.of(n) for n in v.scopes], csrf_token=v.csrf)

    @r.get("/map", response_model=MapOut)
    def map_(v: ApiViewer, node: str | None = None) -> MapOut:
        t = dviews.thresholds(c)
        m = dviews.map_view(c, v, node)
        at, tiles, own, path = m.node, m.tiles, m.own, m.path
        return MapOut(
            node=NodeOut.of(at), level=own.level.name, unresolved=own.unresolved,
            overdue=own.overdue, breadcrumbs=[NodeOut.of(n) for n in path],
            thresholds=ThresholdsOut(unresolved=t.unresolved, overdue=t.overdue,
                                     hysteresis=t.hysteresis),
            tiles=[TileOut(node=NodeOut.of(x.status.node), level=x.status.level.name,
                           unresolved=x.status.unresolved, overdue=x.status.overdue,
                           has_children=x.has_children, latitude=x.latitude,
                           longitude=x.longitude,
                           inside=[InsideOut(node=NodeOut.of(m.node), level=m.level.name,
                                             unresolved=m.unresolved, overdue=m.overdue)
                                   for m in x.inside], boundary=x.shape) for x in tiles],
        )

    @r.get("/cases", response_model=CasePageOut)
    def cases(v: ApiViewer, node: str | None = None,
              state: State | None = None, category: DbId | None = None, overdue: bool = False,
              start: str | None = Query(None, description="YYYY-MM-DD, local time"),
              end: str | None = Query(None, description="YYYY-MM-DD, exclusive"),
              before: DbId | None = None,
              limit: int = Query(50, ge=1, le=500)) -> CasePageOut:
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            f = reports.CaseFilter(node=at, state=state.value if state else None,
                                   category_id=category, overdue=overdue,
                                   start=dviews.parse_day(start, c.tz),
                                   end=dviews.parse_day(end, c.tz),
                                   before=before, limit=limit)
            rows, nxt = reports.case_list(s, f=f, now=c.clock.now())
        return CasePageOut(items=[CaseRowOut(**row.__dict__) for row in rows], next_before=nxt)

    @r.get("/cases/{case_id}", response_model=CaseOut)
    def case(case_id: DbId, v: ApiViewer) -> CaseOut:
        with session_scope(c.engine) as s:
            dviews.case_in_scope(s, v, case_id)
            cv = services.view(s, case_id=case_id, now=c.clock.now())
            events = services.history(s, case_id=case_id)
            atts = services.attachments_of(s, case_id=case_id)
            held = reports.holdings(s, case_id=case_id)
            may = services.can_act(s, case_id=case_id, person_id=v.who.person.id)
        return CaseOut(
            id=cv.id, version=cv.version, state=cv.state.value, text=cv.text,
            category=cv.category, holder_id=cv.holder_id, holder_name=cv.holder_name,
            holder_role=cv.holder_role, stage=cv.stage, deadline_at=cv.deadline_at,
            overdue=cv.overdue, opened_at=cv.opened_at, rating=cv.rating,
            merged_into_id=cv.merged_into_id, may_act=may,
            events=[EventOut(id=ev.id or 0, at=ev.at, kind=ev.kind, actor_id=ev.actor_id,
                             role=ev.role, holder_id=ev.holder_id, from_state=ev.from_state,
                             to_state=ev.to_state, via=ev.via,
                             note=event_note(ev.kind, ev.note, ev.detail)) for ev in events],
            attachments=[AttachmentOut(
                id=a.id or 0, kind=a.kind, purpose=a.purpose,
                url=f"/media/{a.stored_ref}" if a.stored_ref else None,
                thumb_url=f"/media/{a.thumb_ref}" if a.thumb_ref else None, mime=a.mime,
                caption=a.caption, latitude=a.latitude, longitude=a.longitude) for a in atts],
            holders=[HoldingOut(**h.__dict__) for h in held],
        )

    @r.post("/cases/{case_id}/{action}", response_model=CaseOut,
            responses={409: {"description": "the case changed since `version` (stale)"}})
    def act(case_id: DbId, action: Literal["accept", "reply", "resolve", "escalate", "whistle",
                                          "reject", "merge"],
            body: ActionIn, v: ApiWriter) -> CaseOut:
        with write_session(c.engine) as s:
            dviews.run_action(s, c, v, case_id=case_id, action=action, version=body.version,
                         text=body.text, into=body.into_case_id)
        return case(case_id, v)

    @r.get("/figures", response_model=FiguresOut)
    def figures(v: ApiViewer, node: str | None = None,
                start: str | None = Query(None, description="YYYY-MM-DD, local time"),
                end: str | None = Query(None, description="YYYY-MM-DD, exclusive"),
                leaders: int = Query(50, ge=1, le=1000, description=(
                    "rating_by_neighbor_leader keeps only the N best- and the N worst-rated 邻长 "
                    "(best first), not every 邻长 of the subtree; the XLSX export has them all"
                ))) -> FiguresOut:
        start_dt, end_dt = dviews.period(c, start, end)
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            f, rolled, as_of = rollup.figures_for(s, node=at, start=start_dt, end=end_dt,
                                                  tz=c.tz, leaders=leaders)
            ws = rollup.weekly_for(s, node=at, start=start_dt, end=end_dt, tz=c.tz)
            cats = rollup.categories_for(s, node=at, start=start_dt, end=end_dt,
                                         tz=c.tz)
        roles = dviews.tier_roles(f)
        tiers = []
        for role in roles:
            tr = f.on_time_first_reply.get(role, stats.TierRate(0, 0))
            tiers.append(TierOut(role=role, on_time=tr.on_time, late=tr.late, missed=tr.missed,
                                 total=tr.total, rate=tr.rate,
                                 escalations=f.escalations.get(role, 0)))
        return FiguresOut(
            node=NodeOut.of(at), start=f.start, end=f.end, received=f.received, closed=f.closed,
            rejected=f.rejected, merged=f.merged, resolution_rate=f.resolution_rate,
            median_first_reply_s=f.median_first_reply_s, median_close_s=f.median_close_s,
            mean_rating=f.mean_rating, tiers=tiers, from_rollup=rolled, as_of=as_of,
            rating_by_neighbor_leader=[LeaderOut(**x.__dict__)
                                       for x in f.rating_by_neighbor_leader],
            weeks=[WeekOut(**w.__dict__) for w in ws],
            categories=[CategoryOut(name=x.name, received=x.received, closed=x.closed)
                        for x in cats],
        )

    @r.get("/ranking", response_model=RankingOut)
    def ranking(v: ApiViewer, node: str | None = None,
                level: Literal["town", "village"] | None = None,
                start: str | None = None, end: str | None = None) -> RankingOut:
        start_dt, end_dt = dviews.period(c, start, end)
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            lv = Level(level) if level else (
                Level.village if at.level in (Level.town, Level.village) else Level.town)
            ranked, few = rollup.ranking_for(s, scope=at, level=lv, start=start_dt,
                                             end=end_dt, tz=c.tz,
                                             min_cases=c.settings.dashboard_min_cases)
        return RankingOut(level=lv.value, min_cases=c.settings.dashboard_min_cases,
                          ranked=[_rank(x, i) for i, x in enumerate(ranked, 1)],
                          too_few=[_rank(x, None) for x in few])

    @r.get("/export/{kind}.xlsx", response_class=Response,
           responses={200: {"content": {dauth.XLSX_MIME: {}}, "description": "an XLSX workbook"}})
    def export(kind: Literal["figures", "weekly", "ranking"], v: ApiViewer,
               node: str | None = None, start: str | None = None,
               end: str | None = None) -> Response:
        return d.export_xlsx(c, v, kind, node, start, end)

    @r.post("/passwords", response_model=OkOut)
    def set_password(body: PasswordIn, v: ApiWriter) -> OkOut:
        """An admin sets the dashboard password of a 书记 or admin below them in their subtree
        (403, one message, for a number that is unknown or not theirs)."""
        with write_session(c.engine) as s:
            accounts.set_password_by_phone(s, phone=body.phone, password=body.password,
                                           now=c.clock.now(), by=v.who.person.id)
        return OkOut()

    return r
