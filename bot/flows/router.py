"""Which flow takes an inbound message: one place that reads like the bot's table of contents."""

from __future__ import annotations

import dataclasses
import re

from bot.flows import (
    away,
    campaign,
    commands,
    duplicates,
    flood,
    join,
    leader,
    notices,
    report,
    survey,
)
from bot.flows.context import Ctx
from core import conversations
from core.hierarchy.invites import typed_code
from core.hierarchy.model import RESIDENT_ONLY_PROOFS, Person, Role
from core.hierarchy.queries import seen_people
from core.hierarchy.services import identity_proof
from core.hierarchy.tree import normalize_phone

LEADER_COMMANDS = {
    "cases": lambda ctx: commands.cases(ctx),
    "overdue": lambda ctx: commands.cases(ctx, overdue=True),
    "invite": commands.invite_cmd,
    "stats": commands.stats_cmd,
    "case": commands.case_cmd,
    "find": commands.find_cmd,
    "assign": commands.assign_cmd,
    "bind": commands.bind_cmd,
    "unbind": commands.unbind_cmd,
    "menu": commands.menu_cmd,
    "login": commands.login_cmd,
    "revoke": commands.revoke_cmd,
    "notice": notices.start,
    "campaign": campaign.checklist_cmd,
    "away": away.away_cmd,
    "back": away.back_cmd,
}
# `绑定 K3M9-X2AB`: a person invite typed where no link can be opened (WeChat, WeCom).
BIND_TEXT = re.compile(r"^\s*(?:绑定\s*|bind\s+)([A-Za-z0-9][A-Za-z0-9\s\-]{0,14})\s*$", re.I)
# Buttons a resident may press; an account bound by a typed number presses only these.
RESIDENT_PRESSES = {"confirm", "not_fixed", "new_case", "category", "add", "rate", "notice_ok",
                    "dupe_pick", "dupe_none", "survey_rate"}
BIND_PRESSES = {"bind_yes", "bind_no"}
# Typed words that ask for /mylz (WeChat has no slash habit).
MYLZ_WORDS = {"我的邻长", "邻长是谁", "我的邻长是谁"}


def _resident_only(ctx: Ctx) -> bool:
    """An account bound by a typed number acts as a resident, whatever else its person holds."""
    a, i = ctx.actor, ctx.inbound
    if a is None or all(r is Role.resident for r, _ in a.posts):
        return False
    if identity_proof(ctx.session, platform=i.platform,
                      external_id=i.sender_id) not in RESIDENT_ONLY_PROOFS:
        return False
    ctx.actor = dataclasses.replace(a, posts=tuple((r, n) for r, n in a.posts
                                                   if r is Role.resident))
    return True


