"""Several reminders for one person in one batch become one digest message."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.flows.texts import t
from core.outbox import Action, Draft

DIGEST_MAX_LINES = 20
DIGEST_MAX_CASES_WITH_BUTTONS = 8


@dataclass(frozen=True)
class Notice:
    """One thing to tell one person about one event; several for a person become a digest."""

    person_id: int
    case_id: int
    event_id: int
    kind: str
    text: str  # the whole message when sent alone
    line: str  # its line in a digest
    lang: str = "zh"
    actions: tuple[Action, ...] = ()

    def draft(self) -> Draft:
        return Draft(text=self.text, kind=self.kind, person_id=self.person_id,
                     case_id=self.case_id, actions=self.actions,
                     dedupe_key=f"e{self.event_id}:p{self.person_id}")


def digest_key(person_id: int, notices: Sequence[Notice]) -> str:
    parts = ",".join(sorted(str(n.event_id) for n in notices))
    return f"digest:p{person_id}:" + hashlib.sha1(parts.encode()).hexdigest()


def coalesce(notices: Iterable[Notice]) -> list[Draft]:
    """One message per person: a single notice as is, several as one digest."""
    by_person: dict[int, list[Notice]] = defaultdict(list)
    for n in notices:
        by_person[n.person_id].append(n)
    drafts: list[Draft] = []
    for person_id, items in by_person.items():
        if len(items) == 1:
            drafts.append(items[0].draft())
            continue
        items.sort(key=lambda n: (n.case_id, n.event_id))
        lang = items[0].lang
        lines = [f"{i}. {n.line}" for i, n in enumerate(items[:DIGEST_MAX_LINES], 1)]
        if len(items) > DIGEST_MAX_LINES:
            lines.append(t(lang, "n_digest_more", n=len(items) - DIGEST_MAX_LINES))
        actions = tuple(
            Action(a.action, f"#{n.case_id} {a.label}", a.case_id, a.version, a.extra)
            for n in items[:DIGEST_MAX_CASES_WITH_BUTTONS] for a in n.actions[:2]
        )
        drafts.append(Draft(
            text=t(lang, "n_digest", n=len(items), lines="\n".join(lines)),
            kind="digest", person_id=person_id, actions=actions,
            dedupe_key=digest_key(person_id, items),
        ))
    return drafts
