"""The deadline engine: nag, escalate or close the cases whose next due time has come.

Only rows with `next_due_at <= now` are read, in due order and in batches, through the index
on that column. On PostgreSQL they are claimed with FOR UPDATE SKIP LOCKED, so several sweepers
never handle one case twice; on SQLite the sweep takes the single write lock up front.
Every due moment is measured from the case's stored stage and policy, so a sweep after downtime
moves an overdue case exactly one tier, with a fresh deadline counted from now, and skips the
reminders whose moment has passed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases import events, ops
from core.cases.actions import hand_over
from core.cases.model import ACTIVE_STATES, CASES, Case, EventKind, Stage, State
from core.cases.policy import in_quiet_hours, nags_passed, next_due, out_of_quiet
from core.cases.routing import chains_for, next_target
from core.clock import Clock, as_utc
from core.db import is_sqlite, session_scope
from core.hierarchy.queries import Chain, NodeRef, chain_for_node, node_by_id, nodes_by_ids

log = logging.getLogger(__name__)



@dataclass
class SweepResult:
    claimed: int = 0
    nagged: int = 0
    escalated: int = 0
    overdue_at_top: int = 0
    auto_closed: int = 0
    held_for_quiet_hours: int = 0
    messages: int = 0
    late: int = 0
    campaigns: int = 0

    def add(self, other: SweepResult) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Sweep:
    session: Session
    now: datetime
    result: SweepResult
    chains: dict[int, Chain] = field(default_factory=dict)
    nodes: dict[int, NodeRef] = field(default_factory=dict)

    def prefetch(self, cases: list[Case]) -> None:
        """Read what the due cases need in a handful of queries, not a few per case."""
        ids = {c.home_node_id for c in cases} | {c.holder_node_id for c in cases
                                                  if c.holder_node_id is not None}
        self.nodes.update(nodes_by_ids(self.session, ids))
        moving = [c for c in cases if c.deadline_at is not None
                  and as_utc(c.deadline_at) <= self.now and c.stage != Stage.confirm.value]
        homes = {c.home_node_id: self.nodes[c.home_node_id] for c in moving}
        self.chains.update(chains_for(self.session, list(homes.values())))

    def node(self, node_id: int) -> NodeRef:
        if node_id not in self.nodes:
            self.nodes[node_id] = node_by_id(self.session, node_id)
        return self.nodes[node_id]

    def chain(self, home_id: int) -> Chain:
        if home_id not in self.chains:
            self.chains[home_id] = chain_for_node(self.session, self.node(home_id))
        return self.chains[home_id]


def anything_due(session: Session, *, now: datetime) -> bool:
    """A cheap look at the index: is any case due?"""
    q = sa.select(CASES.c.id).where(CASES.c.next_due_at <= now).limit(1)
    return session.execute(q).first() is not None


def earliest_due(session: Session) -> datetime | None:
    """When the next case (or campaign) falls due (the first entry of each index)."""
    from core.campaigns.deadlines import earliest_due as campaign_due

    q = sa.select(sa.func.min(CASES.c.next_due_at))
    found = session.execute(q).scalar_one_or_none()
    due = [d for d in (None if found is None else as_utc(found), campaign_due(session))
           if d is not None]
    return min(due) if due else None


def due_backlog(session: Session, *, now: datetime) -> int:
    """How many cases are due and not yet handled (for /metrics)."""
    q = sa.select(sa.func.count()).where(CASES.c.next_due_at <= now)
    return int(session.execute(q).scalar_one())


def sweep(session: Session, *, clock: Clock, batch: int = 2000) -> SweepResult:
    """Handle up to `batch` due cases in the caller's transaction; the batch's events are
    published together (the notifier digests several reminders for one person)."""
    now = clock.now()
    if is_sqlite(session.get_bind()):  # type: ignore[arg-type]
        # Take the write lock before reading, so the writes below cannot lose a race to
        # another writer after this transaction's snapshot was taken.
        session.execute(sa.text("UPDATE cases SET id = id WHERE 0 = 1"))
    q = (
        sa.select(Case)
        .where(CASES.c.next_due_at <= now)
        .order_by(CASES.c.next_due_at, CASES.c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    run = _Sweep(session, now, SweepResult())
    cases = list(session.execute(q).scalars())
    run.result.claimed = len(cases)
    if cases:
        run.prefetch(cases)
    # Everything below only adds and changes rows; one flush at the end writes them together.
    with session.no_autoflush:
        for case in cases:
            _handle(run, case)
    run.result.messages = events.publish(session)
    return run.result


def run_sweep(engine: Engine, *, clock: Clock, batch: int = 2000,
              max_rounds: int = 100) -> SweepResult:
    """Sweep until nothing is due (one transaction per batch); what the scheduler calls."""
    from core.campaigns.deadlines import earliest_due as campaign_due
    from core.campaigns.deadlines import sweep_campaigns
    from core.cases import away

    total = SweepResult()
    with Session(engine) as peek:
        due = campaign_due(peek)
        returns = away.any_due(peek, now=clock.now())  # absences that have run out
    if due is not None and due <= clock.now():
        # Campaign deadlines ride on the same sweep (core/campaigns/deadlines.py).
        with session_scope(engine) as session:
            if is_sqlite(session.get_bind()):  # type: ignore[arg-type]
                session.execute(sa.text("UPDATE campaign SET id = id WHERE 0 = 1"))
            total.campaigns = sweep_campaigns(session, now=clock.now())
    if returns:
        # Absences that have run out end here (/back by itself), before deadlines are looked at.
        with session_scope(engine) as session:
            if is_sqlite(session.get_bind()):  # type: ignore[arg-type]
                session.execute(sa.text("UPDATE away SET id = id WHERE 0 = 1"))
            away.end_due(session, clock=clock)
    for _ in range(max_rounds):
        with Session(engine) as peek:
            if not anything_due(peek, now=clock.now()):
                break
        with session_scope(engine) as session:
            result = sweep(session, clock=clock, batch=batch)
        total.add(result)
        if result.claimed < batch:
            break
    else:
        log.warning("sweep stopped after %d full batches; the rest waits for the next run",
                    max_rounds)
    return total


def _handle(run: _Sweep, case: Case) -> None:
    if State(case.state) not in ACTIVE_STATES or case.stage is None:
        # A case left due after it ended would be swept forever; say so and clear it.
        log.error("case %s is %s with stage %s but still due; clearing its clock",
                  case.id, case.state, case.stage)
        ops.stop_clock(case)
        return
    policy = ops.policy_of(case)
    stage = Stage(case.stage)
    assert case.deadline_at is not None and case.stage_started_at is not None
    start, deadline = as_utc(case.stage_started_at), as_utc(case.deadline_at)
    if deadline <= run.now:
        _deadline(run, case, stage)
        return
    passed = nags_passed(policy, stage, start=start, deadline=deadline, now=run.now)
    if passed > case.nags_sent:
        if in_quiet_hours(policy, run.now):
            # Only a sweep that ran late lands here: hold the reminder until the quiet ends.
            case.next_due_at = min(out_of_quiet(policy, run.now), deadline)
            run.result.held_for_quiet_hours += 1
            return
        case.nags_sent = passed
        _nag(run, case, stage, deadline)
    case.next_due_at = next_due(policy, stage, start=start, deadline=deadline,
                                nags_sent=case.nags_sent)


def _nag(run: _Sweep, case: Case, stage: Stage, deadline: datetime) -> None:
    ops.record(run.session, case, kind=EventKind.nagged, at=run.now, role=case.holder_role,
               detail={"stage": stage.value, "n": case.nags_sent})
    run.result.nagged += 1


def _deadline(run: _Sweep, case: Case, stage: Stage) -> None:
    assert case.id is not None
    late = ops.late_by(case, run.now)
    if late is not None:
        run.result.late += 1
    if stage is Stage.confirm:
        _auto_close(run, case, late)
        return
    if stage is Stage.verify:
        # A check not made in time is the verifier's to make: reminded, never moved on (the
        # resolution itself was on time).
        _overdue_at_top(run, case, stage)
        return
    case.missed_deadlines += 1
    assert case.holder_role is not None and case.holder_node_id is not None
    holder_node = run.node(case.holder_node_id)
    target = next_target(run.chain(case.home_node_id), role=case.holder_role,
                         node=holder_node, holder_id=case.holder_id or -1)
    if target is None:
        _overdue_at_top(run, case, stage)
        return
    case.escalations += 1
    # The reason is the event's detail (which deadline, how late); bot/notify words it.
    hand_over(run.session, case, target, now=run.now, stage=Stage.reply,
              kind=EventKind.escalated, actor_id=None, via=None, note=None,
              detail={"auto": True, "stage": stage.value,
                      "late_by_s": int(late.total_seconds()) if late else 0})
    run.result.escalated += 1


def _overdue_at_top(run: _Sweep, case: Case, stage: Stage) -> None:
    """Nobody above: the holder keeps it with a fresh deadline and, a few times, a reminder."""
    assert case.id is not None
    policy = ops.policy_of(case)
    case.stage_renewals += 1
    ops.start_stage(case, stage, run.now, keep_renewals=True)
    run.result.overdue_at_top += 1
    if case.stage_renewals > policy.nags_per_tier:
        # Past the cap the clock keeps running quietly; the dashboard shows the case overdue.
        case.nags_sent = policy.nags_per_tier
        case.next_due_at = case.deadline_at
        return
    ops.record(run.session, case, kind=EventKind.overdue, at=run.now, role=case.holder_role,
               detail={"stage": stage.value, "renewal": case.stage_renewals})


def _auto_close(run: _Sweep, case: Case, late: object) -> None:
    """No answer from the resident within the confirm window: closed without a rating."""
    case.state = State.closed.value
    case.closed_at = run.now
    case.close_reason = "no_answer"
    ops.stop_clock(case)
    ops.touch(case, run.now)
    ops.record(run.session, case, kind=EventKind.auto_closed, at=run.now,
               from_state=State.resolved.value, role=case.holder_role,
               detail={"late": late is not None})
    run.result.auto_closed += 1
