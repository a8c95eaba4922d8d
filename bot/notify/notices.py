"""The notifier of notices: notice events in, outbox rows out, in the transaction of the change.

Rows are keyed by the notice and recipient for the first copy (`notice{n}:p{person}`, which
the receipts read delivery from) and by event and recipient after that (`ne{event}:p{person}`).
A city-wide notice writes over 100,000 rows: texts are worded once per language and the rows
are written in batches through `enqueue_many`, never one object per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bot.flows.texts import t
from bot.notify.rules import NOTICE_RULES, Rule
from core.cases.policy import CasePolicy
from core.clock import as_utc
from core.hierarchy.model import Level, Node, Person, Post, Role
from core.hierarchy.queries import node_by_id
from core.hierarchy.tree import LEADER_ROLE, path_ids
from core.notices.model import RECIPIENT, Notice, NoticeEvent, notice_key
from core.outbox import OUT, Action, Draft, enqueue_many

P: sa.Table = Person.__table__  # type: ignore[attr-defined]
N: sa.Table = Node.__table__  # type: ignore[attr-defined]
POST: sa.Table = Post.__table__  # type: ignore[attr-defined]
BATCH = 5000
MAX_NAMES = 30
KIND = "notice"


class _Words:
    """A notice's copy, worded once per language."""

    def __init__(self, session: Session, notice: Notice) -> None:
        self.notice = notice
        self.node = node_by_id(session, notice.node_id)
        name = session.execute(sa.select(P.c.name).where(P.c.id == notice.author_id)
                               ).scalar_one_or_none() if notice.author_id else None
        self.author = name
        self.tz = CasePolicy.from_json(notice.policy or {}).tz
        self._cache: dict[str, str] = {}

    def deadline(self) -> str | None:
        d = self.notice.deadline
        return as_utc(d).astimezone(self.tz).strftime("%m-%d %H:%M") if d else None

    def body(self, lang: str) -> str:
        if lang not in self._cache:
            n = self.notice
            text = t(lang, "notice_head", node=self.node.name,
                     author=self.author or t(lang, "notice_author_unknown"), text=n.text)
            if n.confirm:
                dl = self.deadline()
                text += t(lang, "notice_confirm_by", deadline=dl) if dl else t(
                    lang, "notice_confirm")
            self._cache[lang] = text
        return self._cache[lang]

    def copy(self, lang: str, relay: int) -> str:
        text = self.body(lang)
        return text + t(lang, "notice_relay", n=relay) if relay else text

    def actions(self, lang: str) -> tuple[Action, ...]:
        if not self.notice.confirm:
            return ()
        assert self.notice.id is not None
        return (Action("notice_ok", t(lang, "notice_ok_label"), self.notice.id, 0),)

    def options(self) -> dict[str, Any] | None:
        opts = {k: v for k, v in (("photo", self.notice.photo),
                                  ("document", self.notice.document)) if v}
        return opts or None


def _recipients(session: Session, notice_id: int, *, unconfirmed: bool = False,
                reachable_only: bool = False) -> Iterator[Any]:
    q = (sa.select(RECIPIENT.c.person_id, RECIPIENT.c.role, RECIPIENT.c.node_id,
                   RECIPIENT.c.relay_households, P.c.language, P.c.name)
         .join(P, P.c.id == RECIPIENT.c.person_id)
         .where(RECIPIENT.c.notice_id == notice_id).order_by(RECIPIENT.c.id))
    if unconfirmed:
        q = q.where(RECIPIENT.c.confirmed_at.is_(None))
    if reachable_only:
        key = sa.literal(f"notice{notice_id}:p") + sa.cast(RECIPIENT.c.person_id, sa.String)
        q = q.where(~sa.exists().where(OUT.c.dedupe_key == key, OUT.c.status == "dead"))
    yield from session.execute(q)


def _write(session: Session, drafts: Iterator[Draft], now: datetime) -> int:
    written, chunk = 0, []
    for d in drafts:
        chunk.append(d)
        if len(chunk) >= BATCH:
            written += enqueue_many(session, drafts=chunk, now=now)
            chunk = []
    return written + enqueue_many(session, drafts=chunk, now=now)


def _sent(session: Session, w: _Words, e: NoticeEvent) -> Iterator[Draft]:
    nid = w.notice.id
    assert nid is not None
    opts = w.options()
    for r in _recipients(session, nid):
        lang = r.language or "zh"
        yield Draft(text=w.copy(lang, r.relay_households), kind=KIND, person_id=r.person_id,
                    dedupe_key=notice_key(nid, r.person_id), actions=w.actions(lang),
                    options=opts)