def handle(ctx: Ctx) -> None:
    """Run the flow an inbound message calls for; what to send collects in ctx.out."""
    i = ctx.inbound
    if ctx.actor is not None and ctx.actor.language is not None:
        ctx.lang = ctx.actor.language
    elif ctx.actor is not None:
        person = ctx.session.get(Person, ctx.actor.person.id)
        ctx.lang = person.language if person else "zh"
    elif i.language and i.language.startswith("en"):
        ctx.lang = "en"

    if i.command == "start":
        join.start(ctx)
        return
    if i.contact_phone:
        join.shared_phone(ctx)
        return
    bind = BIND_TEXT.match(i.text or "") if i.chat_is_private and not i.media else None
    code = typed_code(bind.group(1)) if bind else None
    if bind:
        if code is None:
            ctx.say(ctx.t("bind_code_malformed"))
        else:
            join.join_by_code(ctx, code)
        return
    if i.command == "lang":
        _lang(ctx)
        return
    if i.command == "help":
        commands.help_cmd(ctx)
        return
    if ctx.actor is None:
        if i.chat_is_private and not i.command and not i.media and normalize_phone(i.text or ""):
            join.typed_phone(ctx, i.text or "")
        elif i.chat_is_private:
            join.keep_stranger_words(ctx)
        elif i.command:
            ctx.say(ctx.t("how_to_join"))
        return  # strangers' chatter in groups is not ours to answer

    resident_only = _resident_only(ctx)
    if i.press is not None:
        if i.press.action in BIND_PRESSES and not resident_only:
            join.decide(ctx, i.press)
        elif i.press.action in notices.PRESSES and (not resident_only
                                                    or i.press.action == "notice_ok"):
            notices.press(ctx, i.press)
        elif i.press.action in campaign.PRESSES and not resident_only:
            campaign.press(ctx, i.press)
        elif i.press.action in duplicates.PRESSES:
            duplicates.press(ctx, i.press)
        elif i.press.action in survey.PRESSES:
            survey.press(ctx, i.press)
        elif resident_only and i.press.action not in RESIDENT_PRESSES:
            ctx.ack(ctx.t("leader_needs_invite"))
            ctx.say(ctx.t("leader_needs_invite"))
        else:
            leader.press(ctx, i.press)
        return
    conv = conversations.get_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                   user_id=i.sender_id, now=ctx.clock.now())
    if conv is not None and conv.state == "await_import" and any(
        m.kind == "document" for m in i.media
    ):
        from bot.flows import admin_files

        admin_files.run_import(ctx)
        return
    # A prompt's answer (the rule for prompts: core/conversations.py).
    if conv is not None and conv.state.startswith("await_") and (
        campaign.pending_step(ctx, conv.state, conv.data)
        or leader.pending_step(ctx, conv.state, conv.data)
    ):
        return
    if conv is not None and conv.state in notices.PROMPTS and notices.pending_step(
        ctx, conv.state, conv.data
    ):
        return
    if notices.typed_receipt(ctx):  # "收到" / "1" to a notice (the rule: bot/flows/notices.py)
        return
    if not i.command and not i.media and (i.text or "").strip() in campaign.WORDS \
            and not resident_only:
        campaign.checklist_cmd(ctx)
        return
    if not i.command and not i.media and (i.text or "").strip() in MYLZ_WORDS:
        commands.mylz_cmd(ctx)
        return
    if i.command:
        if resident_only and i.command != "login" and (i.command in LEADER_COMMANDS
                                                        or i.command in ("import", "export")):
            ctx.say(ctx.t("leader_needs_invite"))
        else:
            _command(ctx)
        return
    case_id = None if resident_only else leader.case_of_reply(ctx)
    if case_id is not None:
        leader.reply_to_card(ctx, case_id)
        return
    if not i.chat_is_private:
        return  # group messages that are not replies to a card are people talking
    if ctx.actor.residences():
        if not flood.slowed_down(ctx):
            report.report(ctx)
    else:
        ctx.say(ctx.t("leader_needs_invite" if resident_only else "leader_free_text"))


def _command(ctx: Ctx) -> None:
    i = ctx.inbound
    name = i.command or ""
    if name == "my":
        report.my_cases(ctx)
    elif name == "mylz":
        commands.mylz_cmd(ctx)
    elif name == "report":
        commands.report_how(ctx)
    elif name == "cancel":
        # Whatever was in progress ends here (a /notice draft between its buttons too).
        conversations.clear_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                  user_id=i.sender_id)
        ctx.say(ctx.t("cancelled"))
    elif name in ("import", "export"):
        from bot.flows import admin_files

        admin_files.handle(ctx, name)
    elif name in LEADER_COMMANDS:
        LEADER_COMMANDS[name](ctx)
    else:
        ctx.say(ctx.t("unknown_command", command=name[:32]))


def _lang(ctx: Ctx) -> None:
    want = (ctx.inbound.args[0] if ctx.inbound.args else "").lower()
    lang = "en" if want.startswith("en") else "zh"
    person = ctx.person()
    if person is not None:
        person.language = lang
        seen_people(ctx.session).pop(person.id or 0, None)  # read as it is now
    ctx.lang = lang
    ctx.say(ctx.t("lang_set"))
