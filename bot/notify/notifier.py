"""The one notifier: case events in, outbox rows out, in the transaction of the change.

Whatever caused the events (a chat message, a dashboard click, an API call, the sweep), each is
looked up in the rule table (rules.py), worded for each recipient (messages.py) in their
language and masking level, and written keyed by event and recipient (`e{event}:p{person}`,
`e{event}:b{binding}`), so a second reply or a second addition is never mistaken for the
first. Reminders to one person in one batch become a digest; every copy of a case's card is
kept current (cards.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from bot.notify import cards
from bot.notify.context import CHAT_CARD, HOLDER_CARD, Env, Recipient
from bot.notify.digest import Notice, coalesce
from bot.notify.messages import MESSAGES, outbox_kind
from bot.notify.rules import LIVE, RULES, Rule
from core.cases.model import Case, CaseEvent
from core.outbox import Draft, enqueue_many
from core.privacy import mask_text


def audience(env: Env, rule: Rule, e: CaseEvent, case: Case) -> list[Recipient]:
    """The recipients a rule names for one event."""
    assert case.id is not None
    detail = e.detail or {}
    match rule.audience:
        case "residents":
            return [r for p in env.followers.get(case.id, []) if p not in env.systems
                    for r in env.person(p)]
        case "holder":
            return env.person(case.holder_id)
        case "previous":
            prev = detail.get("from")
            return env.person(prev) if isinstance(prev, int) and prev != case.holder_id else []
        case "taken_from":
            prev = detail.get("taken_from")
            return env.person(prev) if isinstance(prev, int) else []
        case "tier_chats":
            return env.tier_chats(case)
        case "informed":  # 知会: those a routing rule names (event detail "inform")
            ids = detail.get("inform")
            return [r for p in ids if isinstance(p, int) for r in env.person(p)] \
                if isinstance(ids, list) else []
        case "superior":
            target = env.superior(case)
            return env.person(target.person.id) if target is not None else []
    raise ValueError(f"unknown audience {rule.audience!r}")


def plan(env: Env, events: Sequence[CaseEvent]) -> tuple[list[Draft], list[Notice],
                                                        dict[int, set[Recipient]]]:
    """The messages of a batch of events: drafts to write as they are, notices to digest, and
    the recipients per case whose card the batch writes afresh."""
    drafts: list[Draft] = []
    notices: list[Notice] = []
    fresh: dict[int, set[Recipient]] = {}
    for e in events:
        case = env.cases.get(e.case_id)
        if case is None:
            continue
        assert e.id is not None and case.id is not None
        for rule in RULES.get(e.kind, ()):
            for r in audience(env, rule, e, case):
                if r.person_id is not None and r.person_id == e.actor_id \
                        and not (rule.card or rule.echo):
                    continue  # nobody is told of what they did themselves
                out = MESSAGES[rule.message](env, e, case, r)
                if out is None:
                    continue
                if rule.digest and r.person_id is not None:
                    notices.append(Notice(person_id=r.person_id, case_id=case.id,
                                          event_id=e.id, kind=outbox_kind(rule.message, e),
                                          text=out.text,
                                          line=out.line or out.text, lang=r.lang,
                                          actions=out.actions))
                    continue
                kind = ((HOLDER_CARD if r.private else CHAT_CARD) if rule.card
                        else outbox_kind(rule.message, e))
                if rule.card:
                    fresh.setdefault(case.id, set()).add(r)
                drafts.append(Draft(
                    text=out.text if r.private else mask_text(out.text), kind=kind,
                    person_id=r.person_id, chat_binding_id=r.binding_id, case_id=case.id,
                    actions=out.actions, options={"card": True} if rule.card else None,
                    dedupe_key=f"e{e.id}:{r.key}"))
                drafts.extend(Draft(
                    text=caption, kind="case_photo", person_id=r.person_id,
                    chat_binding_id=r.binding_id, case_id=case.id, options={"photo": ref},
                    dedupe_key=f"e{e.id}:{r.key}:photo{n}")
                    for n, (caption, ref) in enumerate(out.photos))
    return drafts, notices, fresh


def notify(session: Session, events: Sequence[CaseEvent]) -> int:
    """The notifier as an event subscriber (core/cases/events.py); outbox rows written."""
    env = Env(session)
    env.load(events)
    drafts, notices, fresh = plan(env, events)
    now = max(e.at for e in events)
    written = enqueue_many(session, drafts=drafts + coalesce(notices), now=now)
    # The last state-changing event of each case in the batch is what its cards show.
    last: dict[int, CaseEvent] = {}
    for e in events:
        if e.kind in LIVE and e.case_id in env.cases:
            last[e.case_id] = e
    updates = [d for case_id, e in last.items()
               for d in cards.refresh(env, e, fresh=fresh.get(case_id, set()), now=now)]
    return written + enqueue_many(session, drafts=updates, now=now)