def _reping(session: Session, w: _Words, e: NoticeEvent) -> Iterator[Draft]:
    assert w.notice.id is not None
    for r in _recipients(session, w.notice.id, unconfirmed=True, reachable_only=True):
        lang = r.language or "zh"
        yield Draft(text=t(lang, "notice_reping") + w.copy(lang, r.relay_households),
                    kind="notice_reping", person_id=r.person_id,
                    dedupe_key=f"ne{e.id}:p{r.person_id}", actions=w.actions(lang))


def _superiors(session: Session, node_ids: set[int]) -> tuple[dict[int, list[int]],
                                                               dict[int, tuple[str, int]]]:
    """For each node, its ancestors bottom up; and the leader posts held on those ancestors."""
    lineage: dict[int, list[int]] = {}
    ids = list(node_ids)
    for i in range(0, len(ids), BATCH):
        for nid, path in session.execute(sa.select(N.c.id, N.c.path).where(
                N.c.id.in_(ids[i:i + BATCH]))):
            lineage[nid] = list(reversed(path_ids(path)))
    above = sorted({a for chain in lineage.values() for a in chain})
    holders: dict[int, tuple[str, int]] = {}
    leaders = [r.value for r in LEADER_ROLE.values()]
    for i in range(0, len(above), BATCH):
        q = (sa.select(POST.c.node_id, POST.c.role, POST.c.person_id, N.c.level)
             .join(N, N.c.id == POST.c.node_id)
             .where(POST.c.node_id.in_(above[i:i + BATCH]), POST.c.role.in_(leaders))
             .order_by(POST.c.id))
        for nid, role, pid, level in session.execute(q):
            if LEADER_ROLE.get(level) is not None and LEADER_ROLE[level].value == role:
                holders.setdefault(nid, (level, pid))
    return lineage, holders


def _missing(session: Session, w: _Words, e: NoticeEvent) -> Iterator[Draft]:
    nid = w.notice.id
    assert nid is not None
    late = list(_recipients(session, nid, unconfirmed=True))
    if not late:
        return
    lineage, holders = _superiors(session, {r.node_id for r in late})
    lists: dict[int, tuple[str, list[Any]]] = {}
    for r in late:
        chain = lineage.get(r.node_id, [])
        # A resident's superior is the 邻长 of their own 邻; anyone else's sits above.
        start = 0 if r.role == Role.resident.value else 1
        boss = next(((lv, pid) for a in chain[start:] if (h := holders.get(a)) is not None
                     for lv, pid in [h] if pid != r.person_id), None)
        if boss is None and w.notice.author_id is not None:
            boss = ("other", w.notice.author_id)
        if boss is not None:
            lists.setdefault(boss[1], (boss[0], []))[1].append(r)
    people = dict(session.execute(sa.select(P.c.id, P.c.language).where(
        P.c.id.in_(list(lists)))).all()) if lists else {}
    names = dict(session.execute(sa.select(P.c.id, P.c.name).where(
        P.c.id.in_(list(lists)))).all()) if lists else {}
    send_at = (e.detail or {}).get("send_at")
    not_before = datetime.fromisoformat(send_at) if isinstance(send_at, str) else None
    excerpt = w.notice.text[:30] + ("…" if len(w.notice.text) > 30 else "")
    for boss_id, (level, rows) in lists.items():
        lang = people.get(boss_id) or "zh"
        roles = sorted({x.role for x in rows})
        who = t(lang, "notice_list_sep").join(t(lang, f"notice_role_{x}") for x in roles)
        shown = [x.name for x in rows[:MAX_NAMES]]
        listed = t(lang, "notice_list_sep").join(shown)
        if len(rows) > MAX_NAMES:
            listed += t(lang, "notice_missing_more", n=len(rows))
        boss_role = LEADER_ROLE[Level(level)].value if level != "other" else "admin"
        area = level if level in ("village", "area", "group", "neighborhood") else "other"
        text = t(lang, "notice_missing", role=t(lang, f"notice_role_{boss_role}"),
                 name=names.get(boss_id, ""), area=t(lang, f"notice_area_{area}"),
                 n=len(rows), who=who, excerpt=excerpt, names=listed)
        yield Draft(text=text, kind="notice_missing", person_id=boss_id,
                    dedupe_key=f"ne{e.id}:p{boss_id}", not_before=not_before)


RENDER = {"notice": _sent, "notice_reping": _reping, "notice_missing": _missing}


def notify_notices(session: Session, events: Sequence[NoticeEvent]) -> int:
    """The notifier as a notice-event subscriber (core/notices/events.py); rows written."""
    written = 0
    for e in events:
        rules: tuple[Rule, ...] = NOTICE_RULES.get(e.kind, ())
        if not rules:
            continue
        notice = session.get(Notice, e.notice_id)
        if notice is None:
            continue
        w = _Words(session, notice)
        for rule in rules:
            written += _write(session, RENDER[rule.message](session, w, e), as_utc(e.at))
    return written

