"""The notifier of notices: notice events in, outbox rows out, in the transaction of the change.

Rows are keyed by the notice and recipient for the first copy (`notice{n}:p{person}`, which
the receipts read delivery from) and by event and recipient after that (`ne{event}:p{person}`).
A city-wide notice writes over 100,000 rows: texts are worded once per language and the
copies and re-pings are written by one INSERT … SELECT per language over the recipient rows
(the keys are new: the notice and the event were made in this transaction); the superiors'
lists go through `enqueue_many` in batches. Never one ORM object per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bot.flows.texts import TEXTS, t
from bot.notify.rules import NOTICE_RULES, Rule
from core.cases.policy import CasePolicy
from core.clock import as_utc
from core.hierarchy.model import Level, Node, Person, Post, Role
from core.hierarchy.queries import node_by_id
from core.hierarchy.tree import LEADER_ROLE, path_ids
from core.notices.model import RECIPIENT, Notice, NoticeEvent
from core.outbox import OUT, Action, Draft, OutboxStatus, enqueue_many

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
            if n.survey:
                text += t(lang, "survey_ask")
            elif n.confirm:
                dl = self.deadline()
                text += t(lang, "notice_confirm_by", deadline=dl) if dl else t(
                    lang, "notice_confirm")
            self._cache[lang] = text
        return self._cache[lang]

    def copy(self, lang: str, relay: int) -> str:
        text = self.body(lang)
        return text + t(lang, "notice_relay", n=relay) if relay else text

    def actions(self, lang: str) -> tuple[Action, ...]:
        assert self.notice.id is not None
        if self.notice.survey:
            # 满意度测评: five buttons, the score in the press (bot/flows/survey.py).
            return tuple(Action("survey_rate", t(lang, f"survey_btn_{n}"), self.notice.id, 0,
                                (("arg", str(n)),)) for n in range(1, 6))
        if not self.notice.confirm:
            return ()
        return (Action("notice_ok", t(lang, "notice_ok_label"), self.notice.id, 0),)

    def options(self) -> dict[str, Any] | None:
        opts = {k: v for k, v in (("photo", self.notice.photo),
                                  ("document", self.notice.document)) if v}
        return opts or None


def _recipients(session: Session, notice_id: int, *, unconfirmed: bool = False) -> Iterator[Any]:
    q = (sa.select(RECIPIENT.c.person_id, RECIPIENT.c.role, RECIPIENT.c.node_id,
                   RECIPIENT.c.relay_households, P.c.language, P.c.name)
         .join(P, P.c.id == RECIPIENT.c.person_id)
         .where(RECIPIENT.c.notice_id == notice_id).order_by(RECIPIENT.c.id))
    if unconfirmed:
        q = q.where(RECIPIENT.c.confirmed_at.is_(None))
    yield from session.execute(q)


def _first_copy_dead(notice_id: int) -> sa.ColumnElement[bool]:
    key = sa.literal(f"notice{notice_id}:p") + sa.cast(RECIPIENT.c.person_id, sa.String)
    return sa.exists().where(OUT.c.dedupe_key == key, OUT.c.status == "dead")


def _fan(session: Session, w: _Words, *, kind: str, key_prefix: str, head: str,
         now: datetime, where: Sequence[sa.ColumnElement[bool]] = ()) -> int:
    """One INSERT … SELECT per language over the notice's recipient rows: the rows are built
    by the database, never one Python object per recipient (a city has over 100,000 邻长).
    The words are ours, worded here; only the household count is put in by SQL."""
    nid = w.notice.id
    assert nid is not None
    written = 0
    langs = [lang for lang in TEXTS if lang != "zh"]
    for lang in ["zh", *langs]:
        body = (t(lang, head) if head else "") + w.body(lang)
        relay = t(lang, "notice_relay", n="{n}")
        count = sa.cast(RECIPIENT.c.relay_households, sa.String)
        text = sa.bindparam(f"body_{lang}", body, type_=sa.Text) + sa.case(
            (RECIPIENT.c.relay_households > 0,
             sa.func.replace(sa.bindparam(f"relay_{lang}", relay, type_=sa.Text), "{n}",
                             count)), else_=sa.literal("", sa.Text))
        actions = [a.to_json() for a in w.actions(lang)]
        speaks = P.c.language == lang if lang != "zh" else sa.or_(
            P.c.language.is_(None), P.c.language.not_in(langs))
        q = (sa.select(
            RECIPIENT.c.person_id, text,
            sa.bindparam(f"actions_{lang}", actions, type_=sa.JSON),
            sa.bindparam("options", w.options(), type_=sa.JSON),
            sa.literal(kind), sa.literal(OutboxStatus.pending.value), sa.literal(0),
            sa.bindparam("now", now, type_=sa.DateTime(timezone=True)),
            sa.bindparam("now", now, type_=sa.DateTime(timezone=True)),
            sa.literal(key_prefix) + sa.cast(RECIPIENT.c.person_id, sa.String))
            .join(P, P.c.id == RECIPIENT.c.person_id)
            .where(RECIPIENT.c.notice_id == nid, speaks, *where))
        cols = ["person_id", "text", "actions", "options", "kind", "status", "attempts",
                "next_attempt_at", "created_at", "dedupe_key"]
        result = session.execute(sa.insert(OUT).from_select(cols, q))
        written += max(0, getattr(result, "rowcount", 0) or 0)
    return written


def _sent(session: Session, w: _Words, e: NoticeEvent) -> int:
    assert w.notice.id is not None
    return _fan(session, w, kind=KIND, key_prefix=f"notice{w.notice.id}:p", head="",
                now=as_utc(e.at))


def _reping(session: Session, w: _Words, e: NoticeEvent) -> int:
    assert w.notice.id is not None
    return _fan(session, w, kind="notice_reping", key_prefix=f"ne{e.id}:p",
                head="notice_reping", now=as_utc(e.at),
                where=(RECIPIENT.c.confirmed_at.is_(None), ~_first_copy_dead(w.notice.id)))


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


def _write(session: Session, drafts: Iterator[Draft], now: datetime) -> int:
    written, chunk = 0, []
    for d in drafts:
        chunk.append(d)
        if len(chunk) >= BATCH:
            written += enqueue_many(session, drafts=chunk, now=now)
            chunk = []
    return written + enqueue_many(session, drafts=chunk, now=now)


def _missing(session: Session, w: _Words, e: NoticeEvent) -> int:
    """Each superior's one list of their people who have not confirmed."""
    return _write(session, _lists(session, w, e), as_utc(e.at))


def _lists(session: Session, w: _Words, e: NoticeEvent) -> Iterator[Draft]:
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
            written += RENDER[rule.message](session, w, e)
    return written

