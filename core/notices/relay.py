"""A notice's relay: the residents in its audience without a chat of their own are reached
through their 邻长, as a campaign with one item per household (issue 14).

Started in the notice's own transaction (a relay never exists without its notice, nor the
notice without its relay). A resident imported without an address is an item alone, labelled
by a masked name (张*) so the 邻长 knows whom to tell and no name is spelled out on a board;
nobody is dropped. The relay's title is the notice's text (cut to a campaign title's length);
the words "转达" are the bot's and the dashboard's, read from `Campaign.notice_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from core.campaigns import counters
from core.campaigns.model import CAMPAIGNS, RELAY_OUTCOMES, TOTAL, Campaign
from core.campaigns.services import ADDRESS_MAX, TITLE_MAX, start_campaign
from core.cases.policy import CasePolicy
from core.clock import as_utc
from core.hierarchy.model import Person
from core.hierarchy.queries import NodeRef
from core.notices.audience import Household, homes_without_chat
from core.notices.model import Notice

PERSON: sa.Table = Person.__table__  # type: ignore[attr-defined]


class _At:
    """The notice's own instant as the campaign's clock: both start at one moment."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def masked(name: str | None) -> str:
    """Only the first character of a name: 张三丰 -> 张**."""
    words = (name or "").strip()
    return words[:1] + "*" * max(1, len(words) - 1) if words else "*"


def _labels(session: Session, homes: list[Household]) -> list[tuple[int, str, int]]:
    """(邻, label, person) for each resident without an address; labels unique per 邻."""
    alone = [h for h in homes if h.address is None]
    if not alone:
        return []
    ids = [h.person_ids[0] for h in alone]
    names = dict(session.execute(sa.select(PERSON.c.id, PERSON.c.name)
                                 .where(PERSON.c.id.in_(ids))).all())
    seen: dict[tuple[int, str], int] = {}
    out: list[tuple[int, str, int]] = []
    for h in alone:
        pid = h.person_ids[0]
        label = masked(names.get(pid))
        k = seen.get((h.neighborhood_id, label), 0) + 1
        seen[(h.neighborhood_id, label)] = k
        out.append((h.neighborhood_id, label if k == 1 else f"{label} {k}", pid))
    return out


def start_relay(session: Session, *, notice: Notice, node: NodeRef, now: datetime,
                window: timedelta, policy: CasePolicy, by_sms: bool = False) -> Campaign | None:
    """The relay campaign of a notice to residents, when some have no chat; None if all do."""
    assert notice.id is not None
    homes = [h for hs in homes_without_chat(session, node=node, by_sms=by_sms).values() for h in hs]
    if not homes:
        return None
    title = notice.text if len(notice.text) <= TITLE_MAX else notice.text[:TITLE_MAX - 1] + "…"
    deadline = as_utc(notice.deadline) if notice.deadline is not None else now + window
    return start_campaign(
        session, node_id=node.id, title=title, instructions=notice.text,
        outcomes=list(RELAY_OUTCOMES), deadline=deadline, started_by=None, clock=_At(now),
        households=[(h.neighborhood_id, h.address[:ADDRESS_MAX]) for h in homes
                    if h.address is not None],
        persons=_labels(session, homes), policy=policy, notice_id=notice.id)


@dataclass(frozen=True)
class Progress:
    """Where a notice's relay stands, for the notice's page."""

    campaign_id: int
    total: int
    by_outcome: tuple[tuple[str, int], ...]
    state: str

    @property
    def done(self) -> int:
        return sum(n for _, n in self.by_outcome)


def progress(session: Session, *, notice_id: int) -> Progress | None:
    """The relay's households told, not at home, moved, and not yet; None without a relay."""
    c = session.execute(sa.select(Campaign).where(CAMPAIGNS.c.notice_id == notice_id)
                        ).scalars().first()
    if c is None:
        return None
    assert c.id is not None
    got = counters.of_nodes(session, campaign_id=c.id, node_ids=[c.node_id]).get(c.node_id, {})
    return Progress(c.id, got.get(TOTAL, 0),
                    tuple((o, got.get(i, 0)) for i, o in enumerate(c.outcomes)), c.state)
