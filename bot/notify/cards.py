"""One live card per case per chat: after a state-changing event every copy is brought up to
date, each in its reader's language and masking level.

- the current holder's copy: what happened, by whom and when, and the live buttons for the
  case's state (made for its current version, so a press on it is never stale);
- a former holder's copy: where the case went ("已转交组长 李四 10:42"), no buttons;
- a tier chat's copy: the same news masked (not everyone in a group is on the case), no buttons.

A copy not yet sent (its outbox row still waits) is rewritten in place; sent ones get a
`card_update` row addressed to their recipient per platform holding copies (a 邻长 with the
card on Telegram and in the web chat gets two), whose transport edits that recipient's copies
on its platform (core/deliveries.py `card_messages`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from bot.flows.texts import t
from bot.notify import render as R
from bot.notify.context import CARD_ROW_KINDS, Env, Recipient
from bot.notify.dupes import supporters_note
from bot.notify.messages import covering_note, gone_note
from core.cases.model import ACTIVE_STATES, Case, CaseEvent, State
from core.deliveries import CARD_UPDATE
from core.outbox import OUT, RETRYABLE, Action, Draft
from core.privacy import mask_text


def copy_for(env: Env, e: CaseEvent, case: Case, r: Recipient) -> tuple[str, tuple[Action, ...]]:
    """The text and buttons of one recipient's copy of the card after event `e`."""
    lang, tz = r.lang, env.tz(case)
    assert case.id is not None
    hm = R.clock_time(e.at, tz)
    title = R.title(lang, case)
    holder = r.person_id is not None and r.person_id == case.holder_id
    if r.private and not holder and State(case.state) in ACTIVE_STATES:
        return t(lang, "n_card_moved", title=title, role=R.role_label(lang, case.holder_role),
                 name=env.name(case.holder_id), hm=hm,
                 state=R.state_label(lang, case.state)), ()
    text = t(lang, "n_card_now", title=title, verb=t(lang, f"n_verb_{e.kind}"),
             who=env.name(e.actor_id) or t(lang, "n_system"), hm=hm,
             state=R.state_label(lang, case.state), role=R.role_label(lang, case.holder_role),
             name=env.name(case.holder_id))
    address = env.addresses.get(case.id)
    if address and holder:
        text += t(lang, "n_card_where", address=address)
    text += supporters_note(env, case, r)
    if not r.private:
        return mask_text(text), ()
    return (text + covering_note(env, case, r) + gone_note(env, case, r),
            env.holder_actions(lang, case) if holder else ())


def refresh(env: Env, e: CaseEvent, *, fresh: set[Recipient], now: datetime) -> list[Draft]:
    """Bring every copy of the case's card up to date after `e` (`fresh`: recipients whose
    card this batch has just written, already current)."""
    case = env.cases[e.case_id]
    drafts: list[Draft] = []
    fresh_keys = {(r.person_id, r.binding_id) for r in fresh}
    for r in sorted(env.card_holders.get(e.case_id, set()),
                    key=lambda x: (x.person_id or 0, x.binding_id or 0)):
        if (r.person_id, r.binding_id) in fresh_keys:
            continue
        text, actions = copy_for(env, e, case, r)
        rewrite_waiting(env, case, r, text, actions, now)
        # One row per platform holding copies (each platform's transport edits its own
        # copies); none delivered yet: one row, whichever platform takes it.
        assert case.id is not None
        held = env.card_platforms.get((case.id, r.person_id, r.binding_id), set())
        platforms: list[str | None] = list(sorted(held)) or [None]
        for platform in platforms:
            drafts.append(Draft(
                text=text, kind=CARD_UPDATE, person_id=r.person_id,
                chat_binding_id=r.binding_id, case_id=case.id, actions=actions,
                options={"card": True}, platform=platform,
                dedupe_key=f"e{e.id}:card:{r.key}" + (f":{platform}" if platform else "")))
    return drafts


def rewrite_waiting(env: Env, case: Case, r: Recipient, text: str,
                    actions: tuple[Action, ...], now: datetime) -> None:
    """A card still waiting in the outbox goes out as the case is now, not as it was."""
    who = (OUT.c.person_id == r.person_id if r.person_id is not None
           else OUT.c.chat_binding_id == r.binding_id)
    env.session.execute(
        sa.update(OUT)
        .where(OUT.c.case_id == case.id, OUT.c.kind.in_(CARD_ROW_KINDS), who,
               OUT.c.status.in_(RETRYABLE), OUT.c.attempts == 0,
               sa.or_(OUT.c.claimed_until.is_(None), OUT.c.claimed_until <= now))
        .values(text=text, actions=[a.to_json() for a in actions]))


__all__ = ["copy_for", "refresh"]
