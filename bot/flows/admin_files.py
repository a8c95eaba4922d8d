"""/import and /export in chat: the same rules as the command line, errors by row."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.flows.context import Ctx
from bot.flows.refusals import phrase_words
from bot.flows.types import Outbound
from core import conversations
from core.errors import ImportRejected, InvalidInput, PermissionDenied
from core.hierarchy.exporter import export_files
from core.hierarchy.importer import import_into
from core.hierarchy.parse_worker import check_uploads
from core.media.store import MediaStore
from core.privacy import sees_full_roster

MAX_SHOWN = 30


def _require_admin(ctx: Ctx, command: str) -> None:
    if ctx.actor is None or not ctx.actor.is_admin:
        raise PermissionDenied("cmd_admin_only", command=command)


def handle(ctx: Ctx, command: str) -> None:
    _require_admin(ctx, command)
    if command == "export":
        export(ctx)
        return
    files = [m for m in ctx.inbound.media if m.kind == "document"]
    if not files:
        i = ctx.inbound
        conversations.set_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                user_id=i.sender_id, state="await_import", data={},
                                now=ctx.clock.now())
        ctx.say(ctx.t("import_send_file"))
        return
    run_import(ctx)


def run_import(ctx: Ctx) -> None:
    """Import the documents of this message (downloaded by the platform adapter)."""
    _require_admin(ctx, "import")
    assert ctx.actor is not None  # None would be the operator's unlimited import
    store = MediaStore(Path(ctx.settings.media_dir))
    docs = [m for m in ctx.inbound.media if m.kind == "document"]
    if not docs or any(m.stored_ref is None for m in docs):
        raise InvalidInput("import_no_file")
    i = ctx.inbound
    conversations.clear_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                              user_id=i.sender_id)
    with tempfile.TemporaryDirectory(prefix="linzhang-import-") as tmp:
        paths = []
        for n, m in enumerate(docs):
            name = Path(m.file_unique_id or f"file{n}").name
            suffix = ".xlsx" if (m.mime or "").endswith("sheet") else Path(
                m.stored_ref or "").suffix or ".csv"
            # One folder per file keeps the sender's own file name in every error line.
            target = Path(tmp) / str(n) / f"{name}{suffix}"
            target.parent.mkdir()
            target.write_bytes(store.open(m.stored_ref or ""))
            paths.append(target)
        try:
            check_uploads(paths, settings=ctx.settings)  # zip bombs: core/hierarchy/parse_worker
            with ctx.session.begin_nested():
                report = import_into(ctx.session.connection(), paths, by=ctx.actor,
                                     clock=ctx.clock, max_errors=MAX_SHOWN)
        except ImportRejected as exc:
            lines = exc.report(phrase_words(ctx.lang)).splitlines()
            ctx.say(ctx.t("import_failed", errors="\n".join(lines[:MAX_SHOWN])))
            return
    ctx.say(ctx.t("import_ok", summary=report.summary()))


def export(ctx: Ctx) -> None:
    """Send the admin a workbook of their subtree: whole phone numbers only to the admins who
    keep the roster (town and district), and never into a group chat."""
    assert ctx.actor is not None
    if not ctx.inbound.chat_is_private:
        raise PermissionDenied("export_private_only")
    root = ctx.actor.admin_scopes()[0]
    masked = not sees_full_roster(root.level)
    store = MediaStore(Path(ctx.settings.media_dir))
    with tempfile.TemporaryDirectory(prefix="linzhang-export-") as tmp:
        out = Path(tmp) / f"linzhang-{root.code}{'-masked' if masked else ''}.xlsx"
        report = export_files(ctx.session.connection(), out, fmt="xlsx",
                              root_code=root.code, masked=masked)
        ref = store.put(out.read_bytes(), ".xlsx")
    caption = ctx.t("export_ready", nodes=report.nodes, members=report.members)
    if masked:
        caption += ctx.t("export_masked")
    ctx.out.append(_document(ctx, ref, caption))


def _document(ctx: Ctx, ref: str, caption: str) -> Outbound:
    return Outbound(text=caption, kind="export", platform=ctx.inbound.platform,
                    address=ctx.inbound.chat_id, document=ref)
