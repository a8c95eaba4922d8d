"""`linzhang demo`'s cases: weeks of history behind the map and the figures, and a handful of
live cases on the demo's short deadlines, so the chats and the dashboard are not empty.

The cases go through the real case services, on the real clock moved back: what the dashboard
shows is what those services would have recorded had people acted at those moments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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


# The live cases: (what the resident says, what happens to it, on the demo's short deadlines?).
# Only the overdue one runs on short deadlines: one escalation to watch, not a flood (the
# resident's own new reports get the short deadlines too).
STORIES: list[tuple[str, str, bool]] = [
    ("3号楼楼道灯坏了，晚上看不见路", "open", False),
    ("楼下有人乱堆杂物，堵住了消防通道", "overdue", True),
    ("小区门口的垃圾桶满了两天没人清", "accepted", False),
    ("路边下水道井盖松动，踩上去会翻", "resolved", False),
    ("5号楼外墙瓷砖掉了一块", "accepted", False),
    ("楼顶水箱盖子被风吹开了", "accepted", False),
]

# Weeks of history on the deployment's ordinary deadlines: what residents said, what they
# were answered. Every case is answered, fixed and (mostly) rated; a few answers came late.
HISTORY_TEXTS: list[tuple[str, str, str]] = [
    ("单元门门禁坏了，外人随便进出", "已联系物业更换门禁模块。", "公共设施"),
    ("6号楼前的路灯不亮", "已报修，电工已更换灯泡。", "公共设施"),
    ("广场舞音响太吵，晚上十点还在放", "已与领队沟通，约定九点前结束。", "纠纷调处"),
    ("楼道里有人给电动车充电", "已上门劝导，车已推到充电棚。", "安全隐患"),
    ("小区绿化带里堆了建筑垃圾", "已通知清运，今天下午拉走。", "环境保护"),
    ("自来水有点发黄", "已请水务检测，管道冲洗后正常。", "村（居）民事务"),
    ("邻居家漏水渗到我家天花板", "已协调两户，楼上已修好防水。", "纠纷调处"),
    ("楼下小摊占道经营，老人走路不方便", "已请城管劝离，摊位移到市场。", "无证无照经营"),
    ("独居老人几天没出门，担心出事", "已上门探望，老人身体无恙。", "社会保障"),
    ("垃圾分类点的桶坏了", "已换新桶。", "环境保护"),
    ("小区里有流浪狗追人", "已联系收容站带走。", "社会治安"),
    ("健身器材的螺丝松了", "已紧固并贴了提示。", "公共设施"),
    ("雨后路口积水很深", "已疏通雨水口。", "公共设施"),
]
HISTORY_DAYS = 35
HISTORY_PER_VILLAGE = 24


def demo_settings(*, database_url: str, deadline: str, **more: Any) -> Settings:
    """The demo's settings: deadlines shortened to `deadline` so that escalation shows within
    minutes, the person switcher on."""
    given: dict[str, Any] = dict(database_url=database_url, reply_deadline=deadline,
                                 handle_deadline=deadline, department_deadline=deadline,
                                 confirm_window=deadline, nag_before="30s", demo_mode=True)
    return Settings(**given, **more)


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


def _residents(engine: Engine) -> list[tuple[int, str]]:
    """(person, village code) of the residents whose 邻 has a 邻长, by village and 邻."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT x.person_id, n.code FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE x.role = 'resident' AND EXISTS (SELECT 1 FROM post y WHERE"
            " y.node_id = x.node_id AND y.role = 'neighbor_leader') ORDER BY n.code DESC, x.id"
        )).all()
    return [(int(pid), code[:12]) for pid, code in rows]


def _do(engine: Engine, fn: Callable[..., Case], **kw: object) -> Case:
    """Run one case service in its own transaction; the case, detached."""
    with write_session(engine) as s:
        case = fn(s, **kw)
        s.flush()
        s.expunge(case)
        return case


def _act(engine: Engine, fn: Callable[..., Case], when: Clock, c: Case,
         **kw: object) -> Case:
    return _do(engine, fn, clock=when, case_id=c.id, person_id=c.holder_id,
               version=c.version, via="web", **kw)


def _ordinary(settings: Settings) -> Settings:
    """The settings with the deployment's ordinary deadlines (history happened at that pace)."""
    keys = ("reply_deadline", "handle_deadline", "department_deadline", "confirm_window",
            "nag_before")
    return settings.model_copy(update={k: Settings.model_fields[k].default for k in keys})


