"""One inbound update, one transaction: deduplicate, run the flow, write what to send.

What a platform acknowledged with 200 is in the database (the update log), and everything
the flow wants said is in the outbox of the same transaction, or neither is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.flows import router
from bot.flows.context import Ctx
from bot.flows.refusals import reply as error_reply
from bot.flows.texts import t
from bot.flows.types import Inbound, Outbound
from core import conversations, deliveries
from core import inbound as inbound_log
from core.clock import Clock
from core.counters import Counters
from core.db import write_session
from core.errors import DomainError
from core.hierarchy.queries import Actor, actor_by_identity
from core.outbox import Action, Draft, enqueue_many

log = logging.getLogger(__name__)

def to_drafts(outs: list[Outbound], *, inbound: Inbound) -> list[Draft]:
    """Outbox rows for what a flow wants said (dedupe keys tie them to this update)."""
    drafts = []
    for n, o in enumerate(outs):
        options: dict[str, Any] = dict(o.options)
        for key, value in (("reply_to_message_id", o.reply_to_message_id),
                           ("request_contact", o.request_contact), ("document", o.document),
                           ("photo", o.photo), ("answer_press", o.answer_press)):
            if value:
                options[key] = value
        drafts.append(Draft(
            text=o.text, kind=o.kind,
            dedupe_key=f"in:{inbound.platform}:{inbound.update_id}:{n}",
            person_id=o.person_id, chat_binding_id=o.chat_binding_id,
            platform=o.platform if o.address else None, address=o.address,
            case_id=o.case_id, options=options or None,
            actions=tuple(
                Action(b.action, b.label, b.case_id, b.version,
                       (("arg", b.arg),) if b.arg is not None else ())
                for b in o.buttons
            ),
        ))
    return drafts


def run_flow(session: Session, *, inbound: Inbound, clock: Clock, settings: Any,
             drafts_of: Callable[[list[Outbound]], list[Draft]]) -> Actor | None:
    """Run the flow for one inbound message inside the caller's transaction and write what it
    says; a refusal undoes the flow's work and writes the refusal instead. Who wrote, as
    known before the flow ran."""
    who = actor_by_identity(session, inbound.platform, inbound.sender_id)
    ctx = Ctx(session=session, clock=clock, settings=settings, inbound=inbound, actor=who)
    # One savepoint holds the flow and its messages: a refusal or a crash undoes both.
    savepoint = session.begin_nested()
    try:
        router.handle(ctx)
        enqueue_many(session, drafts=drafts_of(ctx.out), now=clock.now())
    except DomainError as exc:
        savepoint.rollback()
        # The savepoint undid the flow's partial work; the person still gets an answer.
        ctx.out = []
        ctx.ack(error_reply(exc, ctx.lang))
        ctx.say(error_reply(exc, ctx.lang))
        _close_prompt(ctx)
        enqueue_many(session, drafts=drafts_of(ctx.out), now=clock.now())
        return who
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return who


def _close_prompt(ctx: Ctx) -> None:
    """Nobody stays in a prompt past a refusal: the rollback brought the prompt's state back,
    and waiting on would refuse each later message of theirs for a day; so it is dropped here,
    outside the undone savepoint, and the words that were not used go back to the person."""
    i = ctx.inbound
    if conversations.drop_prompt(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                 user_id=i.sender_id) is None:
        return
    words = (i.text or "").strip() if i.press is None and not i.command else ""
    ctx.say(ctx.t("prompt_closed_words", words=words[:500]) if words
            else ctx.t("prompt_closed"))


def process(engine: Engine, *, inbound: Inbound, payload: dict[str, Any], clock: Clock,
            settings: Any, counters: Counters | None = None) -> bool:
    """Store, deduplicate and handle one update; False when it was a platform's retry."""
    now = clock.now()
    inbound = inbound.without_nul()
    result = "handled"
    with write_session(engine) as session:
        rid = inbound_log.record(session, platform=inbound.platform,
                                 update_id=inbound.update_id, payload=payload, now=now,
                                 sender_id=inbound.sender_id, handled=True)
        if rid is None:
            if counters is not None:
                counters.update_in(inbound.platform, "duplicate")
            return False
        who: Actor | None = None
        try:
            who = run_flow(session, inbound=inbound, clock=clock, settings=settings,
                           drafts_of=lambda outs: to_drafts(outs, inbound=inbound))
        except Exception as exc:
            # Not understood or a bug: keep the update (for replay) and answer the platform 200,
            # so it is never retried forever; the person is told we are on it.
            log.exception("inbound %s/%s failed", inbound.platform, inbound.update_id)
            result = "failed"
            # A step that crashes would crash again on each answer: the prompt ends here too.
            conversations.drop_prompt(session, platform=inbound.platform,
                                      chat_id=inbound.chat_id, user_id=inbound.sender_id)
            inbound_log.finish(session, inbound_id=rid, now=now,
                               error=f"{type(exc).__name__}: {exc}")
            busy = Outbound(text=t("zh", "busy"), platform=inbound.platform,
                            address=inbound.chat_id)
            enqueue_many(session, drafts=to_drafts([busy], inbound=inbound), now=now)
        # Whoever writes can be reached again (after the flow: a join makes the identity),
        # and what was given up for want of a way to reach them goes out (bot/dispatcher).
        known = None if who is None or who.identity is None else (
            who.identity[0], who.person.id, who.identity[1])
        deliveries.reachable_again(session, platform=inbound.platform,
                                   external_id=inbound.sender_id, now=now, known=known)
    if counters is not None:
        counters.update_in(inbound.platform, result)
        counters.beat("in", inbound.platform, now)
    return True


def record_unparsed(engine: Engine, *, platform: str, update_id: str, payload: dict[str, Any],
                    now: datetime, error: str, counters: Counters | None = None) -> bool:
    """Keep an update we could not understand, so that nothing sent to us is lost."""
    if counters is not None:
        counters.update_in(platform, "ignored" if error.startswith("ignored") else "unparsed")
        counters.beat("in", platform, now)  # the platform reached us, whatever it sent
    with write_session(engine) as session:
        rid = inbound_log.record(session, platform=platform, update_id=update_id,
                                 payload=payload, now=now)
        if rid is None:
            return False
        inbound_log.finish(session, inbound_id=rid, now=now, error=error)
    log.warning("unparsed %s update %s: %s", platform, update_id, error)
    return True
