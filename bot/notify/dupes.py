"""What a card says of duplicates: N 人反映 once neighbours joined, 可能重复：#12, and the holder's
one-tap merge buttons (core/cases/duplicates.py finds them)."""

from __future__ import annotations

from bot.flows.texts import t
from bot.notify.context import Env, Recipient
from core.cases.model import Case
from core.outbox import Action

__all__ = ["dupes_note", "merge_actions", "supporters_note"]


def dupes_note(env: Env, case: Case, r: Recipient) -> str:
    """N 人反映 when neighbours joined the case, and 可能重复：#12 for the holder to merge."""
    out = supporters_note(env, case, r)
    maybe = _maybe_dupes(env, case)
    if maybe:
        out += "\n" + t(r.lang, "n_maybe_dupe", cases="、".join(f"#{c}" for c in maybe))
    return out


def supporters_note(env: Env, case: Case, r: Recipient) -> str:
    """（N人反映） once neighbours joined the case."""
    from core.cases import duplicates

    assert case.id is not None
    if case.id not in env.supporters:  # every case of the batch in one read
        ids = sorted(set(env.cases) - set(env.supporters) | {case.id})
        found = duplicates.supporters(env.session, ids)
        env.supporters.update({i: found.get(i, 1) for i in ids})
    n = env.supporters[case.id]
    return t(r.lang, "n_supporters", n=n) if n > 1 else ""


def _maybe_dupes(env: Env, case: Case) -> list[int]:
    from core.cases import duplicates

    if case.state not in duplicates.UNRESOLVED or case.id is None:
        return []
    if case.id not in env.maybe_dupes:
        # This case, and every case of the batch whose list is kept, in one read; a case never
        # looked at is searched only when its card is written.
        todo = [case] + [c for i, c in env.cases.items() if i != case.id
                         and i not in env.maybe_dupes and c.maybe_dupes is not None]
        found = duplicates.likely_originals(env.session, todo)
        env.maybe_dupes.update({c.id: found.get(c.id, []) for c in todo if c.id is not None})
    return env.maybe_dupes.get(case.id, [])


def merge_actions(env: Env, case: Case, r: Recipient) -> tuple[Action, ...]:
    """One tap to merge this case into each likely original (the holder's card only)."""
    assert case.id is not None
    if not r.private or r.person_id is None or r.person_id != case.holder_id:
        return ()
    return tuple(Action("merge", t(r.lang, "n_btn_merge_into", case=c), case.id, case.version,
                        (("arg", str(c)),)) for c in _maybe_dupes(env, case))
