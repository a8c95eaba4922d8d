"""One Telegram update body, from a webhook POST or getUpdates: parse, store, handle."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from bot.dispatch import process, record_unparsed
from bot.flows.types import Inbound
from bot.handlers.telegram.parse import Unparseable, parse_update
from core.container import Container
from core.errors import MediaStoreUnavailable
from core.hierarchy.model import Role
from core.hierarchy.parse_worker import precheck
from core.hierarchy.queries import actor_by_identity
from core.media import MediaStore

log = logging.getLogger(__name__)


def handle_body(c: Container, body: bytes) -> None:
    """Parse, store and handle one update body (sync: run it in a worker thread)."""
    now = c.clock.now()
    try:
        data: Any = json.loads(body, parse_constant=not_json)
    except ValueError as exc:  # not UTF-8, not JSON, or NaN / Infinity
        log.warning("telegram: body is not JSON (%s)", exc)
        return
    update_id = str(data.get("update_id")) if isinstance(data, dict) else "?"
    follow_migration(c, data)
    try:
        inbound = parse_update(data, now=now, bot_username=c.settings.telegram_bot_username)
    except Unparseable as exc:
        if isinstance(data, dict) and isinstance(data.get("update_id"), int):
            record_unparsed(c.engine, platform="telegram", update_id=update_id, payload=data,
                            now=now, error=str(exc), counters=c.counters)
        else:
            log.warning("telegram: %s", exc)
        return
    if inbound is None:
        record_unparsed(c.engine, platform="telegram", update_id=update_id, payload=data,
                        now=now, error="ignored: not a message we act on",
                        counters=c.counters)
        return
    inbound = fetch_spreadsheets(c, inbound, data)
    process(c.engine, inbound=inbound, payload=data, clock=c.clock, settings=c.settings,
            counters=c.counters)


def _chat_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def follow_migration(c: Container, data: Any) -> None:
    """A group upgraded to a supergroup says so (`migrate_to_chat_id`): its binding follows."""
    # The body is not parsed yet: every field may be of any JSON type (bool is an int too).
    msg = data.get("message") if isinstance(data, dict) else None
    msg = msg if isinstance(msg, dict) else {}
    chat = msg.get("chat")
    new = msg.get("migrate_to_chat_id")
    old = chat.get("id") if isinstance(chat, dict) else None
    if _chat_id(new) and _chat_id(old):
        from core.db import write_session
        from core.deliveries import chat_moved

        with write_session(c.engine) as s:
            chat_moved(s, platform="telegram", old=str(old), new=str(new))
        log.info("telegram: chat %s moved to %s", old, new)


def not_json(name: str) -> Any:
    """NaN and Infinity: Python reads them, JSON (and PostgreSQL's json type) does not."""
    raise ValueError(f"{name} is not JSON")


SHEET_SUFFIXES = (".csv", ".xlsx", ".xlsm", ".txt")
SHEET_LIMIT = 20 * 2**20  # what getFile serves


def fetch_spreadsheets(c: Container, inbound: Inbound, data: dict[str, Any]) -> Inbound:
    """Download spreadsheet documents before the flow runs: an admin's /import needs the
    bytes now, not after the background fetcher gets to them."""
    doc = (data.get("message") or {}).get("document") or {}
    name = str(doc.get("file_name") or "")
    if not name.lower().endswith(SHEET_SUFFIXES) or c.settings.telegram_bot_token is None:
        return inbound
    if int(doc.get("file_size") or 0) > SHEET_LIMIT:
        return inbound  # the flow tells them the file could not be read
    if not _sender_is_admin(c, inbound):
        return inbound  # only an admin's /import reads a sheet; nobody else may occupy the worker
    media = []
    for m in inbound.media:
        if m.kind == "document" and m.file_ref == doc.get("file_id"):
            try:
                body = _download(c, m.file_ref or "")
                precheck(name, body, settings=c.settings)  # before the transaction: parse_worker
                ref = MediaStore(Path(c.settings.media_dir)).put(
                    body, Path(name).suffix.lstrip(".").lower())
                m = replace(m, stored_ref=ref, file_unique_id=Path(name).stem[:60])
            except (httpx.HTTPError, ValueError, MediaStoreUnavailable) as exc:
                # The update is still recorded and handled: the flow says the file was not read.
                log.warning("telegram: could not fetch %s: %s", name, exc)
        media.append(m)
    return replace(inbound, media=tuple(media))


def _sender_is_admin(c: Container, inbound: Inbound) -> bool:
    with Session(c.engine) as s:
        who = actor_by_identity(s, inbound.platform, inbound.sender_id)
    return who is not None and any(role is Role.admin for role, _ in who.posts)


def _download(c: Container, file_id: str) -> bytes:
    token = c.settings.telegram_bot_token
    assert token is not None
    base = c.settings.telegram_api_base.rstrip("/")
    secret = token.get_secret_value()
    with httpx.Client(timeout=30) as client:
        info = client.get(f"{base}/bot{secret}/getFile", params={"file_id": file_id}).json()
        if not info.get("ok"):
            raise ValueError(f"getFile: {info.get('description')}")
        path = info["result"]["file_path"]
        r = client.get(f"{base}/file/bot{secret}/{path}")
        r.raise_for_status()
        if len(r.content) > SHEET_LIMIT:
            raise ValueError("file over 20 MB")
        return r.content
