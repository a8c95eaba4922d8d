"""Every read of a first report and of an addition, through the webhook path, uses an index
on SQLite: none of them scans a table that grows with the city or with its history (SQLite
plans by fixed heuristics, so the plan on a small database is the plan at any size)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.clock import FakeClock
from core.settings import Settings
from tests.integration.test_flows import link, resident_of, send
from tests.support.demo_city import LIN1, holder_of, load_demo

# Tables that grow with the city (node, person, post, household, identities) or with its age
# (cases, events, outbox, deliveries, the update log): a scan of one is a cost that grows.
GROWING = ("node", "person", "post", "household", "chat_identity", "chat_binding", "cases",
           "case_event", "case_follower", "case_attachment", "outbox", "delivery",
           "inbound_update", "conversation", "rollup_dirty", "away", "notice_recipient")


def _selects(engine: Engine, run: Any) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def grab(_c, _cur, statement, parameters, _ctx, many):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and not many:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)
    return seen


def _scans(engine: Engine, statement: str, parameters: Any) -> list[str]:
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        lines = [str(r[-1]) for r in cur.fetchall()]
    # SEARCH is bounded by an index's key; SCAN (of the table, or of a whole index: "SCAN t
    # USING INDEX") reads every row.
    return [x for x in lines if (m := re.match(r"SCAN (\w+)", x)) and m.group(1) in GROWING]


def test_no_read_of_a_report_scans_a_growing_table(sqlite_engine: Engine,
                                                   tmp_path: Path) -> None:
    engine = sqlite_engine
    load_demo(engine)
    st = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    clock = FakeClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    resident = resident_of(engine, LIN1)
    link(engine, resident.person_id, "5100")
    link(engine, holder_of(engine, "neighbor_leader", LIN1).person_id, "9100")
    send(engine, clock, st, sender="5100", command="start")
    clock.advance(timedelta(minutes=30))
    reads = _selects(engine, lambda: send(engine, clock, st, sender="5100",
                                          text="楼道灯坏了三天了"))
    clock.advance(timedelta(minutes=1))
    reads += _selects(engine, lambda: send(engine, clock, st, sender="5100",
                                           text="而且楼梯扶手也松了"))
    reads = [(s, p) for s, p in reads if "dedupe_key LIKE" not in s]  # the test's own read
    assert len(reads) >= 20  # the reads of both updates were seen
    # The check sees a scan when there is one (of the table, or of a whole index).
    assert _scans(engine, "SELECT id FROM cases WHERE text = ?", ("x",))
    assert _scans(engine, "SELECT count(*) FROM cases", ())
    found = {s.split("\n")[0][:160]: scans for s, p in reads
             if (scans := _scans(engine, s, p))}
    assert found == {}, "\n".join(f"{k}\n    {v}" for k, v in found.items())
