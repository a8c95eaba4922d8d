"""What the case engine tells people: texts, buttons and the digest of several reminders."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.cases.model import Case, Stage, State
from core.hierarchy.model import Role
from core.hierarchy.tree import ROLE_LABEL_ZH
from core.outbox import Action, Draft
from core.privacy import clip

DIGEST_MAX_LINES = 20
DIGEST_MAX_CASES_WITH_BUTTONS = 8
SNIPPET = 40

STAGE_LABEL_ZH: dict[Stage, str] = {
    Stage.reply: "待答复", Stage.handle: "待办结", Stage.department: "待报到",
    Stage.confirm: "待确认",
}


@dataclass(frozen=True)
class Notice:
    """One thing to tell one person about one case; several for a person become a digest."""

    person_id: int
    case_id: int
    version: int
    kind: str
    text: str  # the whole message when sent alone
    line: str  # its line in a digest
    actions: tuple[Action, ...] = ()

    def draft(self) -> Draft:
        return Draft(
            text=self.text, kind=self.kind, person_id=self.person_id, case_id=self.case_id,
            actions=self.actions,
            dedupe_key=f"c{self.case_id}v{self.version}:{self.kind}:p{self.person_id}",
        )


def role_label(role: str | None) -> str:
    if role is None:
        return "无人"
    try:
        r = Role(role)
    except ValueError:
        return role
    return "乡镇(区县)办公室" if r is Role.admin else ROLE_LABEL_ZH[r]


def local_time(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%m月%d日 %H:%M")


def span(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


def title(case: Case) -> str:
    text = " ".join(case.text.split())
    # Never cut through a number: group chats mask phone numbers only when whole.
    return f"工单#{case.id}「{clip(text, SNIPPET)}」"


def _a(case: Case, action: str, label: str, **extra: object) -> Action:
    assert case.id is not None
    return Action(action, label, case.id, case.version, tuple(extra.items()))


def holder_actions(case: Case, *, may_whistle: bool = False) -> tuple[Action, ...]:
    """The buttons the holder of a case gets in its current state."""
    out: list[Action] = []
    if case.state == State.open:
        label = "报到受理" if case.holder_role == Role.department else "受理"
        out += [_a(case, "accept", label), _a(case, "reply", "答复居民")]
    elif case.state == State.accepted:
        out += [_a(case, "resolve", "已解决"), _a(case, "reply", "答复居民"),
                _a(case, "ask_more", "请居民补充")]
    if case.state in (State.open, State.accepted):
        out.append(_a(case, "escalate", "解决不了，转上级"))
        if may_whistle:
            out.append(_a(case, "whistle", "吹哨（转职能部门）"))
    return tuple(out)


def resident_actions(case: Case) -> tuple[Action, ...]:
    if case.state == State.resolved:
        stars = tuple(_a(case, "confirm", "★" * n, rating=n) for n in range(5, 0, -1))
        return (*stars, _a(case, "not_fixed", "没解决"))
    if case.state in (State.open, State.accepted):
        return (_a(case, "add", "补充情况"),)
    return ()


def deadline_phrase(case: Case, tz: ZoneInfo) -> str:
    if case.deadline_at is None:
        return ""
    verb = {
        Stage.reply.value: "答复", Stage.handle.value: "办结", Stage.department.value: "报到",
        Stage.confirm.value: "确认",
    }.get(case.stage or "", "处理")
    return f"请于{local_time(case.deadline_at, tz)}前{verb}"


def late_phrase(late_by: timedelta | None) -> str:
    return f"（系统延迟{span(late_by)}后处理，已超时）" if late_by else ""


def digest_key(person_id: int, notices: Sequence[Notice]) -> str:
    parts = ",".join(sorted(f"{n.case_id}v{n.version}:{n.kind}" for n in notices))
    return f"digest:p{person_id}:" + hashlib.sha1(parts.encode()).hexdigest()


def coalesce(notices: Iterable[Notice]) -> list[Draft]:
    """One message per person: a single notice as is, several as one digest."""
    by_person: dict[int, list[Notice]] = defaultdict(list)
    for n in notices:
        by_person[n.person_id].append(n)
    drafts: list[Draft] = []
    for person_id, items in by_person.items():
        if len(items) == 1:
            drafts.append(items[0].draft())
            continue
        items.sort(key=lambda n: n.case_id)
        lines = [f"{i}. {n.line}" for i, n in enumerate(items[:DIGEST_MAX_LINES], 1)]
        if len(items) > DIGEST_MAX_LINES:
            lines.append(f"……另有{len(items) - DIGEST_MAX_LINES}件，请在工单列表中查看")
        actions = tuple(
            Action(a.action, f"#{n.case_id} {a.label}", a.case_id, a.version, a.extra)
            for n in items[:DIGEST_MAX_CASES_WITH_BUTTONS] for a in n.actions[:2]
        )
        drafts.append(Draft(
            text=f"【督办汇总】您有{len(items)}件工单需要处理：\n" + "\n".join(lines),
            kind="digest", person_id=person_id, actions=actions,
            dedupe_key=digest_key(person_id, items),
        ))
    return drafts
