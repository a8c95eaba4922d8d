"""A domain error put into words: the sentence for its key (bot/flows/texts.py) in the
reader's language, for a chat reply, an HTTP body or a CLI line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.flows.texts import TEXTS, t
from core.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Phrase,
    StaleAction,
    from_json,
)

# How a chat reply frames the sentence, by kind: the most specific kind first.
FRAMES: list[tuple[type[DomainError], str]] = [
    (StaleAction, "stale"), (PermissionDenied, "denied"), (NotFound, "not_found"),
    (InvalidInput, "invalid"), (Conflict, "conflict"), (DomainError, "invalid"),
]


def words(value: Any, lang: str | None) -> Any:
    """A parameter as the sentence shows it: a Phrase in words, a list joined with 、 (a tuple
    with ；, for items that carry their own punctuation), an empty list as 无; else as is."""
    if isinstance(value, Phrase):
        return say(value.key, value.params, lang)
    if isinstance(value, list | tuple):
        if not value:
            return t(lang, "list_none")
        sep = t(lang, "list_sep" if isinstance(value, list) else "list_sep_long")
        return sep.join(str(words(v, lang)) for v in value)
    return value


def say(key: str, params: Any, lang: str | None) -> str:
    """The sentence for a message key with its parameters, in `lang` (zh when unknown)."""
    return t(lang, key, **{k: words(v, lang) for k, v in dict(params).items()})


def sentence(exc: DomainError, lang: str | None = "zh") -> str:
    """The bare sentence of a domain error (an HTTP body, a line of the CLI)."""
    return say(exc.key, exc.params, lang)


def phrase_words(lang: str | None = "zh") -> Any:
    """A function that puts a Phrase into words (an import row's reason)."""
    return lambda p: say(p.key, p.params, lang)


def event_note(kind: str, note: str | None, detail: Any, lang: str | None = "zh") -> str | None:
    """An event's note as a history shows it: a refused attempt says its refusal in words."""
    reason = detail.get("reason") if isinstance(detail, dict) else None
    if kind == "refused" and isinstance(reason, str) and reason in TEXTS["zh"]:
        return say(reason, from_json(detail.get("params") or {}), lang)
    if kind in ("routed", "rerouted") and isinstance(detail, dict):
        # The timeline names the rule that decided (its id is the event's data).
        return t(lang, "routed_note", rule=detail.get("rule", ""),
                 node=detail.get("node_name") or detail.get("node", ""))
    if kind == "escalated" and isinstance(detail, dict) and detail.get("auto") and not note:
        # The sweep records which deadline passed and how late it ran, not a sentence.
        from bot.notify.render import missed, span

        late = int(detail.get("late_by_s") or 0)
        return t(lang, "ev_auto_escalated", missed=missed(lang or "zh", detail.get("stage")),
                 late=t(lang, "n_late", span=span(lang or "zh", timedelta(seconds=late)))
                 if late else "")
    return note


def reply(exc: DomainError, lang: str | None) -> str:
    """The polite chat reply for a domain error."""
    for cls, frame in FRAMES:
        if isinstance(exc, cls):
            return t(lang, frame, detail=sentence(exc, lang))
    return t(lang, "busy")
