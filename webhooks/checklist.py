"""A 邻长's checklist as a phone page (`/checklist/<token>`, the link on WeCom's checklist
cards): every household of their 邻 in one campaign, the ones not yet recorded first, one tap
for an outcome, an optional note, 有新增人员 with name and phone.

No sign-in: the signed link is the proof (core/campaigns/links.py) and names the campaign and
the 邻长. Every tap is a plain form POST, saved at once through the same core functions as a
chat press (core/campaigns/marking.py), then a redirect back to the list. A POST carries the
page's form value (derived from the link) and is refused when the browser says it came from
another site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from bot.flows.refusals import sentence
from core.campaigns import links, marking
from core.campaigns.marking import Item
from core.campaigns.model import Campaign, CampaignItem, CampaignState
from core.container import Container
from core.db import write_session
from core.errors import Conflict, DomainError, NotFound, PermissionDenied
from core.hierarchy.model import Role
from core.hierarchy.queries import actor
from webhooks.checklist_page import View, error_page, list_page
from webhooks.http_errors import STATUS

STATIC = Path(__file__).parent / "checklist_static"
ASSETS = {"checklist.css": "text/css"}
HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


@dataclass(frozen=True)
class Opened:
    """A link checked: its campaign, its 邻长's households and their 邻's names."""

    link: links.Link
    campaign: Campaign
    items: list[Item]
    places: list[str]


def _status(exc: DomainError) -> int:
    return next(v for k, v in STATUS.items() if isinstance(exc, k))


def router(c: Container) -> APIRouter:
    """/checklist/<token>: the page, and its two POSTs (an outcome, a new person)."""
    r = APIRouter(include_in_schema=False)
    keys: list[bytes] = []  # the deployment's key never changes once made: read it once

    def key() -> bytes:
        # Before any other session: SQLite's one writer lock is not reentrant.
        if not keys:
            with write_session(c.engine) as s:
                keys.append(links.signing_key(s, settings=c.settings, now=c.clock.now()))
        return keys[0]

    def opened(s: Session, token: str) -> Opened:
        link = links.read(key=keys[0], token=token, now=c.clock.now())
        camp = links.campaign_of(s, link)
        who = actor(s, link.person_id)
        mine = {n.id: n.name for r, n in who.posts if r is Role.neighbor_leader}
        assert camp.id is not None
        items = marking.items_of(s, campaign_id=camp.id, node_ids=sorted(mine))
        return Opened(link, camp, items, [mine[k] for k in sorted(mine)])

    def show(token: str, *, flash: str = "", error: str = "", status: int = 200) -> Response:
        try:
            form = links.form_value(key=key(), token=token)
            with Session(c.engine) as s:
                o = opened(s, token)
                view = View(token=token, form=form,
                            campaign=o.campaign, items=o.items, places=o.places, tz=c.tz,
                            closed=o.campaign.state != CampaignState.open.value,
                            flash=flash, error=error)
        except DomainError as exc:
            return HTMLResponse(error_page(sentence(exc, "zh")), status_code=_status(exc),
                                headers=HEADERS)
        return HTMLResponse(list_page(view), status_code=status, headers=HEADERS)

    async def form_of(request: Request) -> dict[str, str]:
        async with request.form(max_files=0, max_fields=8, max_part_size=8192) as form:
            return {k: v for k, v in form.items() if isinstance(v, str)}

    def act(request: Request, token: str, fields: dict[str, str], what: str) -> Response:
        """Check the link, the form value and the household, then record; the page again."""
        stage, k = "link", key()
        try:
            with write_session(c.engine) as s:
                o = opened(s, token)
                stage = "record"
                if request.headers.get("sec-fetch-site") == "cross-site" or not links.form_ok(
                        key=k, token=token, given=fields.get("form")):
                    raise PermissionDenied("checklist_form_stale")
                item = _own_item(s, o, fields.get("item", ""))
                if what == "mark":
                    given = fields.get("outcome", "")
                    marking.mark(s, item_id=item.id or 0, person_id=o.link.person_id,
                                 outcome=int(given) if given.isdigit() else -1, clock=c.clock,
                                 note=(fields.get("note") or "").strip() or None)
                else:
                    marking.newcomer(s, item_id=item.id or 0, person_id=o.link.person_id,
                                     name=fields.get("name", ""),
                                     phone=(fields.get("phone") or "").strip() or None,
                                     clock=c.clock)
        except DomainError as exc:
            if stage == "link":  # a bad link gets no list, only the sentence
                return HTMLResponse(error_page(sentence(exc, "zh")), status_code=_status(exc),
                                    headers=HEADERS)
            return show(token, error=sentence(exc, "zh"), status=_status(exc))
        # Post/redirect/get: a reload does not record twice; the page words the flash again
        # from the household it names.
        return RedirectResponse(f"/checklist/{token}?ok={item.id}#flash", status_code=303)

    @r.get("/checklist/static/{name}")
    def static(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404)
        return Response((STATIC / name).read_bytes(), media_type=ASSETS[name],
                        headers={"Cache-Control": "max-age=300"})

    @r.get("/checklist/{token}")
    def page(token: str, ok: str = "") -> Response:
        return show(token, flash=ok if ok.isdigit() else "")

    @r.post("/checklist/{token}/mark")
    async def mark(request: Request, token: str) -> Response:
        from starlette.concurrency import run_in_threadpool

        fields = await form_of(request)
        return await run_in_threadpool(act, request, token, fields, "mark")

    @r.post("/checklist/{token}/newcomer")
    async def newcomer(request: Request, token: str) -> Response:
        from starlette.concurrency import run_in_threadpool

        fields = await form_of(request)
        return await run_in_threadpool(act, request, token, fields, "newcomer")

    return r


def _own_item(s: Session, o: Opened, given: str) -> CampaignItem:
    """A household on this link's page; any other (another 邻, another campaign) is refused
    before anything is written."""
    if not given.isdigit():
        raise NotFound("campaign_item_unknown", item=given[:12])
    item = s.get(CampaignItem, int(given))
    if item is None or item.id not in {i.id for i in o.items}:
        raise PermissionDenied("checklist_item_outside")
    if o.campaign.state != CampaignState.open.value:
        raise Conflict("campaign_closed", title=o.campaign.title)
    return item
