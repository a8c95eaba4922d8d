"""The notifier and the dispatcher: outbox rows written per case event, the notifier's time per
event, and the sender's cost per message, before and after, in one run.

    python bench/bench_notify.py [--cases 150] [--baseline 48b82e7]

Opens `cases` cases in a city of 1,000 neighborhoods (SQLite file), every person with a
Telegram identity, then for each one: the 邻长 accepts, replies twice, escalates; the 组长
resolves; the resident rates it (7 events a case: 150 cases, 1,050 events). Every event goes
through the real notifier (bot/notify) in its action's transaction. Then the outbox is drained
to the fake Bot API (tests/fakes/telegram_api.py, in process, on virtual time so Telegram's
30/s does not make the run wait) by the sender of that code: CPU and wall time per message.

Before and after in one run: the same measurement runs in a subprocess for each of two source
trees: BEFORE = the baseline commit (`git archive` of it into a temporary directory; default
48b82e7, main before the one dispatcher) and AFTER = this checkout. A second baseline inside
each measurement: a bare `enqueue_many` of the very rows the notifier wrote (same recipients,
texts and buttons), i.e. what writing the messages costs without deciding who hears what.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `--tree DIR`: measure the code of another checkout (the baseline), not this one.
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]) if "--tree" in sys.argv else ROOT
sys.path.insert(0, str(TREE))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bot import notify  # noqa: E402
from bot.notify.notifier import notify as notifier  # noqa: E402
from core.cases import actions, closing, events, services  # noqa: E402
from core.cases.model import Case, CaseEvent  # noqa: E402
from core.clock import FakeClock  # noqa: E402
from core.db import make_engine, migrate, session_scope  # noqa: E402
from core.outbox import OUT, Action, Draft, enqueue_many  # noqa: E402
from core.settings import Settings  # noqa: E402

try:  # 核查 came after the baseline; there an escalated case's 已解决 asks the resident at once
    from core.cases import verify
except ImportError:
    verify = None  # type: ignore[assignment]


def _city(engine: sa.Engine) -> list[tuple[int, int, int, int, str]]:
    spec = importlib.util.spec_from_file_location("bench_deadlines", TREE / "bench" /
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
    with engine.begin() as conn:  # everybody on Telegram: every row goes out there
        conn.execute(sa.text(
            "INSERT INTO chat_identity (person_id, platform, external_id, unreachable)"
            " SELECT id, 'telegram', CAST(100000 + id AS TEXT), :no FROM person"),
            {"no": False})
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
    send = _drain(engine, path.parent)
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
    out["_send"] = send
    engine.dispose()
    return out


def _drain(engine: sa.Engine, tmp: Path) -> dict[str, float]:
    """Every row to the fake Bot API through this tree's sender; its cost per message."""
    from bot.handlers.telegram.api import TelegramApi
    from tests.fakes.telegram_api import FakeTelegram
    from tests.fakes.timer import VirtualTime

    st = Settings(_env_file=None, media_dir=str(tmp / "media"))  # type: ignore[call-arg]
    vt = VirtualTime()
    with engine.connect() as conn:
        rows = int(conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status IN"
                                        " ('pending', 'failed')")).scalar_one())

    async def go(tg: FakeTelegram) -> tuple[float, float]:
        async with TelegramApi(token=tg.token, base=tg.base_url, timer=vt) as api:
            vt.hold_while(lambda: api.limiter.in_flight > 0)
            try:  # after: the one dispatcher over the Telegram transport
                from bot.handlers.telegram.transport import (  # type: ignore[import-not-found]
                    telegram_dispatcher,
                )
                sender = telegram_dispatcher(engine=engine, api=api, settings=st, clock=vt,
                                             batch=200, max_held=2000, idle=0.05)
            except ImportError:  # before: Telegram's own sender loop
                from bot.handlers.telegram.sender import (  # type: ignore[import-not-found]
                    TelegramSender,
                )
                sender = TelegramSender(engine=engine, api=api, settings=st, clock=vt,
                                        batch=200, max_held=2000, idle=0.05)
            t, cpu = time.perf_counter(), time.process_time()
            await sender.drain(max_seconds=36000)
            return time.perf_counter() - t, time.process_time() - cpu

    with FakeTelegram(now=vt.monotonic) as tg:
        wall, cpu = asyncio.run(go(tg))
        messages, edits = len(tg.sent), len(tg.edits)
    with engine.connect() as conn:
        left = int(conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status IN"
                                        " ('pending', 'failed')")).scalar_one())
    calls = messages + edits
    return {"rows": rows, "left": left, "messages": messages, "edits": edits,
            "cpu_ms": 1000 * cpu / max(1, calls), "wall_ms": 1000 * wall / max(1, calls),
            "cpu_row_ms": 1000 * cpu / max(1, rows)}


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
        if verify is not None:  # an escalated case is checked (核查) before the resident
            act(verify.approve, cid)
        act(closing.confirm, cid, person_id=resident, rating=4)


