"""A few cases in every state for `linzhang demo`, so the chats and the dashboard are not empty.

The cases go through the real case services, on the real clock moved back: what the dashboard
shows is what those services would have recorded had people acted at those moments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.cases import actions, closing
from core.cases.model import Case
from core.cases.services import open_case
from core.cases.sweep import run_sweep
from core.clock import Clock, SystemClock
from core.db import write_session
from core.settings import Settings


@dataclass(frozen=True)
class AgoClock:
    """The base clock moved back by `ago` (seeding "earlier" actions)."""

    base: Clock
    ago: timedelta

    def now(self) -> datetime:
        return self.base.now() - self.ago


# (what the resident says, what happens to it); the first lines go to the first residents.
STORIES: list[tuple[str, str]] = [
    ("3号楼楼道灯坏了，晚上看不见路", "open"),
    ("小区门口的垃圾桶满了两天没人清", "accepted"),
    ("路边下水道井盖松动，踩上去会翻", "resolved"),
    ("单元门门禁坏了，外人随便进出", "closed"),
    ("楼下有人乱堆杂物，堵住了消防通道", "overdue"),
    ("6号楼前的路灯不亮", "merged"),
    ("帮我买一张火车票", "rejected"),
    ("广场舞音响太吵，晚上十点还在放", "overdue"),
]


@dataclass(frozen=True)
class DemoSignIn:
    label: str  # who they are in the story: 书记, 街道管理员, 区管理员
    person_id: int
    name: str


# (label, role, level of the node it is held on): the three people the demo signs in as.
SIGN_INS = (("社区书记", "secretary", "village"), ("街道管理员", "admin", "town"),
            ("区管理员", "admin", "district"))


def sign_ins(conn: sa.Connection) -> list[DemoSignIn]:
    """The 书记, the town admin and the district admin of the demo city, first by node code."""
    out = []
    for label, role, level in SIGN_INS:
        row = conn.execute(sa.text(
            "SELECT p.id, p.name FROM post x JOIN person p ON p.id = x.person_id"
            " JOIN node n ON n.id = x.node_id WHERE x.role = :r AND n.level = :l"
            " ORDER BY n.code, x.id LIMIT 1"), {"r": role, "l": level}).first()
        if row is not None:
            out.append(DemoSignIn(label, int(row[0]), row[1]))
    return out


def _residents(engine: Engine) -> list[int]:
    """Residents whose 邻 has a 邻长, spread over both villages (every other one)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE x.role = 'resident' AND EXISTS (SELECT 1 FROM post y WHERE"
            " y.node_id = x.node_id AND y.role = 'neighbor_leader') ORDER BY n.code DESC, x.id"
        )).scalars().all()
    return [int(r) for r in rows]


def _do(engine: Engine, fn: Callable[..., Case], **kw: object) -> Case:
    """Run one case service in its own transaction; the case, detached."""
    with write_session(engine) as s:
        case = fn(s, **kw)
        s.flush()
        s.expunge(case)
        return case


def seed(engine: Engine, *, settings: Settings, clock: Clock | None = None) -> dict[str, int]:
    """Open and move the demo cases; how many cases ended in each state."""
    base = clock or SystemClock()
    people = _residents(engine)
    if not people:
        return {}
    done: dict[str, int] = {}
    first_merged: Case | None = None
    for n, (text, fate) in enumerate(STORIES):
        resident = people[(n * 3) % len(people)]
        # Overdue cases were reported long enough ago for the sweep to escalate them; the
        # others a little while ago, within their deadline.
        back = (settings.reply_deadline * 1.5 + timedelta(seconds=30) if fate == "overdue"
                else timedelta(seconds=40 - n))
        at = AgoClock(base, back)
        case = _do(engine, open_case, clock=at, settings=settings, resident_id=resident,
                   text=text, via="web")
        later = AgoClock(base, back - timedelta(seconds=10))
        last = AgoClock(base, back - timedelta(seconds=20))

        def act(fn: Callable[..., Case], when: Clock, c: Case, **kw: object) -> Case:
            return _do(engine, fn, clock=when, case_id=c.id, person_id=c.holder_id,
                       version=c.version, via="web", **kw)

        if fate in ("accepted", "resolved", "closed"):
            case = act(actions.reply, later, case, text="收到，已安排人去看。")
        if fate in ("resolved", "closed"):
            case = act(actions.resolve, last, case)
        if fate == "closed":
            case = _do(engine, closing.confirm, clock=base, case_id=case.id,
                       person_id=case.resident_id, version=case.version, rating=5,
                       comment="很及时，谢谢邻长", via="web")
        if fate == "merged":
            first_merged = _do(engine, open_case, clock=later, settings=settings,
                               resident_id=people[(n * 3 + 1) % len(people)],
                               text="6号楼门口路灯坏了", via="web")
            case = act(actions.merge, base, case, into_case_id=first_merged.id)
        if fate == "rejected":
            case = act(actions.reject, later, case, reason="不属于社区事务，请拨打12306")
        key = "open" if fate == "overdue" else fate
        done[key] = done.get(key, 0) + 1
    if first_merged is not None:
        done["open"] = done.get("open", 0) + 1
    run_sweep(engine, clock=base)
    return done
