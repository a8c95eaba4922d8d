"""The notifier's cost: outbox rows written per case event and the time it takes per event.

    python bench/bench_notify.py [--cases 300]

Opens `cases` cases in a city of 1,000 neighborhoods (SQLite file), then for each one: the
邻长 accepts, replies twice, escalates; the 组长 resolves; the resident rates it. Every event
goes through the real notifier (bot/notify) in its action's transaction. Baseline in the same
run: a bare `enqueue_many` of the very rows the notifier wrote (same recipients, texts and
buttons), i.e. what writing the messages costs without deciding who hears what, wording it per
language and keeping every card current.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bot import notify  # noqa: E402
from bot.notify.notifier import notify as notifier  # noqa: E402
from core.cases import actions, closing, events, services, verify  # noqa: E402
from core.cases.model import Case, CaseEvent  # noqa: E402
from core.clock import FakeClock  # noqa: E402
from core.db import make_engine, migrate, session_scope  # noqa: E402
from core.outbox import OUT, Action, Draft, enqueue_many  # noqa: E402
from core.settings import Settings  # noqa: E402


def _city(engine: sa.Engine) -> list[tuple[int, int, int, int, str]]:
    spec = importlib.util.spec_from_file_location("bench_deadlines", ROOT / "bench" /
                                                  "bench_deadlines.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_city(engine)  # type: ignore[no-any-return]


class Timed:
    """The notifier wrapped to keep its time per event kind."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.events: dict[str, int] = defaultdict(int)
        self.kind_of: dict[int, str] = {}

    def __call__(self, session: Session, evs: Sequence[CaseEvent]) -> int:
        t = time.perf_counter()
        n = notifier(session, evs)
        share = (time.perf_counter() - t) / len(evs)
        for e in evs:
            assert e.id is not None
            self.seconds[e.kind] += share
            self.events[e.kind] += 1
            self.kind_of[e.id] = e.kind
        return n


def run(cases: int) -> dict[str, dict[str, float]]:
    path = Path(tempfile.mkdtemp(prefix="linzhang-bench-notify-")) / "bench.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    homes = _city(engine)
    notify.install()
    timed = Timed()
    events.subscribe("notify", timed)
    try:
        _story(engine, homes, cases)
    finally:
        events.subscribe("notify", notifier)
    with Session(engine) as s:
        rows = s.execute(sa.select(OUT).where(OUT.c.dedupe_key.like("e%"))).mappings().all()
    by_event: dict[int, list[Draft]] = defaultdict(list)
    for r in rows:
        eid = int(r["dedupe_key"][1:].split(":", 1)[0])
        by_event[eid].append(Draft(
            text=r["text"], kind=r["kind"], dedupe_key="bl:" + r["dedupe_key"],
            person_id=r["person_id"], chat_binding_id=r["chat_binding_id"],
            case_id=r["case_id"], options=r["options"],
            actions=tuple(Action(a["action"], a["label"], a["case_id"], a["version"])
                          for a in r["actions"])))
    base: dict[str, list[float]] = defaultdict(list)
    written: dict[str, int] = defaultdict(int)
    for eid, drafts in by_event.items():
        kind = timed.kind_of[eid]
        written[kind] += len(drafts)
        t = time.perf_counter()
        with session_scope(engine) as s:
            enqueue_many(s, drafts=drafts, now=FakeClock().now())
        base[kind].append(time.perf_counter() - t)
    out: dict[str, dict[str, float]] = {}
    for kind, n in sorted(timed.events.items()):
        out[kind] = {
            "events": n, "rows_per_event": written.get(kind, 0) / n,
            "notify_ms": 1000 * timed.seconds[kind] / n,
            "baseline_ms": 1000 * statistics.fmean(base[kind]) if base.get(kind) else 0.0,
        }
    engine.dispose()
    return out


def _story(engine: sa.Engine, homes: list[tuple[int, int, int, int, str]], cases: int) -> None:
    """Open the cases, then take each through its life."""
    clock = FakeClock()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    ids = []
    for i in range(cases):
        _nb, resident, _leader, _, _path = homes[i % len(homes)]
        with session_scope(engine) as s:
            case = services.open_case(s, clock=clock, settings=settings, resident_id=resident,
                                      text=f"3号楼门口的路灯坏了 {i}")
            ids.append((case.id, resident))

    def act(fn, cid: int, **kw) -> None:  # type: ignore[no-untyped-def]
        with session_scope(engine) as s:
            case = s.get(Case, cid)
            assert case is not None and case.holder_id is not None
            fn(s, clock=clock, case_id=cid, version=case.version,
               person_id=kw.pop("person_id", case.holder_id), **kw)

    for cid, resident in ids:
        act(actions.accept, cid)
        act(actions.reply, cid, text="明天上午来修")
        act(actions.reply, cid, text="灯泡已订，下午到")
        act(actions.escalate, cid, reason="需要物业协调")
        act(actions.resolve, cid)
        act(verify.approve, cid)  # an escalated case is checked (核查) before the resident
        act(closing.confirm, cid, person_id=resident, rating=4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    args = ap.parse_args(argv)
    figures = run(args.cases)
    print(f"{args.cases:,} cases, SQLite; per event kind: outbox rows written per event, the "
          "notifier's time per event (inside the action's transaction), and the baseline: a "
          "bare enqueue_many of the same rows in a transaction of its own")
    print(f"  {'event':<12} {'events':>7} {'rows/event':>10} {'notifier ms':>12} "
          f"{'baseline ms':>12}")
    for kind, f in figures.items():
        print(f"  {kind:<12} {int(f['events']):>7} {f['rows_per_event']:>10.2f} "
              f"{f['notify_ms']:>12.2f} {f['baseline_ms']:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