def measure(tree: Path, cases: int) -> dict[str, dict[str, float]]:
    """One measurement in a subprocess over the code in `tree`."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure",
                        "--tree", str(tree), "--cases", str(cases), "--json", f.name],
                       check=True, cwd=str(tree))
        return json.loads(Path(f.name).read_text())  # type: ignore[no-any-return]


def baseline_tree(commit: str) -> tuple[Path, str]:
    """The baseline commit's files in a temporary directory (`git archive`: no worktree)."""
    out = Path(tempfile.mkdtemp(prefix="linzhang-bench-base-"))
    name = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", commit],
                          check=True, capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out, name


def median(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Figure by figure, the median over runs."""
    return {k: {f: statistics.median(r[k][f] for r in runs) for f in runs[0][k]}
            for k in runs[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=150)
    ap.add_argument("--baseline", default="48b82e7", help="the commit measured as BEFORE")
    ap.add_argument("--rounds", type=int, default=2, help="before/after pairs, alternated")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        Path(args.json).write_text(json.dumps(run(args.cases)))
        return 0
    base, name = baseline_tree(args.baseline)
    # Alternated, medians: a shared machine's load drifts between subprocesses.
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        runs["before"].append(measure(base, args.cases))
        runs["after"].append(measure(ROOT, args.cases))
    before, after = median(runs["before"]), median(runs["after"])
    events_n = sum(int(f["events"]) for k, f in after.items() if not k.startswith("_"))
    print(f"{args.cases:,} cases, {events_n:,} events, SQLite, everyone on Telegram. BEFORE ="
          f" baseline main@{name} (git archive, own subprocess); AFTER = this checkout; "
          f"medians of {args.rounds} alternated runs each.")
    print("Per event kind: outbox rows written per event, the notifier's time per event "
          "(inside the action's transaction), and the bare enqueue_many of the same rows.")
    print(f"  {'event':<12} {'events':>7} {'rows/event':>17} {'notifier ms':>17} "
          f"{'bare write ms':>17}")
    for kind, f in after.items():
        if kind.startswith("_"):
            continue
        b = before.get(kind, {"rows_per_event": 0.0, "notify_ms": 0.0, "baseline_ms": 0.0})
        print(f"  {kind:<12} {int(f['events']):>7} "
              f"{b['rows_per_event']:>7.2f} → {f['rows_per_event']:<7.2f} "
              f"{b['notify_ms']:>7.2f} → {f['notify_ms']:<7.2f} "
              f"{b['baseline_ms']:>7.2f} → {f['baseline_ms']:<7.2f}")
    bs, as_ = before["_send"], after["_send"]
    print("The sender, draining all of it to the fake Bot API (virtual time; CPU includes the "
          "in-process fake):")
    for label, s in ((f"BEFORE main@{name}", bs), ("AFTER this checkout", as_)):
        print(f"  {label:<22} rows {int(s['rows']):>6,}  messages {int(s['messages']):>6,}  "
              f"card edits {int(s['edits']):>5,}  left {int(s['left'])}  "
              f"CPU {s['cpu_ms']:.2f} ms / message (API call), "
              f"{s['cpu_row_ms']:.2f} ms / outbox row  wall {s['wall_ms']:.2f} ms / message")
    for what in ("cpu_ms", "cpu_row_ms"):
        change = 100 * (as_[what] / bs[what] - 1) if bs[what] else 0.0
        print(f"  sender {what}: {change:+.1f} % against the baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
