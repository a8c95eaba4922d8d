"""A campaign's deadline, run by the case engine's sweep (core/cases/sweep.py calls
`sweep_campaigns` in each run): at half time the 邻长 behind schedule are nagged, at the
deadline each 组长 is told which of their 邻长 are not done. The policy stored at the start
applies: nags are held out of quiet hours and capped by `nags_per_tier` (0: none), and the
notifier folds several reminders for one person in one batch into one digest."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from core.campaigns import events
from core.campaigns.model import CAMPAIGNS, Campaign, CampaignEventKind, CampaignState
from core.cases.policy import CasePolicy, in_quiet_hours, out_of_quiet
from core.clock import as_utc

# A campaign has one reminder at half time; the cap can only lower that.
CAMPAIGN_NAGS = 1


def earliest_due(session: Session) -> datetime | None:
    found = session.execute(sa.select(sa.func.min(CAMPAIGNS.c.next_due_at))).scalar_one_or_none()
    return None if found is None else as_utc(found)


def sweep_campaigns(session: Session, *, now: datetime, batch: int = 200) -> int:
    """Handle the campaigns whose next moment has come; how many were handled."""
    q = (sa.select(Campaign).where(CAMPAIGNS.c.next_due_at <= now,
                                   CAMPAIGNS.c.state == CampaignState.open.value)
         .order_by(CAMPAIGNS.c.next_due_at).limit(batch)
         .with_for_update(skip_locked=True).execution_options(populate_existing=True))
    due = list(session.execute(q).scalars())
    for c in due:
        _handle(session, c, now)
    events.publish(session)
    return len(due)


def _handle(session: Session, c: Campaign, now: datetime) -> None:
    assert c.id is not None
    policy = CasePolicy.from_json(c.policy)
    deadline = as_utc(c.deadline_at)
    if in_quiet_hours(policy, now):
        # Nobody is woken up: the reminder or the 组长's list waits for the morning.
        c.next_due_at = out_of_quiet(policy, now)
        return
    if now >= deadline:
        events.record(session, campaign_id=c.id, kind=CampaignEventKind.deadline, at=now)
        c.next_due_at = None
        return
    if c.nags_sent < min(CAMPAIGN_NAGS, policy.nags_per_tier):
        c.nags_sent += 1
        events.record(session, campaign_id=c.id, kind=CampaignEventKind.nagged, at=now,
                      detail={"n": c.nags_sent})
    c.next_due_at = deadline
