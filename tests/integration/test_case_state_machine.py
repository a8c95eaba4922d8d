"""Random reports, actions, clock moves and restarts against a real SQLite file; after every
step: no case lost, each live case has one holder and one due time, nothing nags a finished
case, escalation never jumps over a filled tier, and the rollups refreshed from the marks
the changes left give the town's and the district's figures exactly as counted live."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases import actions, closing, services
from core.cases.model import ACTIVE_STATES, Case, CaseEvent, State
from core.cases.sweep import run_sweep
from core.clock import FakeClock
from core.db import make_engine, migrate, session_scope
from core.errors import DomainError
from core.hierarchy.queries import chain_for_node, node_by_id
from core.rollup import refresh
from tests.casehelpers import MINUTE, open_case
from tests.cityfactory import City, build_city
from tests.notifycheck import assert_one_row_per_recipient
from tests.rollupcheck import TZ, assert_rollups_match

LEADERS = ["leader1", "leader2", "area_leader", "secretary", "secretary2", "town_admin",
           "liaison", "leader3"]
RESIDENTS = ["resident1", "resident2", "resident3", "resident4"]


@cache
def _template() -> tuple[Path, City]:
    """One migrated city on disk, copied for every example (migrating each time is slow)."""
    path = Path(tempfile.mkdtemp(prefix="linzhang-sm-")) / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    city = build_city(engine, vacant={"group_leader"})
    engine.dispose()
    return path, city


class CaseMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        template, self.city = _template()
        self.dir = Path(tempfile.mkdtemp(prefix="linzhang-sm-"))
        shutil.copy(template, self.dir / "db.sqlite")
        self.url = f"sqlite:///{self.dir / 'db.sqlite'}"
        self.engine: Engine = make_engine(self.url)
        self.clock = FakeClock()
        self.reported = 0
        with Session(self.engine) as s:
            self.filled: dict[int, list[int]] = {}
            for key in ("n1", "n2", "n3"):
                node = node_by_id(s, self.city.nodes[key])
                self.filled[node.id] = [p.id for p in chain_for_node(s, node).people()]

    def teardown(self) -> None:
        if hasattr(self, "engine"):
            self.engine.dispose()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _case_ids(self) -> list[int]:
        with Session(self.engine) as s:
            return list(s.execute(sa.select(Case.id).order_by(Case.id)).scalars())  # type: ignore[arg-type]

    @rule(resident=st.sampled_from(RESIDENTS))
    def report(self, resident: str) -> None:
        open_case(self.engine, self.clock, self.city, resident=resident, text="问题")
        self.reported += 1

    @rule(pick=st.integers(0, 50), who=st.sampled_from(LEADERS),
          action=st.sampled_from(["accept", "reply", "resolve", "escalate", "reject",
                                  "whistle", "merge"]),
          stale=st.booleans())
    def act(self, pick: int, who: str, action: str, stale: bool) -> None:
        ids = self._case_ids()
        if not ids:
            return
        cid = ids[pick % len(ids)]
        with Session(self.engine) as s:
            case = s.get(Case, cid)
            assert case is not None
            version = case.version - 1 if stale else case.version
        kw: dict[str, Any] = {"clock": self.clock, "case_id": cid,
                              "person_id": self.city[who], "version": version}
        fn = getattr(actions, action)
        extra = {"reply": {"text": "收到"}, "escalate": {"reason": "转"},
                 "reject": {"reason": "无效"}, "whistle": {"category": "环境保护"},
                 "merge": {"into_case_id": ids[(pick + 1) % len(ids)]}}.get(action, {})
        try:
            with session_scope(self.engine) as s:
                fn(s, **kw, **extra)
        except DomainError:
            pass  # refusals are part of the game; the invariants check nothing broke

    @rule(pick=st.integers(0, 50), rating=st.integers(0, 5), stale=st.booleans())
    def resident_answers(self, pick: int, rating: int, stale: bool) -> None:
        ids = self._case_ids()
        if not ids:
            return
        cid = ids[pick % len(ids)]
        with Session(self.engine) as s:
            case = s.get(Case, cid)
            assert case is not None
            version, resident = case.version - (1 if stale else 0), case.resident_id
        try:
            with session_scope(self.engine) as s:
                if rating:
                    closing.confirm(s, clock=self.clock, case_id=cid, person_id=resident,
                                    version=version, rating=rating)
                else:
                    closing.not_fixed(s, clock=self.clock, case_id=cid, person_id=resident,
                                      version=version)
        except DomainError:
            pass

    @rule(minutes=st.sampled_from([1, 29, 91, 121, 241, 600, 4400]), swept=st.booleans())
    def time_passes(self, minutes: int, swept: bool) -> None:
        self.clock.advance(minutes * MINUTE)
        if swept:
            run_sweep(self.engine, clock=self.clock, batch=7)

    @rule()
    def restart(self) -> None:
        self.engine.dispose()
        self.engine = make_engine(self.url)
        run_sweep(self.engine, clock=self.clock, batch=7)

    @invariant()
    def nothing_lost_and_every_live_case_is_held_and_timed(self) -> None:
        if not hasattr(self, "engine"):
            return
        with Session(self.engine) as s:
            cases = list(s.execute(sa.select(Case)).scalars())
            assert len(cases) == self.reported
            for c in cases:
                if c.state in (State.open.value, State.accepted.value):
                    # core.cases.lists.overdue_clause relies on it: only resolved cases wait
                    # for the resident's confirmation.
                    assert c.stage != "confirm"
                if State(c.state) in ACTIVE_STATES:
                    assert c.holder_id is not None and c.holder_role is not None
                    assert c.next_due_at is not None and c.stage is not None
                else:
                    assert c.next_due_at is None

    @invariant()
    def no_nag_after_close_and_no_skipped_tier(self) -> None:
        if not hasattr(self, "engine"):
            return
        with Session(self.engine) as s:
            cases = {c.id: c for c in s.execute(sa.select(Case)).scalars()}
            events = list(s.execute(sa.select(CaseEvent).order_by(CaseEvent.id)).scalars())  # type: ignore[arg-type]
        ended: set[int] = set()
        whistled: set[int] = set()
        for ev in events:
            if ev.case_id in ended:
                assert ev.kind in ("refused", "merged_in"), (ev.kind, ev.case_id)
            if ev.kind in ("confirmed", "auto_closed", "rejected", "merged"):
                ended.add(ev.case_id)
            if ev.kind == "whistled":
                whistled.add(ev.case_id)
            if ev.kind == "escalated" and ev.case_id not in whistled:
                chain = self.filled[cases[ev.case_id].home_node_id]
                before, after = ev.detail["from"], ev.holder_id
                assert chain.index(after) == chain.index(before) + 1, (chain, before, after)

    @invariant()
    def every_event_reaches_each_of_its_recipients_once(self) -> None:
        if hasattr(self, "engine"):
            assert_one_row_per_recipient(self.engine)

    @rule(pick=st.integers(0, 50),
          action=st.sampled_from(["accept", "reply", "ask_more", "resolve", "escalate"]))
    def holder_acts(self, pick: int, action: str) -> None:
        """The holder answering with a current button (a second reply included)."""
        ids = self._case_ids()
        if not ids:
            return
        with Session(self.engine) as s:
            case = s.get(Case, ids[pick % len(ids)])
            assert case is not None
            if case.holder_id is None:
                return
            kw: dict[str, Any] = {"clock": self.clock, "case_id": case.id,
                                  "person_id": case.holder_id, "version": case.version}
        extra = {"reply": {"text": "答复"}, "ask_more": {"question": "请补充照片"},
                 "escalate": {"reason": "转"}}.get(action, {})
        try:
            with session_scope(self.engine) as s:
                getattr(actions, action)(s, **kw, **extra)
        except DomainError:
            pass

    @rule(pick=st.integers(0, 50), twice=st.booleans())
    def resident_adds(self, pick: int, twice: bool) -> None:
        ids = self._case_ids()
        if not ids:
            return
        cid = ids[pick % len(ids)]
        with Session(self.engine) as s:
            case = s.get(Case, cid)
            assert case is not None
            resident = case.resident_id
        for n in range(2 if twice else 1):
            try:
                with session_scope(self.engine) as s:
                    services.add_to_case(s, clock=self.clock, case_id=cid, person_id=resident,
                                         text=f"补充{n}")
            except DomainError:
                pass

    def _state_key(self) -> tuple[datetime, str]:
        """The clock and the database files' bytes: equal keys, the very same state."""
        digest = hashlib.blake2b()
        for suffix in ("", "-wal"):
            f = self.dir / f"db.sqlite{suffix}"
            if f.exists():
                digest.update(f.read_bytes())
        return self.clock.now(), digest.hexdigest()

    @invariant()
    def rollups_follow_every_change(self) -> None:
        if not hasattr(self, "engine"):
            return
        # After a step that changed nothing (a refused action, a rule with no case to act on:
        # about 4 steps in 10), the state is the one this check just passed on: not read again.
        if getattr(self, "_rollups_checked", None) == self._state_key():
            return
        refresh.refresh(self.engine, clock=self.clock, tz=TZ)
        with Session(self.engine) as s:
            nodes = [node_by_id(s, self.city.nodes[k]) for k in ("town", "district")]
        assert_rollups_match(self.engine, self.clock, nodes)
        self._rollups_checked = self._state_key()


# 25 random runs in the default test run (about 20 s on the 2-core machine);
# LINZHANG_STATE_EXAMPLES=200 for a long hunt.
EXAMPLES = int(os.environ.get("LINZHANG_STATE_EXAMPLES", "25"))
CaseMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # The explain phase traces every line of SQLAlchemy: minutes per failing example.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
TestCaseMachine = CaseMachine.TestCase
