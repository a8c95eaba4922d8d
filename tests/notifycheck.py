"""The notifier's property, checked against the database: every event the rule table says
notifies a person yields exactly one outbox row for that person (alone, or folded into a
digest), whatever path recorded the event, and nobody else hears of it by that event."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.notify.rules import RULES
from core.cases.model import CaseEvent
from core.outbox import OUT

# Audiences named by the event itself (tier chats and superiors depend on the tree).
CHECKED = ("holder", "residents", "previous", "taken_from")


def expected(e: CaseEvent, resident_id: int) -> dict[int, bool]:
    """person → whether the rule lets it be digested, for the audiences in CHECKED."""
    detail: dict[str, Any] = e.detail or {}
    out: dict[int, bool] = {}
    for rule in RULES.get(e.kind, ()):
        if rule.audience not in CHECKED or detail.get("quiet"):
            continue
        if rule.message == "accepted" and detail.get("with_answer"):
            continue  # the resident hears the answer that came with it
        if rule.message == "nag" and detail.get("stage") == "confirm":
            continue
        if rule.message == "confirm_reminder" and detail.get("stage") != "confirm":
            continue
        who = {"holder": e.holder_id, "residents": resident_id,
               "previous": detail.get("from") if detail.get("from") != e.holder_id else None,
               "taken_from": detail.get("taken_from")}[rule.audience]
        if not isinstance(who, int):
            continue
        if who == e.actor_id and not (rule.card or rule.echo):
            continue
        out[who] = out.get(who, False) or rule.digest
    return out


def assert_one_row_per_recipient(engine: Engine) -> None:
    with Session(engine) as s:
        residents = dict(s.execute(sa.text("SELECT id, resident_id FROM cases")).all())
        events = list(s.execute(sa.select(CaseEvent).order_by(CaseEvent.id)).scalars())  # type: ignore[arg-type]
        rows = s.execute(sa.select(OUT.c.dedupe_key, OUT.c.person_id, OUT.c.kind,
                                   OUT.c.text)).all()
    by_key = {r.dedupe_key: r for r in rows}
    digests = [r for r in rows if r.dedupe_key.startswith("digest:")]
    for e in events:
        want = expected(e, residents[e.case_id])
        got = {r.person_id for k, r in by_key.items()
               if k.startswith(f"e{e.id}:p") and r.person_id is not None}
        for person, digestible in want.items():
            alone = f"e{e.id}:p{person}" in by_key
            folded = digestible and any(
                d.person_id == person and f"#{e.case_id}" in d.text for d in digests)
            # One row: its own (the key is unique), or its line in that batch's digest.
            assert alone or folded, f"{e.kind} #{e.id} told nothing to person {person}"
        # Beyond the checked audiences only a superior may hear of an event (a poor rating).
        extra = {p for p in got - set(want)
                 if by_key[f"e{e.id}:p{p}"].kind not in ("low_rating", "holder_unreachable",
                                                         "routed_info")}
        assert not extra, (e.kind, e.id, extra)
