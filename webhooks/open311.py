"""Open311 GeoReport v2 under /open311/v2/, with FixMyStreet's updates extension.

What this follows, as found (the `search` tool):
- GeoReport v2, wiki.open311.org/GeoReport_v2 (open311/open311.github.io, GeoReport_v2/index.md):
  GET services, GET services/{service_code}, POST requests (form-encoded, api_key required),
  GET tokens/{token}, GET requests (service_request_id overriding the rest, service_code,
  start_date, end_date — at most 90 days, default the last 90 — and status open|closed, at
  most 1000 rows), GET requests/{service_request_id}; `.xml` or `.json` on every resource;
  times in w3 ISO 8601 with Z or an offset; errors as `<errors><error><code/><description/>`
  / `[{"code", "description"}]`, 403 for a missing or wrong api_key, 404 for what does not
  exist, 400 otherwise; description at most 4,000 characters.
- FixMyStreet, "Open311 FMS – Proposed differences to Open311" and "Complete Spec"
  (github.com/mysociety/fixmystreet/wiki): GET servicerequestupdates.[format] with start_date
  and end_date, answering `service_request_updates`/`request_update` of update_id,
  service_request_id, status, updated_datetime, description, media_url; statuses beyond
  open/closed from its "additional states" (in_progress, fixed, duplicate, …), lower-cased as
  mySociety's open311-adapter answers them.

Our reading of it: services are our categories (service_code: the category's id; no
attributes, so metadata is false and type realtime, and a request's token is its own id). A
posted request is placed in the key's subtree (core/open311/place.py) and opened as a case from
the client's own reporter, routed like any report; where nothing places it, it goes to the town
office and service_notice says so. jurisdiction_id may name a node inside the key's scope to
narrow it; any other value is ignored (one deployment, one jurisdiction). Unlike the spec,
reading requests and updates needs the api_key too: they are residents' problems, and a key
reads only its own subtree.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from bot.flows.texts import t
from core.cases.model import UNRESOLVED_STATES
from core.container import Container
from core.db import write_session
from core.errors import DomainError, InvalidInput, NotFound
from core.hierarchy.model import Category
from core.open311 import keys
from core.open311 import requests as o311
from core.open311.place import PlacedBy
from webhooks import open311_render as r

log = logging.getLogger(__name__)
PREFIX = "/open311/v2"
TAGS: list[str | Any] = ["open311"]
Opt = str | None
# The documented formats; any other suffix still reaches the route, which answers the spec's
# 400 error array (FastAPI's own 422 would not be the spec's).
Fmt = Annotated[str, Path(description="response format",
                          json_schema_extra={"enum": list(r.FORMATS)})]


def _lang(request: Request) -> str:
    return "en" if request.headers.get("accept-language", "").lower().startswith("en") else "zh"


def _date(value: str | None, field: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        at = datetime.fromisoformat(value.strip())
        # The spec: time zone information must be included. Years far out would overflow
        # the 90-day window arithmetic (and no request of ours is dated there).
        if at.tzinfo is None or not 1900 <= at.astimezone(UTC).year <= 9000:
            raise ValueError(value)
    except (ValueError, OverflowError):
        raise InvalidInput("open311_bad_date", field=field) from None
    return at


def _check(fmt: str) -> None:
    if fmt not in r.FORMATS:
        raise InvalidInput("open311_bad_format", format=fmt[:10])


def _service(cat: Category) -> dict[str, Any]:
    return {"service_code": str(cat.id), "service_name": cat.name,
            "description": f"{cat.parent_name} / {cat.name}" if cat.parent_name else cat.name,
            "metadata": False, "type": "realtime", "keywords": cat.name,
            "group": cat.parent_name}


def _notice(filed: o311.Filed, lang: str) -> str:
    p = filed.placement
    if p.by is PlacedBy.office:
        if p.given is None:
            return t(lang, "open311_notice_no_place", office=p.node.name)
        given = {"coordinates": "open311_given_coordinates"}.get(p.given, "open311_given_address")
        return t(lang, "open311_notice_office", given=t(lang, given), office=p.node.name)
    role = t(lang, f"role.{filed.holder_role}") if filed.holder_role else ""
    return t(lang, "open311_notice_routed", node=filed.holder_node or p.node.name, role=role)


def _request_row(v: o311.RequestView, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "service_request_id": str(v.case_id),
        "status": "closed" if v.state in o311.CLOSED_STATES else "open",
        "status_notes": v.status_notes, "service_name": v.service_name,
        "service_code": v.service_code, "description": v.description,
        "agency_responsible": v.agency, "service_notice": None,
        "requested_datetime": r.w3(v.requested, tz), "updated_datetime": r.w3(v.updated, tz),
        # The running deadline says when to expect it only while the case is being worked on.
        "expected_datetime": r.w3(v.expected, tz) if v.state in UNRESOLVED_STATES else None,
        "address": v.address or v.office,
        "address_id": v.address_id, "zipcode": None, "lat": v.lat, "long": v.long,
        "media_url": v.media_url,
    }


def router(c: Container) -> APIRouter:
    api = APIRouter(prefix=PREFIX, tags=TAGS)
    tz = ZoneInfo(c.settings.timezone)

    def run(request: Request, fmt: str, work: Any) -> Response:
        """One read: the format checked, a session, and any domain error as the spec's."""
        try:
            _check(fmt)
            with Session(c.engine) as s:
                return work(s)
        except DomainError as exc:
            return r.error(fmt, exc, _lang(request))

    def scoped(s: Session, api_key: Opt, jurisdiction_id: Opt) -> Any:
        return o311.narrowed(s, keys.authenticate(s, api_key=api_key), jurisdiction_id)

    @api.get("/services.{fmt}", responses=r.SERVICES, response_class=Response)
    def services(request: Request, fmt: Fmt, jurisdiction_id: Opt = None) -> Response:
        """GET Service List: every category as a service."""
        return run(request, fmt, lambda s: r.answer(
            fmt, "services", "service", [_service(x) for x in o311.services_list(s)]))

    @api.get("/services/{service_code}.{fmt}", responses=r.DEFINITION, response_class=Response)
    def definition(request: Request, service_code: str, fmt: Fmt,
                   jurisdiction_id: Opt = None) -> Response:
        """GET Service Definition: a category has no attributes to ask for."""
        return run(request, fmt, lambda s: r.answer(
            fmt, "service_definition", None,
            {"service_code": str(o311.service(s, service_code).id), "attributes": []}))

    @api.post("/requests.{fmt}", responses=r.POSTED, response_class=Response,
              openapi_extra=r.POST_BODY)
    async def post_request(request: Request, fmt: Fmt) -> Response:
        """POST Service Request: filed and routed at once (type realtime)."""
        lang = _lang(request)
        try:
            _check(fmt)
            form = await request.form()
        except DomainError as exc:
            return r.error(fmt, exc, lang)
        except Exception:  # a body that is no form at all (multipart parser errors)
            return r.error(fmt, InvalidInput("open311_bad_body"), lang)
        given = {k: v for k, v in request.query_params.items()}
        given.update({k: v for k, v in form.items() if isinstance(v, str)})
        body = o311.NewRequest(**{f: given.get(f) for f in o311.NewRequest.__dataclass_fields__})

        def file() -> Response:
            try:
                with write_session(c.engine) as s:
                    client = keys.authenticate(s, api_key=given.get("api_key"))
                    filed = o311.file_request(s, clock=c.clock, settings=c.settings,
                                              client=client, body=body,
                                              jurisdiction_id=given.get("jurisdiction_id"))
            except DomainError as exc:
                return r.error(fmt, exc, lang)
            log.info("open311: %s filed case %d (%s)", client.name, filed.case_id,
                     filed.placement.by.value)
            return r.answer(fmt, "service_requests", "request", [{
                "service_request_id": str(filed.case_id),
                "service_notice": _notice(filed, lang), "account_id": filed.account_id}])

        return await run_in_threadpool(file)

    @api.get("/requests.{fmt}", responses=r.REQUESTS, response_class=Response)
    def get_requests(request: Request, fmt: Fmt, api_key: Opt = None, jurisdiction_id: Opt = None,
                     service_request_id: Opt = None, service_code: Opt = None,
                     start_date: Opt = None, end_date: Opt = None,
                     status: Opt = None) -> Response:
        """GET Service Requests within the key's subtree."""
        def work(s: Session) -> Response:
            scope = scoped(s, api_key, jurisdiction_id)
            found = o311.find_requests(
                s, scope=scope, now=c.clock.now(), ids=service_request_id,
                service_codes=service_code, start=_date(start_date, "start_date"),
                end=_date(end_date, "end_date"),
                statuses=[x.strip() for x in (status or "").split(",") if x.strip()])
            return r.answer(fmt, "service_requests", "request",
                            [_request_row(v, tz) for v in found])
        return run(request, fmt, work)

    @api.get("/requests/{service_request_id}.{fmt}", responses=r.REQUESTS,
             response_class=Response)
    def get_request(request: Request, service_request_id: str, fmt: Fmt, api_key: Opt = None,
                    jurisdiction_id: Opt = None) -> Response:
        """GET Service Request: one the key may read."""
        def work(s: Session) -> Response:
            scope = scoped(s, api_key, jurisdiction_id)
            if scope is None:
                raise NotFound("open311_request_unknown", id=service_request_id[:20])
            v = o311.one_request(s, scope=scope, case_id=service_request_id,
                                 now=c.clock.now())
            return r.answer(fmt, "service_requests", "request", [_request_row(v, tz)])
        return run(request, fmt, work)

    @api.get("/tokens/{token}.{fmt}", responses=r.TOKENS, response_class=Response)
    def get_token(request: Request, token: str, fmt: Fmt,
                  jurisdiction_id: Opt = None) -> Response:
        """GET service_request_id from a token."""
        return run(request, fmt, lambda s: r.answer(fmt, "service_requests", "request", [
            {"service_request_id": str(o311.token_request(s, token=token)), "token": token}]))

    @api.get("/servicerequestupdates.{fmt}", responses=r.UPDATES, response_class=Response)
    def get_updates(request: Request, fmt: Fmt, api_key: Opt = None,
                    jurisdiction_id: Opt = None, start_date: Opt = None,
                    end_date: Opt = None) -> Response:
        """GET Service Request Updates (FixMyStreet): what happened to the key's requests."""
        def work(s: Session) -> Response:
            scope = scoped(s, api_key, jurisdiction_id)
            found = o311.updates(s, scope=scope, start=_date(start_date, "start_date"),
                                 end=_date(end_date, "end_date"), now=c.clock.now())
            return r.answer(fmt, "service_request_updates", "request_update", [{
                "update_id": str(u.update_id), "service_request_id": str(u.case_id),
                "status": u.status, "updated_datetime": r.w3(u.at, tz),
                "description": u.description, "media_url": ""} for u in found])
        return run(request, fmt, work)

    return api