def seed_history(engine: Engine, *, settings: Settings, clock: Clock) -> int:
    """Closed and rated cases over the past weeks in every village, on ordinary deadlines; the
    messages they sent then are not sent again now. How many cases."""
    people = _residents(engine)
    villages = sorted({v for _, v in people})
    ordinary = _ordinary(settings)
    made: list[int] = []
    for vi, village in enumerate(villages):
        here = [p for p, v in people if v == village]
        for k in range(HISTORY_PER_VILLAGE):
            # Spread over the weeks, a little busier lately; the later villages a little slower
            # to answer and a little less liked, so that the ranking says something.
            day = HISTORY_DAYS * (1 - (k + 0.5) / HISTORY_PER_VILLAGE) ** 1.3
            opened = timedelta(days=day, hours=(k * 5 + vi * 3) % 9)
            text, answer, category = HISTORY_TEXTS[(k + vi * 5) % len(HISTORY_TEXTS)]
            late = (k + vi) % (7 - 3 * vi if vi < 2 else 4) == 0
            answered = opened - (timedelta(hours=5) if late else timedelta(minutes=25 + k % 40))
            fixed = answered - timedelta(hours=6 + k % 30)
            case = _do(engine, open_case, clock=AgoClock(clock, opened), settings=ordinary,
                       resident_id=here[k % len(here)], text=text, category=category,
                       via="web")
            made.append(int(case.id or 0))
            if k % 17 == 16:
                _act(engine, actions.reject, AgoClock(clock, answered), case,
                     reason="不属于社区事务，已告知拨打12345")
                continue
            case = _act(engine, actions.reply, AgoClock(clock, answered), case, text=answer)
            case = _act(engine, actions.resolve, AgoClock(clock, fixed), case)
            if k % 9 == 4:
                continue  # never rated: closed when the confirm window ran out
            rating = 5 - (k % 5 == 1) - vi * (k % 3 == 0)
            _do(engine, closing.confirm, clock=AgoClock(clock, fixed - timedelta(hours=2)),
                case_id=case.id, person_id=case.resident_id, version=case.version,
                rating=max(1, rating), comment="谢谢邻长" if rating >= 4 else None, via="web")
    run_sweep(engine, clock=clock)  # the unrated ones close, their windows long over
    with write_session(engine) as s:
        # The history's chat messages were read weeks ago: only its figures remain.
        for i in range(0, len(made), 500):
            s.execute(sa.text("DELETE FROM outbox WHERE case_id IN :ids")
                      .bindparams(sa.bindparam("ids", expanding=True)),
                      {"ids": made[i:i + 500]})
    return len(made)


def seed(engine: Engine, *, settings: Settings, clock: Clock | None = None) -> dict[str, int]:
    """Weeks of history, then the live demo cases; how many cases ended in each state."""
    base = clock or SystemClock()
    people = [p for p, _ in _residents(engine)]
    if not people:
        return {}
    done: dict[str, int] = {"history": seed_history(engine, settings=settings, clock=base)}
    ordinary = _ordinary(settings)
    for n, (text, fate, short) in enumerate(STORIES):
        resident = people[(n * 7) % len(people)]
        # The overdue case was reported long enough ago for the sweep to escalate it; the
        # others a little while ago, within their deadline.
        back = (settings.reply_deadline * 1.5 + timedelta(seconds=30) if fate == "overdue"
                else timedelta(seconds=40 - n))
        case = _do(engine, open_case, clock=AgoClock(base, back),
                   settings=settings if short else ordinary, resident_id=resident, text=text,
                   via="web")
        later = AgoClock(base, back - timedelta(seconds=10))
        if fate in ("accepted", "resolved"):
            case = _act(engine, actions.reply, later, case, text="收到，已安排人去看。")
        if fate == "resolved":
            case = _act(engine, actions.resolve, AgoClock(base, back - timedelta(seconds=20)),
                        case)
        key = "open" if fate == "overdue" else fate
        done[key] = done.get(key, 0) + 1
    run_sweep(engine, clock=base)
    from zoneinfo import ZoneInfo

    from core.rollup.refresh import refresh

    # The town and district figures read daily rollups: have them from the first page view.
    refresh(engine, clock=base, tz=ZoneInfo(settings.timezone))
    return done
