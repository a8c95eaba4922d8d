"""The "是不是这件事？" offer after a report, and the resident's answer to it."""

from __future__ import annotations

from bot.flows.context import Ctx
from bot.flows.types import Button, Press
from core.cases import duplicates
from core.cases.model import Case
from core.privacy import clip, mask_text

PRESSES = {"dupe_pick", "dupe_none"}
SUMMARY = 16


def summary(text: str) -> str:
    """A candidate as a button shows it: a few words, phone numbers and addresses masked
    (another resident's report)."""
    return mask_text(clip(" ".join(text.split()), SUMMARY))


def offer(ctx: Ctx, case: Case) -> bool:
    """Offer the open cases the new report is probably about; False when there are none."""
    assert case.id is not None
    found = duplicates.offered(ctx.session, case=case)
    if not found:
        return False
    buttons = tuple(
        Button(ctx.t("dupe_choice", case=c.id, summary=summary(c.text), n=c.supporters),
               "dupe_pick", case.id, case.version, arg=str(c.id))
        for c in found)
    ctx.say(ctx.t("dupe_ask", case=case.id), case_id=case.id, buttons=(
        *buttons, Button(ctx.t("dupe_none_button"), "dupe_none", case.id, case.version)))
    return True


def press(ctx: Ctx, p: Press) -> None:
    """A candidate chosen (fold the report into it) or "不是，新问题" (it stays as filed)."""
    assert ctx.actor is not None
    me = ctx.actor.person.id
    if p.action == "dupe_none":
        case = ctx.session.get(Case, p.case_id)
        if case is None or case.resident_id != me:
            ctx.ack(ctx.t("dupe_not_yours"))
            ctx.say(ctx.t("dupe_not_yours"))
            return
        ctx.ack(ctx.t("dupe_kept", case=p.case_id))
        ctx.say(ctx.t("dupe_kept", case=p.case_id), case_id=p.case_id)
        if case.category_id is None:
            from bot.flows.report import ask_category

            ask_category(ctx, p.case_id, case.version)
        return
    into = int(p.arg) if p.arg and p.arg.isdigit() else 0
    target = duplicates.support(ctx.session, clock=ctx.clock, case_id=p.case_id,
                                into_case_id=into, person_id=me, via=ctx.via)
    assert target.id is not None
    n = duplicates.supporters(ctx.session, [target.id]).get(target.id, 1)
    ctx.ack(ctx.t("dupe_joined", case=target.id, n=n))
    ctx.say(ctx.t("dupe_joined", case=target.id, n=n), case_id=target.id)
