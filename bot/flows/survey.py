"""满意度测评 in chat: a resident presses one of the five buttons on the survey's message;
the first press records the score, a later one changes it (core/notices/survey.py)."""

from __future__ import annotations

from bot.flows.context import Ctx
from bot.flows.types import Press
from core.notices import survey

PRESSES = frozenset({"survey_rate"})


def press(ctx: Ctx, p: Press) -> None:
    """A score for the resident's 邻长; the survey's id travels in the button's case field."""
    assert ctx.actor is not None
    score = int(p.arg) if p.arg is not None and p.arg.isdigit() else 0
    done = survey.answer(ctx.session, notice_id=p.case_id, person_id=ctx.actor.person.id,
                         score=score, now=ctx.clock.now())
    key = {"new": "survey_thanks", "changed": "survey_changed", "same": "survey_same"}[done]
    ctx.ack(ctx.t(key, score=score))
    ctx.say(ctx.t(key, score=score))


__all__ = ["PRESSES", "press"]
