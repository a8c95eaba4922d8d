"""`linzhang purge --older-than 365d`: anonymise what is left of old, finished cases.

A case that ended (closed, rejected or merged) before the cut-off loses the words and places
people gave it: its text, rating comment and reject reason, every event note (the one update the
event log allows, migration 0008_privacy), attachment captions, file ids and GPS points, and the
media files themselves (a file another, unpurged case shares stays). It keeps its ids, node,
category, state, timestamps and rating, so every figure comes out the same. A `purged` event
records it, which is also how a second run knows to leave it alone.

Older than the cut-off, whatever the case: the texts of outbox rows and web chat lines,
the payloads of inbound updates (the rows stay, they deduplicate), strangers' pending reports,
stale conversation state and one-time phone codes.

Files go only after the rows that name them are committed: a crash in between leaves files that
the next run deletes, never a row pointing at a missing file it still trusts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases.model import ATTACHMENTS, CASES, EVENTS, FINAL_STATES, EventKind
from core.conversations import Conversation, PendingReport
from core.db import write_session
from core.errors import InvalidInput
from core.inbound import IU
from core.media.store import MediaStore
from core.outbox import OUT
from core.privacy import PLACEHOLDER
from core.web_sessions import PC, WM

PURGED = "purged"  # case_attachment.fetch_status of an anonymised attachment
PAYLOAD = {PURGED: True}  # what an inbound update's payload becomes
BATCH = 500
_AGE = re.compile(r"(\d+)([dw])")
CONV: sa.Table = Conversation.__table__  # type: ignore[attr-defined]
PENDING: sa.Table = PendingReport.__table__  # type: ignore[attr-defined]


def parse_age(text: str) -> timedelta:
    """`365d`, `90d`, `52w` or `1w3d`: an age of at least one day."""
    raw = str(text).strip().lower()
    pos, days = 0, 0
    for m in _AGE.finditer(raw):
        if m.start() != pos:
            break
        days += int(m.group(1)) * (7 if m.group(2) == "w" else 1)
        pos = m.end()
    if not raw or pos != len(raw):
        raise InvalidInput("age_malformed", text=text)
    if days < 1:
        raise InvalidInput("age_too_short", text=text)
    return timedelta(days=days)


@dataclass
class PurgeReport:
    """What a purge changed (or, dry, would change)."""

    cutoff: datetime
    dry_run: bool = False
    cases: int = 0
    events: int = 0
    attachments: int = 0
    files: int = 0
    outbox: int = 0
    web_messages: int = 0
    inbound: int = 0
    pending_reports: int = 0
    conversations: int = 0
    phone_codes: int = 0

    def summary(self) -> str:
        counts = {k: v for k, v in asdict(self).items()
                  if k not in ("cutoff", "dry_run")}
        verb = "would anonymise" if self.dry_run else "anonymised"
        return (f"{verb} (ended before {self.cutoff.isoformat(timespec='seconds')}): "
                + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))


def purge(engine: Engine, *, now: datetime, older_than: timedelta, media: MediaStore,
          dry_run: bool = False) -> PurgeReport:
    """Anonymise finished cases that ended before `now - older_than`, and old chat logs."""
    report = PurgeReport(cutoff=now - older_than, dry_run=dry_run)
    if dry_run:
        # Everything in one transaction, rolled back: the counts are exactly a real run's.
        with write_session(engine) as s:
            last = 0
            while ids := _due_cases(s, report.cutoff, after=last):
                _purge_cases(s, ids, now=now, report=report, older_than=older_than)
                last = ids[-1]
            _trim_logs(s, report)
            rows = _orphan_files(s)
            refs = {ref for _, a, b in rows for ref in (a, b) if ref}
            report.files = sum(1 for ref in refs - _shared(s, refs) if _on_disk(media, ref))
            s.rollback()
        return report
    last = 0
    while True:
        # One batch a transaction: a city's worth of old cases never holds the writer long.
        with write_session(engine) as s:
            ids = _due_cases(s, report.cutoff, after=last)
            if ids:
                _purge_cases(s, ids, now=now, report=report, older_than=older_than)
                last = ids[-1]
        if len(ids) < BATCH:
            break
    with write_session(engine) as s:
        _trim_logs(s, report)
    report.files = _delete_files(engine, media)
    return report


def _due_cases(session: Session, cutoff: datetime, *, after: int) -> list[int]:
    # A merged case has no closed_at; nothing changes it after the merge, so updated_at is when.
    ended = sa.func.coalesce(CASES.c.closed_at, CASES.c.updated_at)
    done = sa.exists().where(EVENTS.c.case_id == CASES.c.id,
                             EVENTS.c.kind == EventKind.purged.value)
    q = (sa.select(CASES.c.id)
         .where(CASES.c.state.in_([s.value for s in FINAL_STATES]), ended < cutoff,
                CASES.c.id > after, ~done)
         .order_by(CASES.c.id).limit(BATCH))
    return list(session.execute(q).scalars())


def _n(session: Session, stmt: sa.Executable) -> int:
    """Run an UPDATE or DELETE; how many rows it touched."""
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def _blank(col: sa.ColumnElement[str | None]) -> sa.ColumnElement[str | None]:
    """The placeholder where there was text; NULL stays NULL."""
    return sa.case((col.is_(None), None), else_=sa.literal(PLACEHOLDER))


def _purge_cases(session: Session, ids: list[int], *, now: datetime, report: PurgeReport,
                 older_than: timedelta) -> None:
    ids_in = CASES.c.id.in_(ids)
    _n(session, sa.update(CASES).where(ids_in).values(
        text=PLACEHOLDER, rating_comment=_blank(CASES.c.rating_comment),
        reject_reason=_blank(CASES.c.reject_reason)))
    report.events += _n(session, sa.update(EVENTS).where(
        EVENTS.c.case_id.in_(ids), EVENTS.c.note.is_not(None), EVENTS.c.note != PLACEHOLDER,
    ).values(note=PLACEHOLDER))
    counts = dict(session.execute(
        sa.select(ATTACHMENTS.c.case_id, sa.func.count()).where(ATTACHMENTS.c.case_id.in_(ids))
        .group_by(ATTACHMENTS.c.case_id)).all())
    # stored_ref and thumb_ref stay until the files are gone (see the module docstring).
    report.attachments += _n(session, sa.update(ATTACHMENTS).where(
        ATTACHMENTS.c.case_id.in_(ids),
    ).values(caption=_blank(ATTACHMENTS.c.caption), file_ref=None, latitude=None,
             longitude=None, exif_latitude=None, exif_longitude=None, fetch_error=None,
             fetch_status=PURGED))
    # Whatever their status: a message about a case that ended a year ago is moot anyway.
    report.outbox += _n(session, sa.update(OUT).where(
        OUT.c.case_id.in_(ids), OUT.c.text != PLACEHOLDER,
    ).values(text=PLACEHOLDER, options=None))
    report.web_messages += _n(session, sa.update(WM).where(
        WM.c.case_id.in_(ids), WM.c.text != PLACEHOLDER,
    ).values(text=PLACEHOLDER, options=None))
    rows = session.execute(sa.select(CASES.c.id, CASES.c.state, CASES.c.holder_id)
                           .where(ids_in)).all()
    # Written straight, not through ops.record: a purge changes no figure to recount.
    session.execute(sa.insert(EVENTS), [
        {"case_id": r.id, "at": now, "actor_id": None, "kind": EventKind.purged.value,
         "from_state": r.state, "to_state": r.state, "role": None, "holder_id": r.holder_id,
         "via": "purge", "note": None,
         "detail": {"older_than_days": older_than.days, "attachments": counts.get(r.id, 0)}}
        for r in rows])
    report.cases += len(ids)


def _trim_logs(session: Session, report: PurgeReport) -> None:
    cutoff = report.cutoff
    report.outbox += _n(session, sa.update(OUT).where(
        OUT.c.created_at < cutoff, OUT.c.text != PLACEHOLDER,
    ).values(text=PLACEHOLDER, options=None))
    report.web_messages += _n(session, sa.update(WM).where(
        WM.c.created_at < cutoff, WM.c.text != PLACEHOLDER,
    ).values(text=PLACEHOLDER, options=None))
    # The rows stay: a platform's id must still be known to deduplicate. Compared as text (JSON
    # has no equality on PostgreSQL); both engines keep what SQLAlchemy wrote verbatim.
    report.inbound += _n(session, sa.update(IU).where(
        IU.c.received_at < cutoff, sa.cast(IU.c.payload, sa.Text) != json.dumps(PAYLOAD),
    ).values(payload=PAYLOAD))
    report.pending_reports += _n(session, sa.delete(PENDING).where(
        PENDING.c.received_at < cutoff))
    report.conversations += _n(session, sa.delete(CONV).where(CONV.c.updated_at < cutoff))
    report.phone_codes += _n(session, sa.delete(PC).where(PC.c.created_at < cutoff))


def _orphan_files(session: Session) -> list[tuple[int, str | None, str | None]]:
    """Purged attachments that still name a file: (id, stored_ref, thumb_ref)."""
    q = (sa.select(ATTACHMENTS.c.id, ATTACHMENTS.c.stored_ref, ATTACHMENTS.c.thumb_ref)
         .where(ATTACHMENTS.c.fetch_status == PURGED,
                sa.or_(ATTACHMENTS.c.stored_ref.is_not(None),
                       ATTACHMENTS.c.thumb_ref.is_not(None)))
         .order_by(ATTACHMENTS.c.id))
    return [(r.id, r.stored_ref, r.thumb_ref) for r in session.execute(q)]


def _shared(session: Session, refs: Iterable[str]) -> set[str]:
    """Refs that an attachment not purged still uses (the store keeps one file per content)."""
    wanted = list(refs)
    if not wanted:
        return set()
    live = ATTACHMENTS.c.fetch_status.is_(None) | (ATTACHMENTS.c.fetch_status != PURGED)
    out: set[str] = set()
    for col in (ATTACHMENTS.c.stored_ref, ATTACHMENTS.c.thumb_ref):
        out |= set(session.execute(sa.select(col).where(col.in_(wanted), live)).scalars())
    return out


def _on_disk(media: MediaStore, ref: str) -> bool:
    try:
        return media.path(ref).is_file()
    except InvalidInput:
        return False  # not shaped like one of our refs: nothing on disk to remove


def _delete_files(engine: Engine, media: MediaStore) -> int:
    """Delete the files of purged attachments, then forget their refs."""
    with write_session(engine) as s:
        rows = _orphan_files(s)
        refs = {ref for _, a, b in rows for ref in (a, b) if ref}
        keep = _shared(s, refs)
    deleted = 0
    for ref in sorted(refs - keep):
        if _on_disk(media, ref):
            media.path(ref).unlink()
            deleted += 1
    if rows:
        with write_session(engine) as s:
            s.execute(sa.update(ATTACHMENTS)
                      .where(ATTACHMENTS.c.id.in_([r[0] for r in rows]))
                      .values(stored_ref=None, thumb_ref=None))
    return deleted
