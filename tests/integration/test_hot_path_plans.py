"""Every read of a first report and of an addition, through the webhook path, uses an index:
none of them scans a table that grows with the city or with its history. SQLite plans by
fixed heuristics, so its plan on a small database is the plan at any size; PostgreSQL plans
by statistics, so its plans are taken after tens of thousands of rows in every growing table
and an ANALYZE (bench/bench_age.py prints them at 1 M cases and 10 M events)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
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
           "inbound_update", "conversation", "rollup_dirty", "away", "notice_recipient",
           "send_log")


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


def _report_reads(engine: Engine, tmp_path: Path) -> list[tuple[str, Any]]:
    """The SELECTs of a first report and of an addition to it, from a resident of the demo."""
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
    return reads


def test_no_read_of_a_report_scans_a_growing_table(sqlite_engine: Engine,
                                                   tmp_path: Path) -> None:
    engine = sqlite_engine
    load_demo(engine)
    reads = _report_reads(engine, tmp_path)
    # The check sees a scan when there is one (of the table, or of a whole index).
    assert _scans(engine, "SELECT id FROM cases WHERE text = ?", ("x",))
    assert _scans(engine, "SELECT count(*) FROM cases", ())
    found = {s.split("\n")[0][:160]: scans for s, p in reads
             if (scans := _scans(engine, s, p))}
    assert found == {}, "\n".join(f"{k}\n    {v}" for k, v in found.items())


# Rows enough that PostgreSQL's planner prefers an index wherever one bounds the read: a
# district's worth of 邻 off to one side of the demo city, with their people, chats and a
# history of cases, events, messages and updates (INSERT … SELECT generate_series).
N = 10_000
_GROW = [
    "INSERT INTO node (id, code, parent_id, level, name, path) VALUES"
    " (900000, '9900', NULL, 'district', '旁区', '/900000/')",
    "INSERT INTO node (id, code, parent_id, level, name, path) SELECT 900000 + g, '9900' || g,"
    " 900000, 'neighborhood', '邻' || g, '/900000/' || (900000 + g) || '/'"
    " FROM generate_series(1, :n) g",
    "INSERT INTO person (id, name, phone, language) SELECT 900000 + g, '居民' || g,"
    " '199' || lpad(g::text, 8, '0'), 'zh' FROM generate_series(1, :n) g",
    "INSERT INTO post (person_id, node_id, role) SELECT 900000 + g, 900000 + g, 'resident'"
    " FROM generate_series(1, :n) g",
    "INSERT INTO chat_identity (person_id, platform, external_id, unreachable)"
    " SELECT 900000 + g, 'telegram', (7000000 + g)::text, false FROM generate_series(1, :n) g",
    "INSERT INTO chat_binding (platform, chat_id, node_id, tier)"
    " SELECT 'telegram', (-1000000 - g)::text, 900000 + g, 'neighborhood'"
    " FROM generate_series(1, :n) g",
    "INSERT INTO conversation (platform, chat_id, user_id, state, data, updated_at)"
    " SELECT 'telegram', (7000000 + g)::text, (7000000 + g)::text, 'idle', '{}', now()"
    " FROM generate_series(1, :n) g",
    "INSERT INTO away (person_id, stand_in_id, stand_in_role, stand_in_node_id, set_by_id,"
    " starts_at, ends_at, ended_at, end_reason) SELECT 900000 + g, 900000 + g + 1, 'resident',"
    " 900000 + g, 900000 + g, now() - interval '30 days', now() - interval '20 days',"
    " now() - interval '20 days', 'auto' FROM generate_series(1, :n - 1) g",
    "INSERT INTO cases (id, resident_id, opened_by_id, home_node_id, node_path, text, state,"
    " version, holder_id, holder_role, holder_node_id, nags_sent, stage_renewals, escalations,"
    " opened_at, updated_at, policy) SELECT 900000 + g, 900000 + g, 900000 + g, 900000 + g,"
    " '/900000/' || (900000 + g) || '/', '路灯不亮' || g, CASE WHEN g % 3 = 0 THEN 'open'"
    " ELSE 'closed' END, 1, 900000 + g, 'resident', 900000 + g, 0, 0, 0,"
    " now() - g * interval '20 minutes', now() - g * interval '20 minutes', '{}'"
    " FROM generate_series(1, :n) g",
    "INSERT INTO case_follower (case_id, person_id) SELECT 900000 + g, 900000 + g"
    " FROM generate_series(1, :n) g",
    "INSERT INTO case_event (case_id, at, actor_id, kind, detail) SELECT 900000 + g % :n + 1,"
    " now() - g * interval '5 minutes', 900000 + g % :n + 1, (ARRAY['opened', 'added',"
    " 'accepted', 'replied', 'nagged', 'escalated', 'resolved', 'closed'])[g % 8 + 1], '{}'"
    " FROM generate_series(1, 3 * :n) g",
    "INSERT INTO case_attachment (case_id, kind, purpose, created_at) SELECT 900000 + g,"
    " 'photo', 'report', now() FROM generate_series(1, :n) g",
    "INSERT INTO outbox (person_id, text, case_id, actions, kind, status, attempts,"
    " next_attempt_at, sent_at, created_at, dedupe_key) SELECT 900000 + g, '新工单', 900000 + g,"
    " '[]', 'new_case', 'sent', 1, now(), now(), now(), 'grow:' || g FROM generate_series(1, :n) g",
    "INSERT INTO delivery (outbox_id, platform, chat_id, message_id, part, part_type, case_id,"
    " kind, is_card, sent_at) SELECT o.id, 'telegram', (7000000 + o.person_id - 900000)::text,"
    " o.id::text, 0, 'text', o.case_id, 'new_case', true, now() FROM outbox o"
    " WHERE o.dedupe_key LIKE 'grow:%'",
    "INSERT INTO inbound_update (platform, update_id, received_at, payload, status, sender_id)"
    " SELECT 'telegram', 'grow' || g, now() - g * interval '1 minute', '{}', 'done',"
    " (7000000 + g)::text FROM generate_series(1, :n) g",
    "INSERT INTO send_log (platform, recipient, sent_at) SELECT 'telegram', (7000000 + g)::text,"
    " now() - g * interval '1 minute' FROM generate_series(1, :n) g",
    "INSERT INTO rollup_dirty (node_path, at) SELECT '/900000/' || (900000 + g) || '/', now()"
    " FROM generate_series(1, :n) g",
]


def _pg_seq_scans(engine: Engine, statement: str, parameters: Any) -> list[str]:
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        cur.execute("EXPLAIN " + statement, parameters)
        lines = [str(r[0]) for r in cur.fetchall()]
    return [x.strip() for x in lines
            if (m := re.search(r"Seq Scan on (\w+)", x)) and m.group(1) in GROWING]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_no_read_of_a_report_scans_a_grown_table_on_postgres(engine: Engine,
                                                              tmp_path: Path) -> None:
    load_demo(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        # The rows are consistent by construction: no per-row foreign key triggers (a
        # superuser's session setting; the append-only triggers fire on UPDATE/DELETE only).
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for statement in _GROW:
            conn.execute(sa.text(statement), {"n": N})
        conn.execute(sa.text("SET LOCAL session_replication_role = origin"))
        for table in ("cases", "case_event", "outbox", "delivery", "inbound_update",
                      "send_log", "person", "node", "post", "chat_identity"):
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                 f" (SELECT max(id) FROM {table}))"))
        conn.execute(sa.text("ANALYZE"))
    assert time.perf_counter() - started < 30
    reads = _report_reads(engine, tmp_path)
    # The check sees a scan when there is one.
    assert _pg_seq_scans(engine, "SELECT id FROM cases WHERE text = %(t)s", {"t": "x"})
    found = {" ".join(s.split())[:200]: scans for s, p in reads
             if (scans := _pg_seq_scans(engine, s, p))}
    assert found == {}, "\n".join(f"{k}\n    {v}" for k, v in found.items())
