"""One function per message of the rule table: the words for one recipient of one event, in
their language; None when the event does not call for it (a nag in the confirm stage is the
residents', not the holder's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.flows.texts import t
from bot.notify import render as R
from bot.notify.context import Env, Recipient
from bot.notify.dupes import dupes_note, merge_actions
from core.cases.closing import LOW_RATING
from core.cases.model import Case, CaseEvent, EventKind, Stage
from core.clock import as_utc
from core.outbox import Action
from core.privacy import mask_address


@dataclass(frozen=True)
class Out:
    text: str
    line: str = ""
    actions: tuple[Action, ...] = ()
    # Photos sent with it, each its own row after it: (caption, media reference).
    photos: tuple[tuple[str, str], ...] = ()


Render = Callable[[Env, CaseEvent, Case, Recipient], "Out | None"]
MESSAGES: dict[str, Render] = {}


def message(fn: Render) -> Render:
    MESSAGES[fn.__name__.removeprefix("m_")] = fn
    return fn


# The outbox `kind` of each message (senders pick WeChat templates by it: replied, progress,
# accepted, resolved, confirm_reminder), where it is not the message's own name.
_KIND = {"receipt": "case_opened", "added": "case_added", "auto_closed_holder": "auto_closed"}


def outbox_kind(name: str, e: CaseEvent) -> str:
    detail = e.detail or {}
    if name == "moved_away":
        return "reassigned_away" if e.kind == EventKind.reassigned else "escalated_away"
    if name == "nag":
        return f"nag{detail.get('n', '')}"
    if name == "overdue":
        return f"overdue{detail.get('renewal', '')}"
    return _KIND.get(name, name)


def _holder(env: Env, lang: str, case: Case) -> str:
    return f"{R.role_label(lang, case.holder_role)}{env.name(case.holder_id)}"


def card_text(env: Env, e: CaseEvent, case: Case, r: Recipient) -> str:
    """The holder's (or a tier chat's) card as first sent."""
    lang, tz = r.lang, env.tz(case)
    assert case.id is not None
    address = env.addresses.get(case.id)
    address = address if r.private else mask_address(address)
    intro = {EventKind.opened: "n_intro_opened", EventKind.escalated: "n_intro_escalated",
             EventKind.whistled: "n_intro_whistled",
             EventKind.reassigned: "n_intro_reassigned",
             EventKind.verify_requested: "n_intro_verify"}.get(EventKind(e.kind), "n_intro_opened")
    detail = e.detail or {}
    if detail.get("away"):
        intro = "n_intro_covering"
    elif detail.get("back"):
        intro = "n_intro_back"
    why = t(lang, "n_card_why", reason=e.note) if e.note else ""
    if detail.get("auto"):
        intro = "n_intro_auto"
        late = int(detail.get("late_by_s") or 0)
        late_s = t(lang, "n_late", span=R.span(lang, timedelta(seconds=late))) if late else ""
        why = t(lang, "n_card_auto_why", missed=R.missed(lang, str(detail.get("stage"))),
                late=late_s)
    text = t(lang, "n_card", intro=t(lang, intro), title=R.title(lang, case),
             where=t(lang, "n_card_where", address=address) if address else "",
             role=R.role_label(lang, case.holder_role), name=env.name(case.holder_id),
             deadline=R.deadline_phrase(lang, case, tz), why=why)
    return (text + covering_note(env, case, r) + dupes_note(env, case, r)
            + gone_note(env, case, r))


def covering_note(env: Env, case: Case, r: Recipient) -> str:
    """A stand-in's card says whose case it is (代张三)."""
    if case.covering_for_id is None:
        return ""
    return t(r.lang, "n_card_covering", name=env.name(case.covering_for_id))


def gone_note(env: Env, case: Case, r: Recipient) -> str:
    """The holder's card says when the resident cannot be reached by chat."""
    if r.person_id is None or r.person_id != case.holder_id:
        return ""
    if case.resident_id in env.systems:
        return t(r.lang, "n_card_from_system", name=env.name(case.resident_id))
    if case.resident_id in env.no_chat:
        return t(r.lang, "n_card_resident_no_chat")
    if case.resident_id in env.unreachable:
        return t(r.lang, "n_card_resident_gone")
    return ""


