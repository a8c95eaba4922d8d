"""Leaders at work: button presses on case cards, replies to a card, and the prompts between."""

from __future__ import annotations

import re
from typing import Any

from bot.flows.context import Ctx
from bot.flows.join import to_attachment
from bot.flows.refusals import sentence
from bot.flows.report import ask_category, choose_category, report, split_off
from bot.flows.types import Button, Press
from core import conversations
from core.cases import actions, closing, verify
from core.cases.services import add_to_case, view
from core.errors import DomainError, InvalidInput

CASE_REF = re.compile(r"(?:工单)?#(\d{1,9})(?!\d)")  # nine digits fit an INTEGER id
# Presses that need words first: the prompt to show and the state to wait in.
PROMPTS = {
    "reply": ("prompt_reply", "await_reply"),
    "escalate": ("prompt_escalate", "await_escalate"),
    "ask_more": ("prompt_ask_more", "await_ask_more"),
    "add": ("prompt_add", "await_add"),
    "reject": ("prompt_reject", "await_reject"),
    "send_back": ("prompt_send_back", "await_send_back"),
}


def press(ctx: Ctx, p: Press) -> None:
    """A button on a case card or a resident's message."""
    assert ctx.actor is not None
    who, cid, ver, via = ctx.actor.person.id, p.case_id, p.version, ctx.via
    common: dict[str, Any] = {"clock": ctx.clock, "case_id": cid, "person_id": who,
                              "version": ver, "via": via}
    if p.action in PROMPTS:
        _check_current(ctx, p)
        prompt, state = PROMPTS[p.action]
        i = ctx.inbound
        conversations.set_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                user_id=i.sender_id, state=state,
                                data={"case_id": cid, "version": ver}, now=ctx.clock.now())
        ctx.ack(ctx.t(prompt))
        ctx.say(ctx.t(prompt), case_id=cid)
    elif p.action == "accept":
        actions.accept(ctx.session, **common)
        _done(ctx, "accepted", cid)
    elif p.action == "resolve":
        case = actions.resolve(ctx.session, **common)
        _done(ctx, "resolved_to_verify" if case.stage == "verify" else "resolved", cid)
    elif p.action == "verify_ok":
        verify.approve(ctx.session, **common)
        _done(ctx, "verified_done", cid)
    elif p.action == "whistle":
        _whistle(ctx, p, common)
    elif p.action == "confirm":
        rating = int(p.arg or "0") if (p.arg or "").isdigit() else 0
        closing.confirm(ctx.session, rating=rating, **common)
        _done(ctx, "rated", cid)  # the actor's own thanks: the notifier tells the others
    elif p.action == "not_fixed":
        closing.not_fixed(ctx.session, **common)
        _done(ctx, "reopened", cid)
    elif p.action == "canned":
        _canned_prompt(ctx, p)
    elif p.action == "canned_send":
        text = _canned_text(ctx, p)
        i = ctx.inbound
        conversations.clear_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                  user_id=i.sender_id)
        actions.reply(ctx.session, text=text, **common)
        _done(ctx, "replied", cid)
    elif p.action == "category":
        choose_category(ctx, cid, p.arg)
    elif p.action == "new_case":
        split_off(ctx)
    elif p.action == "merge":
        into = int(p.arg) if p.arg and p.arg.isdigit() else 0
        actions.merge(ctx.session, into_case_id=into, **common)
        _done(ctx, "merged_done", cid)
    else:
        ctx.ack(ctx.t("invalid", detail="这个按钮已失效"))


def _canned_text(ctx: Ctx, p: Press) -> str:
    """The 常用答复 a button stands for: its category's answer number `arg`."""
    from core.cases.model import Case
    from core.hierarchy.import_categories import split_canned
    from core.hierarchy.model import Category

    case = ctx.session.get(Case, p.case_id)
    cat = ctx.session.get(Category, case.category_id) if case and case.category_id else None
    answers = split_canned(cat.canned if cat else None)
    k = int(p.arg) if p.arg is not None and p.arg.isdigit() else -1
    if not 0 <= k < len(answers):
        raise InvalidInput("canned_gone")
    return answers[k]


def _canned_prompt(ctx: Ctx, p: Press) -> None:
    """A 常用答复 pressed: the reply prompt with its text, to send as is or to replace by
    typing (the prompt waits as for 答复居民)."""
    _check_current(ctx, p)
    text = _canned_text(ctx, p)
    i = ctx.inbound
    conversations.set_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                            user_id=i.sender_id, state="await_reply",
                            data={"case_id": p.case_id, "version": p.version},
                            now=ctx.clock.now())
    ctx.ack(ctx.t("canned_btn_send"))
    ctx.say(ctx.t("canned_prompt", text=text), case_id=p.case_id, buttons=(
        Button(ctx.t("canned_btn_send"), "canned_send", p.case_id, p.version, arg=p.arg),))


def _check_current(ctx: Ctx, p: Press) -> None:
    """Refuse a stale press before asking for words that could not be used."""
    from core.cases import ops

    case = ops.load(ctx.session, p.case_id, lock=False)
    ops.check_version(ctx.session, case, p.version)


def _whistle(ctx: Ctx, p: Press, common: dict[str, Any]) -> None:
    from bot.flows.report import category_names
    from core.cases.model import Case

    case = ctx.session.get(Case, p.case_id)
    category = None
    names = category_names(ctx)
    if p.arg is not None:
        category = names[int(p.arg)] if p.arg.isdigit() and int(p.arg) < len(names) else None
    if case is not None and case.category_id is None and category is None:
        ctx.ack(ctx.t("pick_whistle_category"))
        ctx.say(ctx.t("pick_whistle_category"), case_id=p.case_id, buttons=tuple(
            Button(n, "whistle", p.case_id, p.version, arg=str(k)) for k, n in enumerate(names)))
        return
    actions.whistle(ctx.session, category=category, **common)
    _done(ctx, "whistled", p.case_id)


