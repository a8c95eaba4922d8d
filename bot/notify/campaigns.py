"""The notifier for campaign events: the rule table's audiences (rules.CAMPAIGN_RULES) read
from the campaign's items and counters, each worded in the recipient's language, written as
outbox rows keyed by event and recipient (`ce{event}:p{person}`); several reminders for one
person in one batch become one digest."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from bot.flows.campaign import shown_title
from bot.flows.texts import t
from core.campaigns.model import TOTAL, Campaign, CampaignEvent, Newcomer
from core.clock import as_utc
from core.hierarchy.model import Role
from core.hierarchy.queries import chain_for_node, node_by_id
from core.outbox import Action, Draft, enqueue_many

KIND = "campaign"
TZ = "Asia/Shanghai"
BATCH = 5000


@dataclass(frozen=True)
class Said:
    person_id: int
    text: str
    line: str
    actions: tuple[Action, ...] = ()


def _when(c: Campaign) -> str:
    return as_utc(c.deadline_at).astimezone(ZoneInfo(c.policy.get("timezone") or TZ)) \
        .strftime("%m-%d %H:%M")


def open_button(lang: str, campaign_id: int, label_key: str = "cmp_open") -> Action:
    return Action("cmp_list", t(lang, label_key), campaign_id, 0)


# Households per 邻长 from the 邻's counters (one row per 邻, not one per household).
_PER_LEADER = sa.text(
    "SELECT x.person_id, p.language, SUM(k.n) AS n"
    " FROM campaign_count k JOIN post x ON x.node_id = k.node_id AND x.role = 'neighbor_leader'"
    " JOIN person p ON p.id = x.person_id WHERE k.campaign_id = :c AND k.outcome = :t"
    " GROUP BY x.person_id, p.language ORDER BY x.person_id")
# Per 邻 of the campaign: households and how many are recorded, from the counters.
_PER_LIN = sa.text(
    "SELECT k.node_id, n.parent_id, n.name, k.n AS total,"
    " (SELECT COALESCE(SUM(d.n), 0) FROM campaign_count d WHERE d.campaign_id = k.campaign_id"
    "  AND d.node_id = k.node_id AND d.outcome >= 0) AS done"
    " FROM campaign_count k JOIN node n ON n.id = k.node_id"
    " WHERE k.campaign_id = :c AND k.outcome = :t AND n.level = 'neighborhood'")


def _holders(s: Session, node_ids: list[int], role: Role) -> dict[int, list[tuple[int, str,
                                                                                  str]]]:
    """node id → [(person id, name, language)] of a role's holders."""
    out: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for i in range(0, len(node_ids), 900):
        rows = s.execute(sa.text(
            "SELECT x.node_id, p.id, p.name, p.language FROM post x JOIN person p"
            " ON p.id = x.person_id WHERE x.role = :r AND x.node_id IN :ids ORDER BY x.id"
        ).bindparams(sa.bindparam("ids", expanding=True)),
            {"r": role.value, "ids": node_ids[i:i + 900]})
        for node_id, pid, name, lang in rows:
            out[node_id].append((pid, name, lang or "zh"))
    return out


def _started(s: Session, e: CampaignEvent, c: Campaign) -> list[Said]:
    out = []
    for pid, lang, n in s.execute(_PER_LEADER, {"c": c.id, "t": TOTAL}):
        lang = lang or "zh"
        if c.notice_id is not None:  # the notice itself came just before: no repeat of it
            text = t(lang, "cmp_relay_started", title=c.title[:40], n=n, deadline=_when(c))
        else:
            text = t(lang, "cmp_started", title=c.title, n=n, deadline=_when(c),
                     instructions=f"{c.instructions}\n" if c.instructions else "")
        out.append(Said(pid, text, text, (open_button(lang, e.campaign_id),)))
    return out


def _nagged(s: Session, e: CampaignEvent, c: Campaign) -> list[Said]:
    behind = {r.node_id: r.total - r.done for r in s.execute(_PER_LIN, {"c": c.id, "t": TOTAL})
              if r.done * 2 < r.total}
    left: dict[int, int] = defaultdict(int)
    langs: dict[int, str] = {}
    for node_id, people in _holders(s, sorted(behind), Role.neighbor_leader).items():
        for pid, _, lang in people:
            left[pid] += behind[node_id]
            langs[pid] = lang
    return [Said(pid, t(langs[pid], "cmp_nag", title=shown_title(langs[pid], c), left=n,
                        deadline=_when(c)),
                 t(langs[pid], "cmp_nag_line", title=shown_title(langs[pid], c), left=n),
                 (open_button(langs[pid], e.campaign_id),)) for pid, n in sorted(left.items())]