@message
def m_card(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    actions = env.holder_actions(r.lang, case) if r.private else ()
    if actions:
        actions = (*actions, *merge_actions(env, case, r))
    if e.kind == EventKind.verify_requested and r.private:
        return verify_card(env, e, case, r, actions)
    return Out(card_text(env, e, case, r), actions=actions)


def verify_card(env: Env, e: CaseEvent, case: Case, r: Recipient,
                actions: tuple[Action, ...]) -> Out:
    """The verifier's card: who says it is solved, and the photos before and after."""
    from core.cases.verify import photos

    assert case.id is not None
    before, after = photos(env.session, case.id)
    lang = r.lang
    text = (card_text(env, e, case, r) + "\n"
            + t(lang, "n_verify_photos", before=len(before), after=len(after)))
    shots = ([(t(lang, "n_photo_before", case=case.id), ref) for ref in before[-2:]]
             + [(t(lang, "n_photo_after", case=case.id), ref) for ref in after[-2:]])
    return Out(text, actions=actions, photos=tuple(shots))


@message
def m_verified(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    who = (e.detail or {}).get("verifier")
    return Out(t(r.lang, "n_verified", title=R.title(r.lang, case),
                 name=env.name(who if isinstance(who, int) else None)))


@message
def m_sent_back(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    detail = e.detail or {}
    who = detail.get("from")
    return Out(t(r.lang, "n_sent_back", title=R.title(r.lang, case),
                 name=env.name(who if isinstance(who, int) else None), n=detail.get("n", 1),
                 reason=e.note or ""), actions=env.holder_actions(r.lang, case))


@message
def m_receipt(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out | None:
    if e.via == "phone" and r.person_id == case.resident_id \
            and (e.detail or {}).get("told") == "read_aloud":
        # A caller with neither a chat nor SMS hears the receipt from the hotline operator
        # (core/hotline.py `how_told`); by SMS, this row is the text.
        return None
    lang = r.lang
    from core.cases.ops import policy_of

    limit = policy_of(case).limit(Stage.reply)
    if limit is not None and limit.working and case.deadline_at is not None:
        # "2 working days" means nothing to a resident: the date and time it comes to.
        return Out(t(lang, "n_receipt_by", title=R.title(lang, case),
                     role=R.role_label(lang, case.holder_role), name=env.name(case.holder_id),
                     when=R.local_time(lang, case.deadline_at, env.tz(case))),
                   actions=R.resident_actions(lang, case))
    window = ops_window(case, Stage.reply)
    return Out(t(lang, "n_receipt", title=R.title(lang, case),
                 role=R.role_label(lang, case.holder_role), name=env.name(case.holder_id),
                 span=R.span(lang, window)), actions=R.resident_actions(lang, case))


def ops_window(case: Case, stage: Stage) -> timedelta:
    from core.cases.ops import policy_of

    return policy_of(case).duration(stage)


@message
def m_added(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out | None:
    if (e.detail or {}).get("quiet"):
        return None
    n = int((e.detail or {}).get("attachments") or 0)
    extra = t(r.lang, "n_added_extra", n=n) if n else ""
    return Out(t(r.lang, "n_added", title=R.title(r.lang, case), body=e.note or "", extra=extra),
               actions=env.holder_actions(r.lang, case))


@message
def m_accepted(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out | None:
    if (e.detail or {}).get("with_answer"):
        return None  # the answer that came with it says more (and WeChat counts messages)
    verb = "n_report_in_verb" if e.kind == EventKind.reported_in else "n_accept_verb"
    return Out(t(r.lang, "n_accepted", title=R.title(r.lang, case),
                 holder=_holder(env, r.lang, case), verb=t(r.lang, verb)),
               actions=R.resident_actions(r.lang, case))


@message
def m_replied(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_replied", holder=_holder(env, r.lang, case),
                 title=R.title(r.lang, case), body=e.note or ""),
               actions=R.resident_actions(r.lang, case))


@message
def m_asked_more(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_asked_more", holder=_holder(env, r.lang, case),
                 title=R.title(r.lang, case), body=e.note or ""),
               actions=R.resident_actions(r.lang, case))


@message
def m_resolved(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    lang = r.lang
    n = int((e.detail or {}).get("after_photos") or 0)
    return Out(t(lang, "n_resolved", title=R.title(lang, case), holder=_holder(env, lang, case),
                 photos=t(lang, "n_photos", n=n) if n else "", body=e.note or "",
                 window=R.span(lang, ops_window(case, Stage.confirm))),
               actions=R.resident_actions(lang, case))


@message
def m_taken_over(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_taken_over", title=R.title(r.lang, case),
                 holder=_holder(env, r.lang, case)))


@message
def m_progress(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_progress", title=R.title(r.lang, case),
                 role=R.role_label(r.lang, case.holder_role), name=env.name(case.holder_id)),
               actions=R.resident_actions(r.lang, case))


@message
def m_routed_info(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    """知会: someone a routing rule names hears where the case went and by which rule."""
    node = env.node(case.holder_node_id) if case.holder_node_id else None
    return Out(t(r.lang, "n_routed_info", title=R.title(r.lang, case),
                 rule=(e.detail or {}).get("rule", ""), place=node.name if node else "",
                 role=R.role_label(r.lang, case.holder_role), name=env.name(case.holder_id)))


@message
def m_moved_away(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    lang, detail = r.lang, e.detail or {}
    fields = {"title": R.title(lang, case), "role": R.role_label(lang, case.holder_role),
              "name": env.name(case.holder_id)}
    if e.kind == EventKind.reassigned and detail.get("away"):
        text = t(lang, "n_moved_to_stand_in", **fields)
    elif e.kind == EventKind.reassigned and detail.get("back"):
        text = t(lang, "n_moved_back", **fields)
    elif e.kind == EventKind.reassigned:
        text = t(lang, "n_reassigned_away", reason=e.note or "", **fields)
    elif detail.get("auto"):
        text = t(lang, "n_moved_away_auto", missed=R.missed(lang, str(detail.get("stage"))),
                 **fields)
    else:
        text = t(lang, "n_moved_away", **fields)
    return Out(text, line=text)


@message
def m_nag(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out | None:
    stage = str((e.detail or {}).get("stage"))
    if stage == Stage.confirm.value or case.deadline_at is None:
        return None
    lang, tz = r.lang, env.tz(case)
    left = R.span(lang, as_utc(case.deadline_at) - as_utc(e.at))
    title = R.title(lang, case)
    return Out(t(lang, "n_nag", title=title, left=left, deadline=R.deadline_phrase(lang, case, tz)),
               line=t(lang, "n_nag_line", title=title, left=left,
                      stage=t(lang, f"n_stage_{stage}")),
               actions=env.holder_actions(lang, case))


@message
def m_confirm_reminder(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out | None:
    if (e.detail or {}).get("stage") != Stage.confirm.value or case.deadline_at is None:
        return None
    left = R.span(r.lang, as_utc(case.deadline_at) - as_utc(e.at))
    return Out(t(r.lang, "n_confirm_reminder", title=R.title(r.lang, case), left=left),
               actions=R.resident_actions(r.lang, case))


@message
def m_overdue(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    lang = r.lang
    miss = R.missed(lang, str((e.detail or {}).get("stage")))
    title = R.title(lang, case)
    return Out(t(lang, "n_overdue", title=title, missed=miss,
                 deadline=R.deadline_phrase(lang, case, env.tz(case))),
               line=t(lang, "n_overdue_line", title=title, missed=miss),
               actions=env.holder_actions(lang, case))


@message
def m_auto_closed_holder(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    title = R.title(r.lang, case)
    return Out(t(r.lang, "n_auto_closed_holder", title=title),
               line=t(r.lang, "n_auto_closed_holder_line", title=title))


@message
def m_auto_closed(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_auto_closed", title=R.title(r.lang, case)))


def _said(lang: str, key: str, words: str | None) -> str:
    return t(lang, key, words=words) if words else ""


@message
def m_rated(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    rating = int((e.detail or {}).get("rating") or 0)
    return Out(t(r.lang, "n_rated", title=R.title(r.lang, case), stars=R.stars(rating),
                 said=_said(r.lang, "n_said", e.note)))


@message
def m_low_rating(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out | None:
    rating = int((e.detail or {}).get("rating") or 0)
    if rating > LOW_RATING:
        return None
    return Out(t(r.lang, "n_low_rating", title=R.title(r.lang, case),
                 role=R.role_label(r.lang, case.holder_role), stars=R.stars(rating),
                 said=_said(r.lang, "n_said", e.note)))


@message
def m_closed(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_closed", title=R.title(r.lang, case)))


@message
def m_reopened(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    lang = r.lang
    return Out(t(lang, "n_reopened", title=R.title(lang, case),
                 said=_said(lang, "n_reopened_said", e.note),
                 deadline=R.deadline_phrase(lang, case, env.tz(case))),
               actions=env.holder_actions(lang, case))


@message
def m_reopened_ack(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_reopened_ack", title=R.title(r.lang, case)),
               actions=R.resident_actions(r.lang, case))


@message
def m_merged(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    into = int((e.detail or {}).get("into") or 0)
    other = env.session.get(Case, into)
    return Out(t(r.lang, "n_merged", title=R.title(r.lang, case),
                 other=R.title(r.lang, other) if other else f"#{into}", into=into))


@message
def m_rejected(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_rejected", title=R.title(r.lang, case), reason=e.note or ""))


@message
def m_holder_unreachable(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    lang = r.lang
    deadline = R.deadline_phrase(lang, case, env.tz(case))
    title = R.title(lang, case)
    return Out(t(lang, "n_holder_unreachable", title=title,
                 role=R.role_label(lang, case.holder_role),
                 deadline=("，" if lang == "zh" else "; ") + deadline if deadline else ""),
               line=t(lang, "n_holder_unreachable_line", title=title))


@message
def m_resident_unreachable(env: Env, e: CaseEvent, case: Case, r: Recipient) -> Out:
    return Out(t(r.lang, "n_resident_unreachable", title=R.title(r.lang, case)))
