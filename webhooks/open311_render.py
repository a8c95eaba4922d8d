"""Open311 answers in the spec's two formats: XML (the required one, ElementTree, with the
XML declaration and no namespace) and JSON (the same tree by the Spark convention: a list of
objects for a list of elements), errors as the spec's `errors`/`error` array, times in ISO 8601
with the deployment's offset, and their descriptions in /openapi.json."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from fastapi.responses import Response

from bot.flows.refusals import sentence
from core.errors import DomainError, NotFound, PermissionDenied

FORMATS = ("json", "xml")
XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
Row = Mapping[str, Any]


def w3(at: datetime | None, tz: ZoneInfo) -> str | None:
    """A time as the spec writes it: ISO 8601 with the offset (2010-04-14T06:37:38+08:00)."""
    return at.astimezone(tz).isoformat(timespec="seconds") if at is not None else None


# Characters XML 1.0 cannot carry at all: a client's words lose them rather than break the
# document for every parser.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))


def _fill(parent: ET.Element, row: Row, item_names: Mapping[str, str]) -> None:
    for key, value in row.items():
        child = ET.SubElement(parent, key)
        if isinstance(value, list):
            for sub in value:
                _fill(ET.SubElement(child, item_names.get(key, "item")), sub, item_names)
        else:
            child.text = _text(value)


def xml_body(root: str, item: str | None, rows: Sequence[Row] | Row,
             item_names: Mapping[str, str] | None = None) -> bytes:
    """`<?xml …?><root><item>…</item>…</root>` (item None: one element's fields in root)."""
    top = ET.Element(root)
    names = item_names or {}
    if item is None:
        assert isinstance(rows, Mapping)
        _fill(top, rows, names)
    else:
        for row in rows:
            assert isinstance(row, Mapping)
            _fill(ET.SubElement(top, item), row, names)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="utf-8",
                                                                     xml_declaration=False)


def answer(fmt: str, root: str, item: str | None, rows: Sequence[Row] | Row, *,
           status: int = 200, item_names: Mapping[str, str] | None = None) -> Response:
    """The answer in the asked format (fmt already checked)."""
    if fmt == "xml":
        return Response(xml_body(root, item, rows, item_names), status_code=status,
                        media_type=XML_TYPE)
    import json

    body = json.dumps(list(rows) if not isinstance(rows, Mapping) else dict(rows),
                      ensure_ascii=False)
    return Response(body.encode(), status_code=status, media_type=JSON_TYPE)


def status_of(exc: DomainError) -> int:
    """The spec's statuses: 403 for a missing or wrong api_key, 404 for what does not exist,
    400 for anything else the request cannot have."""
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    return 400


def error(fmt: str, exc: DomainError, lang: str) -> Response:
    """A domain error as the spec's error array (JSON when the format itself was wrong)."""
    status = status_of(exc)
    rows = [{"code": status, "description": sentence(exc, lang)}]
    return answer(fmt if fmt in FORMATS else "json", "errors", "error", rows, status=status)


# --------------------------------------------------------------------- /openapi.json

_XML = {"text/xml": {"schema": {"type": "string"}}}
_STR = {"type": ["string", "null"]}
_ERRORS = {"type": "array", "items": {"type": "object", "required": ["code", "description"],
                                      "properties": {"code": {"type": "integer"},
                                                     "description": {"type": "string"}}}}


def _doc(ok: dict[str, Any], what: str) -> dict[int | str, dict[str, Any]]:
    err = {"content": {"application/json": {"schema": _ERRORS}, **_XML}}
    return {
        200: {"description": what, "content": {"application/json": {"schema": ok}, **_XML}},
        400: {"description": "the request cannot be fulfilled (spec error array)", **err},
        403: {"description": "missing, invalid or revoked api_key", **err},
        404: {"description": "no such service, request or token", **err},
    }


def _list(**props: Any) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "properties": props}}


SERVICES = _doc(_list(service_code={"type": "string"}, service_name={"type": "string"},
                      description=_STR, metadata={"type": "boolean"},
                      type={"type": "string"}, keywords=_STR, group=_STR), "the service list")
DEFINITION = _doc({"type": "object", "required": ["service_code", "attributes"],
                   "properties": {"service_code": {"type": "string"},
                                  "attributes": {"type": "array"}}}, "a service definition")
POSTED = _doc(_list(service_request_id={"type": "string"}, service_notice=_STR,
                    account_id=_STR), "the request was filed")
REQUESTS = _doc(_list(service_request_id={"type": "string"},
                      status={"type": "string", "enum": ["open", "closed"]}),
                "service requests")
TOKENS = _doc(_list(service_request_id={"type": "string"}, token={"type": "string"}),
              "the request a token stands for")
UPDATES = _doc(_list(update_id={"type": "string"}, service_request_id={"type": "string"},
                     status={"type": "string"}, updated_datetime={"type": "string"},
                     description={"type": "string"}, media_url={"type": "string"}),
               "updates of service requests (FixMyStreet's extension)")
_FIELDS = ("api_key", "jurisdiction_id", "service_code", "lat", "long", "address_string",
           "address_id", "email", "device_id", "account_id", "first_name", "last_name",
           "phone", "description", "media_url")
POST_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["api_key", "service_code"],
        "properties": {f: {"type": "string"} for f in _FIELDS}}}}}}
