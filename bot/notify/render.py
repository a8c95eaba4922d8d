"""The words and buttons of notifications, in one recipient's language (bot/flows/texts.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.flows.texts import t
from core.cases.model import Case, Stage, State
from core.hierarchy.model import Role
from core.outbox import Action
from core.privacy import clip

SNIPPET = 40
CANNED_LABEL = 12  # a 常用答复 button shows its start; the prompt shows it whole


def title(lang: str, case: Case) -> str:
    # Never cut through a number: group chats mask phone numbers only when whole.
    return t(lang, "n_title", case=case.id, snippet=clip(" ".join(case.text.split()), SNIPPET))


def role_label(lang: str, role: str | None) -> str:
    if role is None:
        return t(lang, "n_role_none")
    try:
        return t(lang, f"n_role_{Role(role).value}")
    except ValueError:
        return role


def state_label(lang: str, state: str) -> str:
    return t(lang, f"n_state_{State(state).value}")


def local_time(lang: str, at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return t(lang, "n_when", month=f"{local.month:02d}", day=f"{local.day:02d}",
             hm=local.strftime("%H:%M"))


def clock_time(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


def span(lang: str, delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes == 0:
        return t(lang, "n_under_minute")  # never "还剩0分钟" while there is still time
    if minutes < 60:
        return t(lang, "n_minutes", m=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return t(lang, "n_hours_minutes", h=hours, m=minutes) if minutes else t(
            lang, "n_hours", h=hours)
    days, hours = divmod(hours, 24)
    return t(lang, "n_days_hours", d=days, h=hours) if hours else t(lang, "n_days", d=days)


def deadline_phrase(lang: str, case: Case, tz: ZoneInfo) -> str:
    if case.deadline_at is None:
        return ""
    verb = t(lang, f"n_due_{Stage(case.stage).value}") if case.stage else ""
    return t(lang, "n_deadline", when=local_time(lang, case.deadline_at, tz), verb=verb)


def missed(lang: str, stage: str | None) -> str:
    return t(lang, f"n_missed_{stage}") if stage in ("reply", "handle", "department") else ""


def _a(lang: str, case: Case, action: str, key: str, **extra: object) -> Action:
    assert case.id is not None
    return Action(action, t(lang, key), case.id, case.version, tuple(extra.items()))


def holder_actions(lang: str, case: Case, *, canned: tuple[str, ...] = ()) -> \
        tuple[Action, ...]:
    """The live buttons of the holder's card in the case's current state: everything the
    holder may do next (a resolve from open accepts it too), made for its current version;
    `canned`: the category's 常用答复, one button each (pressed: a reply prompt with it)."""
    out: list[Action] = []
    state = State(case.state)
    if case.stage == Stage.verify.value:  # 核查: the verifier's two buttons, nothing else
        return (_a(lang, case, "verify_ok", "n_btn_verify_ok"),
                _a(lang, case, "send_back", "n_btn_send_back"))
    if state is State.open:
        key = "n_btn_report_in" if case.holder_role == Role.department.value else "n_btn_accept"
        out += [_a(lang, case, "accept", key), _a(lang, case, "reply", "n_btn_reply"),
                _a(lang, case, "resolve", "n_btn_resolve")]
    elif state is State.accepted:
        out += [_a(lang, case, "resolve", "n_btn_resolve"),
                _a(lang, case, "reply", "n_btn_reply"),
                _a(lang, case, "ask_more", "n_btn_ask_more")]
    if state in (State.open, State.accepted):
        assert case.id is not None
        out += [Action("canned", "💬" + clip(text, CANNED_LABEL), case.id, case.version,
                       (("arg", str(i)),)) for i, text in enumerate(canned)]
        out.append(_a(lang, case, "escalate", "n_btn_escalate"))
        if case.holder_role in (Role.secretary.value, Role.admin.value):
            out.append(_a(lang, case, "whistle", "n_btn_whistle"))
    return tuple(out)


def resident_actions(lang: str, case: Case) -> tuple[Action, ...]:
    assert case.id is not None
    if case.state == State.resolved.value:
        stars = tuple(Action("confirm", "★" * n, case.id, case.version, (("rating", n),))
                      for n in range(5, 0, -1))
        return (*stars, _a(lang, case, "not_fixed", "n_btn_not_fixed"))
    if case.state in (State.open.value, State.accepted.value):
        return (_a(lang, case, "add", "n_btn_add"),)
    return ()


def stars(rating: int) -> str:
    return "★" * rating + "☆" * (5 - rating)