def _deadline(s: Session, e: CampaignEvent, c: Campaign) -> list[Said]:
    lins = [r for r in s.execute(_PER_LIN, {"c": c.id, "t": TOTAL}) if r.done < r.total]
    leaders = _holders(s, sorted({r.node_id for r in lins}), Role.neighbor_leader)
    group_leaders = _holders(s, sorted({r.parent_id for r in lins}), Role.group_leader)
    lines: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    who: dict[int, tuple[str, str]] = {}
    for r in lins:
        names = "、".join(n for _, n, _ in leaders.get(r.node_id, [])) or r.name
        for pid, name, lang in group_leaders.get(r.parent_id, []):
            lines[pid].append((names, r.name, r.total - r.done))
            who[pid] = (name, lang)
    out = []
    for pid, items in sorted(lines.items()):
        name, lang = who[pid]
        body = "\n".join(t(lang, "cmp_deadline_line", name=a, node=b, left=n) for a, b, n in items)
        text = t(lang, "cmp_deadline", title=shown_title(lang, c), name=name, n=len(items),
                 lines=body)
        out.append(Said(pid, text, text))
    return out


def _newcomer(s: Session, e: CampaignEvent, c: Campaign) -> list[Said]:
    n = s.get(Newcomer, int((e.detail or {}).get("newcomer", 0)))
    if n is None or n.id is None:
        return []
    from core.campaigns.model import CampaignItem
    from core.hierarchy.model import Person

    item = s.get(CampaignItem, n.item_id)
    reporter = s.get(Person, n.reported_by)
    steps = [st for st in chain_for_node(s, node_by_id(s, n.node_id)).filled()
             if st.role is not Role.neighbor_leader]
    out = []
    for h in steps[0].holders if steps else ():
        person = s.get(Person, h.id)
        lang = person.language if person else "zh"
        text = t(lang, "cmp_newcomer", leader=reporter.name if reporter else "", title=c.title,
                 name=n.name, phone=n.phone or t(lang, "cmp_no_phone"),
                 address=item.address if item else "")
        out.append(Said(h.id, text, text, (
            Action("cmp_ok", t(lang, "cmp_newcomer_ok"), n.id, 0),
            Action("cmp_no", t(lang, "cmp_newcomer_no"), n.id, 0))))
    return out


AUDIENCES = {"leaders_all": _started, "leaders_behind": _nagged, "group_leaders": _deadline,
             "above_item": _newcomer}


def notify(session: Session, events: Sequence[CampaignEvent]) -> int:
    """Outbox rows for a batch of campaign events (the subscriber of core/campaigns/events)."""
    from bot.notify.rules import CAMPAIGN_RULES

    now = max(as_utc(e.at) for e in events)
    drafts: list[Draft] = []
    digest: dict[int, list[tuple[int, Said]]] = defaultdict(list)
    for e in events:
        c = session.get(Campaign, e.campaign_id)
        if c is None or e.id is None:
            continue
        for rule in CAMPAIGN_RULES.get(e.kind, ()):
            for said in AUDIENCES[rule.audience](session, e, c):
                if said.person_id == e.actor_id and not rule.echo:
                    continue  # nobody is told of what they did themselves
                if rule.digest:
                    digest[said.person_id].append((e.id, said))
                else:
                    drafts.append(_draft(e.id, said))
    for pid, items in digest.items():
        if len(items) == 1:
            drafts.append(_draft(*items[0]))
            continue
        ids = ",".join(str(i) for i, _ in sorted(items, key=lambda x: x[0]))
        lang = _lang(session, pid)
        text = t(lang, "cmp_nag_digest", lines="\n".join(f"{k}. {x.line}"
                                                         for k, (_, x) in enumerate(items, 1)))
        actions = tuple(a for _, x in items for a in x.actions[:1])[:8]
        drafts.append(Draft(text=text, kind=KIND, person_id=pid, actions=actions,
                            dedupe_key=f"cdigest:p{pid}:"
                                       + hashlib.sha1(ids.encode()).hexdigest()))
    written = 0
    for i in range(0, len(drafts), BATCH):
        written += enqueue_many(session, drafts=drafts[i:i + BATCH], now=now)
    return written


def _draft(event_id: int, said: Said) -> Draft:
    return Draft(text=said.text, kind=KIND, person_id=said.person_id, actions=said.actions,
                 dedupe_key=f"ce{event_id}:p{said.person_id}")


def _lang(s: Session, person_id: int) -> str:
    from core.hierarchy.model import Person

    p = s.get(Person, person_id)
    return p.language if p else "zh"
