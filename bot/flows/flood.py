"""Flood control: a resident sending dozens of messages a minute is slowed down politely and
loses nothing.

Up to `FLOOD_PER_MINUTE` (default 20) messages a minute each get their usual answer. Past it,
while the resident has a case open to add to, every further message still goes onto that case
(its timeline keeps every word and attachment), but the bot stops answering each one: the first
message over the limit gets one notice ("您发送得太快了…") and its holder one "居民补充" note as
usual; the rest are added silently until the minute has passed. Messages are counted per person
in the shared inbound log (core/inbound.py), so every worker process sees the same count.
Emergencies (fire, fights …) are never slowed down."""

from __future__ import annotations

from datetime import timedelta

from bot.flows.context import Ctx
from bot.flows.join import to_attachment
from bot.flows.report import EMERGENCY
from core import inbound as inbound_log
from core.cases.services import add_to_case, case_to_append_to

WINDOW = timedelta(minutes=1)
NOTICE = {"zh": "您发送得太快了，请稍等片刻，您说的内容都已记下。",
          "en": "You are sending messages very fast; please wait a moment. Everything you "
                "said has been noted."}


def slowed_down(ctx: Ctx) -> bool:
    """Handle a resident's report message quietly when they are over the limit; False when the
    usual report flow should take it."""
    assert ctx.actor is not None
    i = ctx.inbound
    if i.text and EMERGENCY.search(i.text):
        return False
    limit = ctx.settings.flood_per_minute
    sent = inbound_log.recent_from(ctx.session, platform=i.platform, sender_id=i.sender_id,
                                   since=ctx.clock.now() - WINDOW)  # this message included
    if sent <= limit:
        return False
    resident = ctx.actor.person.id
    case_id = case_to_append_to(ctx.session, clock=ctx.clock, settings=ctx.settings,
                                resident_id=resident)
    if case_id is None:
        return False  # nothing to add to: the report flow opens a case (and answers)
    first = sent == limit + 1
    add_to_case(ctx.session, clock=ctx.clock, case_id=case_id, person_id=resident,
                text=i.text or "", attachments=[to_attachment(m, i.platform) for m in i.media],
                via=i.platform, notify=first)
    if first:
        ctx.say(NOTICE.get(ctx.lang, NOTICE["zh"]), case_id=case_id)
    return True
