"""Duplicates and "me too": open cases that a new report is probably about, and joining one.

A new report is filed at once (never lost); the candidates found here are offered to the
resident afterwards. Choosing one folds the new report into it: the words and files go to the
chosen case as an addition, the resident follows it (a supporter: N 人反映), and the new case
ends as merged, so that the map and the figures count the problem once.

The lookup is bounded by indexes, never a table scan: the same 组's open cases through
(state, node_path, …) and cases within 100 m through a coarse geo cell column (geo_cell, state).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import events, ops
from core.cases.model import (
    ATTACHMENTS,
    CASES,
    FOLLOWERS,
    Attachment,
    AttachmentKind,
    Case,
    EventKind,
    State,
)
from core.clock import Clock
from core.db import memo
from core.errors import Conflict, PermissionDenied
from core.hierarchy.model import Level
from core.hierarchy.queries import NodeRef, node_by_id, nodes_by_ids
from core.hierarchy.tree import path_ids, subtree_bounds

NEARBY_M = 100.0
# Cells of 0.002° (≈222 m north–south, ≈184 m east–west at Bozhou's 34°N): a 100 m circle
# always lies within the 3×3 cells around its centre.
CELL_DEG = 0.002
# rapidfuzz's ratio (0–100) over the sorted sets of jieba search tokens: a case in the same 组
# must read alike; one within 100 m needs less, the place already says much. (On characters,
# "路灯坏了" and "杂物堆满楼道" scored 30 against 43 for a real pair; on tokens, 0 against 22+.)
SAME_GROUP_SCORE = 40.0
NEARBY_SCORE = 20.0
MAX_CANDIDATES = 3
# The newest open cases of a 组 looked at (a 组 has tens; this only bounds a pathological one).
GROUP_WINDOW = 200
UNRESOLVED = (State.open.value, State.accepted.value)
# Words that say nothing about which problem it is.
_STOP_WORDS = ("的 了 是 在 有 我 我们 你 他 她 很 都 也 就 和 吧 啊 呢 吗 呀 哦 嗯 这 那 "
               "这个 那个 一个 还 又 没 没有 请 帮 帮忙 一下 麻烦 谢谢 你好 老师")
_STOP = frozenset(_STOP_WORDS.split())


def geo_cell(latitude: float, longitude: float) -> int:
    """The coarse cell of a point (one integer, indexed with the case's state)."""
    return _cell(math.floor((latitude + 90) / CELL_DEG), math.floor((longitude + 180) / CELL_DEG))


def _cell(i: int, j: int) -> int:
    return i * 1_000_000 + j


def _cells_around(latitude: float, longitude: float) -> list[int]:
    i = math.floor((latitude + 90) / CELL_DEG)
    j = math.floor((longitude + 180) / CELL_DEG)
    return [_cell(i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def tokens(text: str) -> list[str]:
    """The words of a report, cut once per text: a 组's open cases are compared with every
    new report there, so their cuts are kept (bounded; the list is never changed by callers)."""
    return _cut(text)


@functools.lru_cache(maxsize=50_000)
def _cut(text: str) -> list[str]:
    """The words of a report as jieba cuts them for search (下水道 also gives 下水, 水道),
    without punctuation and filler, sorted and once each."""
    import jieba  # loads its dictionary on first use, never at import time

    # jieba reports its dictionary loading on its own stderr handler, past our log format.
    jieba.setLogLevel(logging.WARNING)
    return sorted({w for w in jieba.lcut_for_search(text.lower())
                   if w.strip() and any(ch.isalnum() for ch in w) and w not in _STOP})


def warm_up() -> None:
    """Load jieba's dictionary now (about a second), so the first report does not wait."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()


def similarity(a: str, b: str) -> float:
    """How alike two reports read, 0–100 (rapidfuzz's ratio over their jieba token lists)."""
    return _score(tokens(a), tokens(b))


def _score(ta: list[str], tb: list[str]) -> float:
    from rapidfuzz import fuzz

    return float(fuzz.ratio(ta, tb)) if ta and tb else 0.0


def locate(case: Case, attachments: Sequence[object]) -> None:
    """Give a case the place of the first location sent with it (kept if it has one)."""
    if case.latitude is not None:
        return
    for a in attachments:
        lat, lon = getattr(a, "latitude", None), getattr(a, "longitude", None)
        if getattr(a, "kind", None) in (AttachmentKind.location, "location") \
                and lat is not None and lon is not None:
            case.latitude, case.longitude = float(lat), float(lon)
            case.geo_cell = geo_cell(case.latitude, case.longitude)
            case.maybe_dupes = None  # a place brings neighbours within 100 m: look again
            return


@dataclass(frozen=True)
class Candidate:
    """An open case a new report may be about (text: the case's own words, unmasked; the bot
    masks before showing them)."""

    id: int
    text: str
    score: float
    distance_m: float | None
    supporters: int


def group_of(session: Session, home: NodeRef,
             line: dict[int, NodeRef] | None = None) -> NodeRef:
    """The 组 a neighborhood belongs to (the neighborhood itself where there is none);
    `line`: its ancestors, when already read."""
    node = home
    while node.level is not Level.group and node.parent_id is not None:
        parent = (line or {}).get(node.parent_id) or node_by_id(session, node.parent_id)
        if parent.level in (Level.area, Level.village, Level.town, Level.district):
            break
        node = parent
    return node if node.level is Level.group else home


def _group_rows(session: Session, group: NodeRef) -> list[tuple[int, str, float | None,
                                                                float | None]]:
    low, high = subtree_bounds(group.path)
    return [(int(r[0]), str(r[1]), r[2], r[3])
            for r in session.execute(_group_stmt(), {"low": low, "high": high})]


@functools.cache
def _group_stmt() -> sa.Select[tuple[int, str, float | None, float | None]]:
    # Built once (core/db.py, "Statements built once"): every report runs it.
    return (sa.select(CASES.c.id, CASES.c.text, CASES.c.latitude, CASES.c.longitude)
            .where(CASES.c.state.in_(UNRESOLVED))
            .where(CASES.c.node_path >= sa.bindparam("low"),
                   CASES.c.node_path < sa.bindparam("high"))
            .order_by(CASES.c.id.desc()).limit(GROUP_WINDOW))


def _nearby_rows(session: Session, lat: float, lon: float) -> list[tuple[int, str, float | None,
                                                                         float | None]]:
    q = (sa.select(CASES.c.id, CASES.c.text, CASES.c.latitude, CASES.c.longitude)
         .where(CASES.c.geo_cell.in_(_cells_around(lat, lon)))
         .where(CASES.c.state.in_(UNRESOLVED))
         .order_by(CASES.c.id.desc()).limit(GROUP_WINDOW))
    return [(int(r[0]), str(r[1]), r[2], r[3]) for r in session.execute(q)]


def candidates(session: Session, *, case_id: int, limit: int = MAX_CANDIDATES) -> list[Candidate]:
    """Open cases the given new case is probably about: within 100 m, or in the same 组 and
    reading alike; best first, never one the resident already follows."""
    case = session.get(Case, case_id) or ops.load(session, case_id, lock=False)
    return find(session, case=case, limit=limit)


def first_look(case: Case, session: Session, line: Sequence[NodeRef] = ()) -> None:
    """Keep the likely originals of a case about to be written (open_case): its cards and
    the resident's offer read them, no later card searches again (`line`: its home and
    ancestors, when the caller has read them)."""
    found = find(session, case=case, line=line)
    case.maybe_dupes = ",".join(str(c.id) for c in found)
    # Open and counted now: the card and the offer of this transaction read them here.
    memo(session, _FOUND)[id(case)] = (case, found)


_FOUND = "dupes_found"  # id(case) → (case, its candidates), for first_look's transaction


def _found_here(session: Session, case: Case) -> list[Candidate] | None:
    got = memo(session, _FOUND).get(id(case))
    return got[1] if got is not None and got[0] is case else None


def find(session: Session, *, case: Case, limit: int = MAX_CANDIDATES,
         line: Sequence[NodeRef] = ()) -> list[Candidate]:
    """`candidates` for a case, written yet or not."""
    case_id = case.id
    known = {n.id: n for n in line}
    if case.home_node_id not in known:  # the home and its ancestors
        known = nodes_by_ids(session, path_ids(case.node_path))
    home = known.get(case.home_node_id) or node_by_id(session, case.home_node_id)
    group = group_of(session, home, known)
    Row = tuple[int, str, float | None, float | None]
    rows: dict[int, tuple[Row, float | None]] = {r[0]: (r, None)
                                                 for r in _group_rows(session, group)}
    here = (case.latitude, case.longitude) if case.latitude is not None \
        and case.longitude is not None else None
    if here is not None:
        for r in _nearby_rows(session, *here):
            if r[2] is not None and r[3] is not None:
                d = distance_m(here, (r[2], r[3]))
                if d <= NEARBY_M:
                    rows[r[0]] = (r, d)
    mine = set(session.execute(_mine_stmt(), {"person": case.resident_id, "ids": list(rows)})
               .scalars()) if rows else set()
    found: list[Candidate] = []
    own = tokens(case.text)
    for cid, (row, dist) in rows.items():
        if cid == case_id or cid in mine:
            continue
        score = _score(own, tokens(row[1]))
        if score >= (NEARBY_SCORE if dist is not None else SAME_GROUP_SCORE):
            found.append(Candidate(cid, row[1], score, dist, 0))
    found.sort(key=lambda c: (-c.score, c.distance_m or 0.0, -c.id))
    best = found[:limit]
    counts = supporters(session, [c.id for c in best])
    return [Candidate(c.id, c.text, c.score, c.distance_m, counts.get(c.id, 1)) for c in best]


def likely_originals(session: Session, cases: Sequence[Case]) -> dict[int, list[int]]:
    """The open cases each case's cards name as likely originals: looked up at its first card
    and kept on the case, less those that have ended since (one read for the whole batch)."""
    kept: dict[int, list[int]] = {}
    live: set[int] = set()
    for case in cases:
        if case.id is None or case.state not in UNRESOLVED:
            continue
        if case.maybe_dupes is None:  # a case from before the column: looked at once now
            first_look(case, session)
        here = _found_here(session, case)
        if here is not None:
            kept[case.id] = [c.id for c in here]
            live.update(kept[case.id])
            continue
        kept[case.id] = [int(x) for x in (case.maybe_dupes or "").split(",") if x]
    wanted = sorted({i for ids in kept.values() for i in ids} - live)
    if wanted:
        live.update(session.execute(sa.select(CASES.c.id).where(
            CASES.c.id.in_(wanted), CASES.c.state.in_(UNRESOLVED))).scalars())
    return {cid: [i for i in ids if i in live] for cid, ids in kept.items()}


def offered(session: Session, *, case: Case) -> list[Candidate]:
    """What to offer the resident after a report: the likely originals its card already
    found (no second search of the 组), else a fresh look."""
    assert case.id is not None
    if case.maybe_dupes is None:
        return candidates(session, case_id=case.id)
    here = _found_here(session, case)
    if here is not None:
        return here
    ids = likely_originals(session, [case]).get(case.id, [])
    if not ids:
        return []
    texts = {int(i): str(t) for i, t in session.execute(
        sa.select(CASES.c.id, CASES.c.text).where(CASES.c.id.in_(ids)))}
    counts = supporters(session, ids)
    return [Candidate(i, texts[i], 0.0, None, counts.get(i, 1)) for i in ids if i in texts]


@functools.cache
def _mine_stmt() -> sa.Select[tuple[int]]:
    return sa.select(FOLLOWERS.c.case_id).where(
        FOLLOWERS.c.person_id == sa.bindparam("person"),
        FOLLOWERS.c.case_id.in_(sa.bindparam("ids", expanding=True)))


@functools.cache
def _supporters_stmt() -> sa.Select[tuple[int, int]]:
    return (sa.select(FOLLOWERS.c.case_id, sa.func.count())
            .where(FOLLOWERS.c.case_id.in_(sa.bindparam("ids", expanding=True)))
            .group_by(FOLLOWERS.c.case_id))


def supporters(session: Session, case_ids: list[int]) -> dict[int, int]:
    """How many residents follow each case (N 人反映)."""
    if not case_ids:
        return {}
    out = ops.known_followers(session, case_ids)  # a case opened or joined here: no read
    rest = [cid for cid in case_ids if cid not in out]
    if rest:
        out.update({int(cid): int(n)
                    for cid, n in session.execute(_supporters_stmt(), {"ids": rest})})
    return {cid: n for cid, n in out.items() if n}


def is_candidate(session: Session, *, case_id: int, into_case_id: int) -> bool:
    """Whether a case may be offered for the given report: same 组, or within 100 m."""
    case = ops.load(session, case_id, lock=False)
    other = ops.load(session, into_case_id, lock=False)
    group = group_of(session, node_by_id(session, case.home_node_id))
    if group.contains(other.node_path):
        return True
    if None in (case.latitude, case.longitude, other.latitude, other.longitude):
        return False
    return distance_m((case.latitude or 0.0, case.longitude or 0.0),
                      (other.latitude or 0.0, other.longitude or 0.0)) <= NEARBY_M


def support(session: Session, *, clock: Clock, case_id: int, into_case_id: int,
            person_id: int, via: str | None = None) -> Case:
    """"是这件事": fold the resident's new report into an open case they chose from the
    offer; they follow it, its holder gets the words and files as an addition."""
    now = clock.now()
    case = ops.load(session, case_id)
    if case.resident_id != person_id:
        raise PermissionDenied("dupe_not_yours", case=case_id)
    if case.state != State.open.value or case.merged_into_id is not None:
        raise Conflict("dupe_report_moved_on", case=case_id)
    if into_case_id == case_id or not is_candidate(session, case_id=case_id,
                                                   into_case_id=into_case_id):
        raise PermissionDenied("dupe_not_offered", case=into_case_id)
    target = ops.load(session, into_case_id)
    if target.state not in UNRESOLVED:
        raise Conflict("dupe_target_ended", case=into_case_id, own=case_id)
    _fold(session, case, target, now=now, person_id=person_id, via=via)
    events.publish(session)
    return target


def _fold(session: Session, case: Case, target: Case, *, now: datetime, person_id: int,
          via: str | None) -> None:
    assert case.id is not None and target.id is not None
    ops.follow(session, target.id, [person_id])
    files = list(session.execute(sa.select(Attachment).where(
        ATTACHMENTS.c.case_id == case.id)).scalars())
    target.updated_at = now
    added = ops.record(session, target, kind=EventKind.added, at=now, actor_id=person_id,
                       via=via, note=case.text,
                       detail={"attachments": len(files), "me_too": case.id})
    session.flush()
    for f in files:  # copies: the merged case keeps its own record whole
        session.add(Attachment(
            case_id=target.id, event_id=added.id, kind=f.kind, purpose="addition",
            platform=f.platform, file_ref=f.file_ref, mime=f.mime, size=f.size,
            caption=f.caption, latitude=f.latitude, longitude=f.longitude, added_by=person_id,
            created_at=now, fetch_status=f.fetch_status, stored_ref=f.stored_ref,
            thumb_ref=f.thumb_ref, fetch_error=f.fetch_error, exif_latitude=f.exif_latitude,
            exif_longitude=f.exif_longitude))
    before = case.state
    case.state = State.merged.value
    case.merged_into_id = target.id
    case.close_reason = "merged"
    ops.stop_clock(case)
    ops.touch(case, now)
    ops.record(session, case, kind=EventKind.merged, at=now, actor_id=person_id,
               from_state=before, role=case.holder_role, via=via,
               detail={"into": target.id, "me_too": True})
    ops.record(session, target, kind=EventKind.merged_in, at=now, actor_id=person_id,
               role=target.holder_role, via=via, detail={"from": case.id, "me_too": True})
