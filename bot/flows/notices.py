"""Notices in chat: `/notice` (where, who, what, 收到 or not, by when, the count, send), a
recipient's 收到 (button or typed), and the rule for a typed "1".

The draft lives in the conversation row like every multi-step flow (core/conversations.py):
`notice_draft` between buttons, `await_notice_text` / `await_notice_deadline` while a typed
answer is awaited (prompts: one answer each, dropped on a refusal).

A typed "收到" always confirms the notices waiting for the person. A typed "1" does too, unless
a case of theirs waits for the "fixed?" answer: then "1" could mean either, so nothing changes
and the person is told how to answer each (a wrong guess would close a case or drop a receipt).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from bot.flows.context import Ctx
from bot.flows.types import Button, Press
from core import conversations
from core.cases.model import Case, State
from core.cases.policy import CasePolicy
from core.errors import PermissionDenied
from core.hierarchy.model import Level, Role
from core.hierarchy.queries import NodeRef, node_by_code
from core.hierarchy.scope import notice_nodes
from core.notices import services

DRAFT, AWAIT_TEXT, AWAIT_DEADLINE = "notice_draft", "await_notice_text", "await_notice_deadline"
PROMPTS = frozenset({AWAIT_TEXT, AWAIT_DEADLINE})
PRESSES = frozenset({"notice_ok", "notice_node", "notice_aud", "notice_cf", "notice_dl",
                     "notice_go", "notice_x"})
CONFIRM_WORDS = frozenset({"收到", "已收到", "收到了", "收到！", "收到。", "1"})

A, G, NL, D, R = (Role.area_leader, Role.group_leader, Role.neighbor_leader, Role.department,
                  Role.resident)
# Audience choices: key → roles; the label key names them.
CHOICES: dict[str, tuple[tuple[Role, ...], str]] = {
    "n": ((NL,), "notice_role_neighbor_leader"),
    "g": ((G,), "notice_role_group_leader"),
    "a": ((A,), "notice_role_area_leader"),
    "l": ((A, G, NL), "btn_all_leaders"),
    "nr": ((NL, R), "btn_leaders_residents"),
    "r": ((R,), "notice_role_resident"),
    "d": ((D,), "notice_role_department"),
}
# Which choices make sense below a node of each level.
BELOW: dict[Level, tuple[str, ...]] = {
    Level.district: ("n", "g", "a", "l", "d", "nr", "r"),
    Level.town: ("n", "g", "a", "l", "d", "nr", "r"),
    Level.village: ("n", "g", "a", "l", "nr", "r"),
    Level.area: ("n", "g", "nr", "r"),
    Level.group: ("n", "nr", "r"),
    Level.neighborhood: ("r",),
}
DEADLINE_BUTTONS = ("h2", "h4", "h24", "t9")
_HOURS = re.compile(r"^\s*(\d{1,3})\s*(?:小时|个小时|h|hours?)\s*$", re.I)
_CLOCK = re.compile(r"^\s*(明天|今天)?\s*(\d{1,2})\s*[:：点]\s*(\d{0,2})\s*分?\s*$")
_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{2})\s*$")


def _me(ctx: Ctx) -> int:
    """The dialogue's buttons carry their sender's person id: a copy pressed by anyone else
    finds no draft of theirs (and the web chat wants a positive id)."""
    assert ctx.actor is not None
    return ctx.actor.person.id


def _key(ctx: Ctx) -> dict[str, Any]:
    i = ctx.inbound
    return {"platform": i.platform, "chat_id": i.chat_id, "user_id": i.sender_id}


def _set(ctx: Ctx, state: str, data: dict[str, Any]) -> None:
    conversations.set_state(ctx.session, **_key(ctx), state=state, data=data,
                            now=ctx.clock.now())


def _clear(ctx: Ctx) -> None:
    conversations.clear_state(ctx.session, **_key(ctx))


def _draft(ctx: Ctx) -> dict[str, Any] | None:
    conv = conversations.get_state(ctx.session, **_key(ctx), now=ctx.clock.now())
    if conv is None or conv.state not in (DRAFT, *PROMPTS):
        return None
    return dict(conv.data)


def start(ctx: Ctx) -> None:
    """/notice [node code]: where to send it (asked only when the sender has a choice)."""
    assert ctx.actor is not None
    nodes = notice_nodes(ctx.actor)
    if ctx.inbound.args:
        node = node_by_code(ctx.session, ctx.inbound.args[0])
        services.may_send(who=ctx.actor, node=node)
        nodes = [node]
    if not nodes:
        raise PermissionDenied("notice_not_allowed")
    if len(nodes) > 1:
        _set(ctx, DRAFT, {"nodes": [n.code for n in nodes[:8]]})
        ctx.say(ctx.t("notice_pick_node"), buttons=tuple(
            Button(n.name, "notice_node", _me(ctx), arg=str(k)) for k, n in enumerate(nodes[:8])))
        return
    _ask_audience(ctx, nodes[0])


def _ask_audience(ctx: Ctx, node: NodeRef) -> None:
    _set(ctx, DRAFT, {"node": node.code})
    ctx.say(ctx.t("notice_pick_audience", node=node.name), buttons=tuple(
        Button(ctx.t(CHOICES[k][1]), "notice_aud", _me(ctx), arg=k)
        for k in BELOW.get(node.level, ())))


def press(ctx: Ctx, p: Press) -> None:
    """A button of a notice or of the /notice dialogue."""
    assert ctx.actor is not None
    if p.action == "notice_ok":
        _confirm(ctx, [p.case_id])
        return
    data = _draft(ctx) if p.case_id == _me(ctx) else None
    if data is None or (p.action != "notice_node" and "node" not in data):
        ctx.ack(ctx.t("notice_draft_gone"))
        ctx.say(ctx.t("notice_draft_gone"))
        return
    if p.action == "notice_node":
        codes = data.get("nodes") or []
        k = int(p.arg) if p.arg is not None and p.arg.isdigit() else -1
        if not 0 <= k < len(codes):
            ctx.say(ctx.t("notice_draft_gone"))
            return
        node = node_by_code(ctx.session, codes[k])
        services.may_send(who=ctx.actor, node=node)
        ctx.ack(node.name)
        _ask_audience(ctx, node)
    elif p.action == "notice_aud":
        if p.arg not in CHOICES:
            ctx.say(ctx.t("notice_draft_gone"))
            return
        data["aud"] = p.arg
        _set(ctx, AWAIT_TEXT, data)
        ctx.ack(ctx.t(CHOICES[p.arg][1]))
        ctx.say(ctx.t("notice_ask_text"))
    elif p.action == "notice_cf" and "text" in data:
        data["confirm"] = p.arg == "y"
        if data["confirm"]:
            _set(ctx, AWAIT_DEADLINE, data)
            ctx.ack(ctx.t("btn_yes"))
            ctx.say(ctx.t("notice_ask_deadline"), buttons=_deadline_buttons(ctx))
        else:
            ctx.ack(ctx.t("btn_no"))
            _summary(ctx, data)
    elif p.action == "notice_dl" and data.get("confirm"):
        when = _button_deadline(ctx, p.arg or "")
        if when is None:
            ctx.say(ctx.t("notice_deadline_bad"))
            return
        _with_deadline(ctx, data, when)
    elif p.action == "notice_go" and data.get("ready"):
        _send(ctx, data)
    elif p.action == "notice_x":
        _clear(ctx)
        ctx.ack(ctx.t("cancelled"))
        ctx.say(ctx.t("cancelled"))
    else:
        ctx.ack(ctx.t("notice_draft_gone"))
        ctx.say(ctx.t("notice_draft_gone"))


def pending_step(ctx: Ctx, state: str, data: dict[str, Any]) -> bool:
    """The typed answer a /notice prompt waits for; False when the message is not for it."""
    i = ctx.inbound
    if state not in PROMPTS or i.command:
        return False
    data = dict(data)
    if state == AWAIT_TEXT:
        words = (i.text or "").strip()
        if not words:
            ctx.say(ctx.t("invalid", detail=ctx.t("notice_text_empty")))
            return True  # still waiting for the words
        if len(words) > services.MAX_TEXT:
            ctx.say(ctx.t("invalid", detail=ctx.t("notice_text_long", limit=services.MAX_TEXT)))
            return True
        data["text"] = words
        _set(ctx, DRAFT, data)
        ctx.say(ctx.t("notice_ask_confirm"), buttons=(
            Button(ctx.t("btn_yes"), "notice_cf", _me(ctx), arg="y"),
            Button(ctx.t("btn_no"), "notice_cf", _me(ctx), arg="n")))
        return True
    when = parse_deadline(i.text or "", now=ctx.clock.now(), tz=ctx.tz)
    if when is None:
        ctx.say(ctx.t("notice_deadline_bad"), buttons=_deadline_buttons(ctx))
        return True
    _with_deadline(ctx, data, when)
    return True


def _with_deadline(ctx: Ctx, data: dict[str, Any], when: datetime) -> None:
    if when <= ctx.clock.now():
        _set(ctx, AWAIT_DEADLINE, data)
        ctx.say(ctx.t("invalid", detail=ctx.t("notice_deadline_past")),
                buttons=_deadline_buttons(ctx))
        return
    data["deadline"] = when.isoformat()
    _summary(ctx, data)


def _deadline_buttons(ctx: Ctx) -> tuple[Button, ...]:
    return tuple(
        Button(ctx.t("btn_tomorrow", hm="9:00") if k == "t9" else
               ctx.t("btn_in_hours", n=k[1:]), "notice_dl", _me(ctx), arg=k)
        for k in DEADLINE_BUTTONS)


def _button_deadline(ctx: Ctx, arg: str) -> datetime | None:
    now = ctx.clock.now()
    if arg == "t9":
        local = now.astimezone(ctx.tz)
        return datetime.combine(local.date() + timedelta(days=1), time(9, 0), tzinfo=ctx.tz)
    if arg.startswith("h") and arg[1:].isdigit():
        return now + timedelta(hours=int(arg[1:]))
    return None


def parse_deadline(text: str, *, now: datetime, tz: Any) -> datetime | None:
    """A typed deadline: "3小时", "18:00", "明天9:00", "2026-12-02 18:00"; None when unclear."""
    text = text.strip()
    if m := _HOURS.match(text):
        hours = int(m.group(1))
        return now + timedelta(hours=hours) if 0 < hours <= 24 * 30 else None
    if m := _CLOCK.match(text):
        h, mi = int(m.group(2)), int(m.group(3) or 0)
        if h > 23 or mi > 59:
            return None
        day = now.astimezone(tz).date() + timedelta(days=1 if m.group(1) == "明天" else 0)
        return datetime.combine(day, time(h, mi), tzinfo=tz)
    if m := _DATE.match(text):
        try:
            return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)),
                            int(m.group(4)), int(m.group(5)), tzinfo=tz)
        except ValueError:
            return None
    return None


def _summary(ctx: Ctx, data: dict[str, Any]) -> None:
    """The count of recipients, and a last question before anything is sent."""
    node = node_by_code(ctx.session, data["node"])
    roles = CHOICES[data["aud"]][0]
    sent = services.preview(ctx.session, who=ctx.actor, node=node,
                            audience=[r.value for r in roles], by_sms=ctx.settings.sms_on)
    if not sent.recipients:
        _clear(ctx)
        who = ctx.t("notice_list_sep").join(ctx.t(f"notice_role_{r.value}") for r in roles)
        ctx.say(ctx.t("notice_nobody_here", node=node.name, who=who))
        return
    counts = ctx.t("notice_list_sep").join(
        f"{ctx.t(f'notice_role_{role}')}{n}" for role, n in sent.by_role.items())
    relay = ctx.t("notice_summary_relay", n=sent.relay_households) \
        if sent.relay_households else ""
    if data.get("confirm"):
        dl = data.get("deadline")
        line = ctx.t("notice_summary_confirm", deadline=datetime.fromisoformat(dl).astimezone(
            ctx.tz).strftime("%m-%d %H:%M")) if dl else ctx.t("notice_summary_confirm_open")
    else:
        line = ""
    text = str(data["text"])
    data["ready"] = True
    _set(ctx, DRAFT, data)
    ctx.say(ctx.t("notice_summary", node=node.name, counts=counts, total=sent.recipients,
                  relay=relay, excerpt=text[:60] + ("…" if len(text) > 60 else ""),
                  confirm_line=line),
            buttons=(Button(ctx.t("btn_send"), "notice_go", _me(ctx)),
                     Button(ctx.t("btn_cancel"), "notice_x", _me(ctx))))


def _send(ctx: Ctx, data: dict[str, Any]) -> None:
    node = node_by_code(ctx.session, data["node"])
    dl = data.get("deadline")
    _clear(ctx)
    sent = services.send(
        ctx.session, who=ctx.actor, node=node,
        audience=[r.value for r in CHOICES[data["aud"]][0]], text=str(data.get("text") or ""),
        confirm=bool(data.get("confirm")), deadline=datetime.fromisoformat(dl) if dl else None,
        now=ctx.clock.now(), reping=ctx.settings.notice_reping,
        relay_window=ctx.settings.notice_relay_window,
        policy=CasePolicy.from_settings(ctx.settings), by_sms=ctx.settings.sms_on)
    ctx.ack(ctx.t("notice_sent", total=sent.recipients))
    ctx.say(ctx.t("notice_sent", total=sent.recipients))


def _confirm(ctx: Ctx, notice_ids: list[int]) -> None:
    assert ctx.actor is not None
    fresh = False
    for nid in notice_ids:
        fresh = services.confirm(ctx.session, notice_id=nid, person_id=ctx.actor.person.id,
                                 via=ctx.via, now=ctx.clock.now()) or fresh
    key = "notice_confirmed" if fresh else "notice_already"
    ctx.ack(ctx.t(key))
    ctx.say(ctx.t(key))


def typed_receipt(ctx: Ctx) -> bool:
    """A typed "收到" (or "1") for the notices waiting for the person; False when the words are
    not that (they go their usual way)."""
    i = ctx.inbound
    words = (i.text or "").strip()
    if ctx.actor is None or i.command or i.media or not i.chat_is_private \
            or words not in CONFIRM_WORDS:
        return False
    waiting = services.awaiting(ctx.session, person_id=ctx.actor.person.id,
                                now=ctx.clock.now())
    if not waiting:
        return False
    if words == "1":
        cases: sa.Table = Case.__table__  # type: ignore[attr-defined]
        asked = ctx.session.execute(sa.select(cases.c.id).where(
            cases.c.resident_id == ctx.actor.person.id,
            cases.c.state == State.resolved.value).limit(1)).scalar_one_or_none()
        if asked is not None:
            ctx.say(ctx.t("notice_which", case=asked))
            return True
    _confirm(ctx, waiting)
    return True


__all__ = ["PRESSES", "parse_deadline", "pending_step", "press", "start",
           "typed_receipt"]