def _done(ctx: Ctx, key: str, case_id: int) -> None:
    """The actor's own answer; everyone else, and every copy of the case's card, hear of it
    from the notifier (bot/notify), whatever path the change took."""
    if key == "replied" and not _resident_reachable(ctx, case_id):
        key = "replied_unreachable"  # never "已把答复转给居民" when nobody can give it to them
    ctx.ack(ctx.t(key, case=case_id))
    ctx.say(ctx.t(key, case=case_id), case_id=case_id)


def _resident_reachable(ctx: Ctx, case_id: int) -> bool:
    from core.cases.model import Case
    from core.cases.unreachable import reachable_anywhere

    case = ctx.session.get(Case, case_id)
    return case is None or reachable_anywhere(ctx.session, person_id=case.resident_id)


def pending_step(ctx: Ctx, state: str, data: dict[str, int]) -> bool:
    """The words a prompt waited for; False when the message is not for it (the rule every
    prompt follows is in core/conversations.py)."""
    i = ctx.inbound
    assert ctx.actor is not None
    if i.command == "cancel":
        conversations.clear_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                  user_id=i.sender_id)
        ctx.say(ctx.t("cancelled"))
        return True
    if state not in {s for _, s in PROMPTS.values()} or i.command:
        return False
    cid, ver = int(data["case_id"]), int(data["version"])
    words = i.text or " ".join(m.recognition or "" for m in i.media).strip()
    atts = tuple(to_attachment(m, i.platform) for m in i.media)
    conversations.clear_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                              user_id=i.sender_id)
    common: dict[str, Any] = {"clock": ctx.clock, "case_id": cid,
                              "person_id": ctx.actor.person.id, "version": ver, "via": ctx.via}
    if state == "await_reply":
        actions.reply(ctx.session, text=words or _media_note(i.media), **common)
        _done(ctx, "replied", cid)
    elif state == "await_escalate":
        actions.escalate(ctx.session, reason=words, **common)
        _done(ctx, "escalated", cid)
    elif state == "await_ask_more":
        actions.ask_more(ctx.session, question=words, **common)
        _done(ctx, "asked_more", cid)
    elif state == "await_reject":
        actions.reject(ctx.session, reason=words, **common)
        _done(ctx, "done", cid)
    elif state == "await_send_back":
        verify.send_back(ctx.session, reason=words, **common)
        _done(ctx, "sent_back_done", cid)
    elif state == "await_add":
        _add_or_report(ctx, cid, words, atts)
    return True


def _add_or_report(ctx: Ctx, case_id: int, words: str, atts: tuple[Any, ...]) -> None:
    """A resident's addition, or, when the case can no longer take it, a report of its own."""
    assert ctx.actor is not None
    try:
        with ctx.session.begin_nested():
            add_to_case(ctx.session, clock=ctx.clock, case_id=case_id,
                        person_id=ctx.actor.person.id, text=words, attachments=atts,
                        via=ctx.via)
    except DomainError as exc:
        if not ctx.actor.residences() or not (words.strip() or atts):
            raise
        ctx.say(ctx.t("add_refiled", reason=sentence(exc, ctx.lang).rstrip("。.")))
        report(ctx)
        return
    ctx.say(ctx.t("added", case=case_id), case_id=case_id)


def _media_note(media: tuple[object, ...]) -> str:
    return "（见图片/语音）" if media else ""


def case_of_reply(ctx: Ctx) -> int | None:
    """Which case a reply is about: the replied-to bot message names it (工单#12)."""
    i = ctx.inbound
    if i.reply_to_text:
        m = CASE_REF.search(i.reply_to_text)
        if m:
            return int(m.group(1))
    if i.text:
        m = CASE_REF.match(i.text.strip())
        if m and not i.chat_is_private:
            return int(m.group(1))
    return None


def reply_to_card(ctx: Ctx, case_id: int) -> None:
    """A leader answered by replying to a case card: that is the answer to the resident."""
    from core.cases.model import State

    assert ctx.actor is not None
    i = ctx.inbound
    now = ctx.clock.now()
    v = view(ctx.session, case_id=case_id, now=now)
    if ctx.actor.person.id in _followers(ctx, case_id):
        add_to_case(ctx.session, clock=ctx.clock, case_id=case_id, person_id=ctx.actor.person.id,
                    text=i.text, attachments=[to_attachment(m, i.platform) for m in i.media],
                    via=ctx.via)
        ctx.say(ctx.t("added", case=case_id), case_id=case_id)
        return
    text = i.text or _media_note(i.media)
    if v.state == State.accepted and not i.text and i.media:
        # A photo alone on an accepted case is the after-photo of the fix.
        actions.resolve(ctx.session, clock=ctx.clock, case_id=case_id,
                        person_id=ctx.actor.person.id, version=v.version,
                        after_photos=tuple(to_attachment(m, i.platform) for m in i.media),
                        via=ctx.via)
        _done(ctx, "resolved", case_id)
        return
    actions.reply(ctx.session, clock=ctx.clock, case_id=case_id, person_id=ctx.actor.person.id,
                  version=v.version, text=text, via=ctx.via)
    _done(ctx, "replied", case_id)


def _followers(ctx: Ctx, case_id: int) -> list[int]:
    from core.cases import ops

    return ops.followers(ctx.session, case_id)


__all__ = ["ask_category", "case_of_reply", "pending_step", "press", "reply_to_card"]
