"""How the webhook routes appear in /openapi.json: their bodies, query strings and answers.

The routes read the raw body themselves (signatures cover the exact bytes), so FastAPI cannot
infer a schema; these describe what Telegram, WeChat and WeCom send, so that the document is
complete and a schema-driven fuzzer (tests/integration/test_fuzz_openapi.py) reaches them."""

from __future__ import annotations

from typing import Any

_EMPTY = {"text/plain": {"schema": {"type": "string"}}}
WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "stored (or a retry of something stored), or the URL check's echo",
          "content": _EMPTY},
    400: {"description": "not a body we can read (bad XML, undecryptable)", "content": _EMPTY},
    403: {"description": "wrong secret token or signature; nothing stored", "content": _EMPTY},
    404: {"description": "this channel is not configured", "content": _EMPTY},
    413: {"description": "body over the size limit", "content": _EMPTY},
}

_SIGNED_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
    for name in ("signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature")
]

TELEGRAM: dict[str, Any] = {
    "parameters": [{"name": "X-Telegram-Bot-Api-Secret-Token", "in": "header",
                    "required": False, "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "a Telegram Update",
        "required": ["update_id"],
        "properties": {
            "update_id": {"type": "integer"},
            "message": {"type": "object"},
            "edited_message": {"type": "object"},
            "callback_query": {"type": "object"},
        },
    }}}},
}

_XML_FIELDS = {key: {"type": "string"} for key in (
    "ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event",
    "EventKey", "MediaId", "Encrypt", "AgentID")}
XML_CALLBACK: dict[str, Any] = {
    "parameters": _SIGNED_QUERY,
    "requestBody": {"required": True, "content": {"application/xml": {"schema": {
        "type": "object", "xml": {"name": "xml"}, "properties": _XML_FIELDS,
    }}}},
}
URL_CHECK: dict[str, Any] = {
    "parameters": [*_SIGNED_QUERY, {"name": "echostr", "in": "query", "required": False,
                                     "schema": {"type": "string"}}],
}
WECOM_BOT: dict[str, Any] = {
    "parameters": _SIGNED_QUERY,
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["encrypt"],
        "properties": {"encrypt": {"type": "string"}},
    }}}},
}


def document_errors(app: Any) -> None:
    """Our own 422s (a bad date, an invalid action: core InvalidInput) carry `detail` as one
    sentence, FastAPI's as a list of field errors; say so in the document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        doc: dict[str, Any] = build()
        err = doc.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if err is not None and "anyOf" not in err["properties"]["detail"]:
            listed = err["properties"]["detail"]
            err["properties"]["detail"] = {"anyOf": [listed, {"type": "string"}],
                                           "title": "Detail"}
        return doc

    app.openapi = openapi
