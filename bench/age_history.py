"""A year of history, bulk-loaded: cases with their append-only events, followers, and the
outbox, delivery, inbound-update and send-log rows that went with them (bench/bench_age.py).

Through the raw DB-API connection: executemany on SQLite (foreign keys off for the load),
COPY on PostgreSQL. Rows carry explicit ids, so a later load continues where one stopped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from core.cases.policy import CasePolicy

FMT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Home:
    """A resident the history is about: their 邻, its path and its 邻长 (the holder)."""

    person_id: int
    node_id: int
    path: str
    leader_id: int
    leader_tg: str
    tg: str


@dataclass
class Ids:
    """The next free id of each table that the load fills."""

    case: int = 1
    event: int = 1
    row: int = 1  # outbox, delivery, inbound_update and send_log share one counter


CASE_COLS = ("id", "resident_id", "opened_by_id", "home_node_id", "node_path", "text", "state",
             "version", "holder_id", "holder_role", "holder_node_id", "first_holder_id",
             "first_holder_role", "stage", "stage_started_at", "deadline_at", "next_due_at",
             "nags_sent", "stage_renewals", "escalations", "opened_at", "updated_at",
             "accepted_at", "resolved_at", "closed_at", "close_reason", "rating", "policy",
             "maybe_dupes", "missed_deadlines")
EVENT_COLS = ("id", "case_id", "at", "actor_id", "kind", "from_state", "to_state", "role",
              "holder_id", "via", "note", "detail")
TABLES: dict[str, tuple[str, ...]] = {
    "cases": CASE_COLS,
    "case_event": EVENT_COLS,
    "case_follower": ("case_id", "person_id"),
    "outbox": ("id", "person_id", "text", "case_id", "actions", "kind", "status", "attempts",
               "next_attempt_at", "sent_at", "created_at", "dedupe_key"),
    "delivery": ("id", "outbox_id", "platform", "chat_id", "message_id", "part", "part_type",
                 "case_id", "kind", "is_card", "sent_at"),
    "inbound_update": ("id", "platform", "update_id", "received_at", "payload", "status",
                       "processed_at", "sender_id"),
    "send_log": ("id", "platform", "recipient", "sent_at"),
}
# Words residents write about (varied, so the duplicate search has real text to score).
WORDS = ("楼道灯坏了", "垃圾桶满了", "下水道堵塞", "路面坑洼", "噪音扰民", "占道经营", "树枝挡路",
         "井盖松动", "小区门口积水", "电动车乱停", "楼顶漏水", "野狗伤人", "宣传栏破损",
         "路灯不亮", "违章搭建", "油烟太大")
MIDDLE = {"open": ("added", "nagged", "escalated", "nagged"),
          "accepted": ("replied", "added", "replied", "nagged"),
          "closed": ("replied", "added", "replied", "nagged")}


def _events(state: str, k: int) -> list[tuple[str, str | None, str | None]]:
    """k events (kind, from_state, to_state) of a case that is now in `state`."""
    head = [("opened", None, "open")]
    if state != "open":
        head.append(("accepted", "open", "accepted"))
    tail = ([("resolved", "accepted", "resolved"), ("closed", "resolved", "closed")]
            if state == "closed" else [])
    middle = MIDDLE[state]
    fill = [(middle[i % len(middle)], None, None)
            for i in range(max(0, k - len(head) - len(tail)))]
    return head + fill + tail


def history(homes: Sequence[Home], ids: Ids, *, cases: int, events: int, start: datetime,
            days: int, closed_share: float, after: datetime,
            seed: int) -> Iterator[tuple[str, tuple[object, ...]]]:
    """(table, row) for `cases` cases with about `events` events in all, opened over `days`
    days from `start`; open ones fall due after `after` (nothing becomes due while measuring)."""
    rnd = random.Random(seed)
    policy = json.dumps(CasePolicy().to_json())
    per_case = events / max(1, cases)
    spent = 0
    for n in range(cases):
        h = homes[rnd.randrange(len(homes))]
        cid = ids.case
        ids.case += 1
        state = ("closed" if rnd.random() < closed_share
                 else "accepted" if rnd.random() < 0.4 else "open")
        # Whole events per case, their sum tracking the target: 2 to 2×mean-2.
        k = max(2 if state == "open" else 4, round((n + 1) * per_case) - spent)
        spent += k
        opened = start + timedelta(seconds=rnd.randrange(days * 86400))
        evs = _events(state, k)
        step = timedelta(minutes=rnd.randrange(5, 240))
        last = opened + step * (len(evs) - 1)
        closed = state == "closed"
        due = None if closed else after + timedelta(days=3, seconds=rnd.randrange(86400))
        text = f"{WORDS[rnd.randrange(len(WORDS))]}，{h.path[-6:]}号楼{n % 37}单元"
        yield "cases", (
            cid, h.person_id, h.person_id, h.node_id, h.path, text, state, len(evs),
            h.leader_id, "neighbor_leader", h.node_id, h.leader_id, "neighbor_leader",
            None if closed else ("reply" if state == "open" else "handle"),
            None if closed else last, due, due, 0, 0, 0, opened, last,
            opened + step if state != "open" else None,
            last - step if closed else None, last if closed else None,
            "confirmed" if closed else None, rnd.randint(3, 5) if closed else None, policy, "", 0)
        yield "case_follower", (cid, h.person_id)
        for j, (kind, frm, to) in enumerate(evs):
            by_resident = kind in ("opened", "added")
            yield "case_event", (
                ids.event, cid, opened + step * j,
                h.person_id if by_resident else (None if kind in ("nagged", "escalated", "closed")
                                                 else h.leader_id),
                kind, frm, to, "neighbor_leader", h.leader_id, "telegram" if by_resident else None,
                text if kind == "opened" else (f"补充{j}" if kind == "added" else None), "{}")
            ids.event += 1
        r = ids.row
        ids.row += 1
        yield "inbound_update", (r, "telegram", f"hist{r}", opened, "{}", "done", opened, h.tg)
        yield "outbox", (r, h.leader_id, text, cid, "[]", "new_case", "sent", 1, opened, opened,
                         opened, f"hist:{r}")
        yield "delivery", (r, r, "telegram", h.leader_tg, str(r), 0, "text", cid, "new_case",
                           True, opened)
        yield "send_log", (r, "telegram", h.leader_tg, opened)


def load(engine: Engine, rows: Iterator[tuple[str, tuple[object, ...]]],
         chunk: int = 20_000) -> dict[str, int]:
    """Write the rows; the count per table."""
    counts = dict.fromkeys(TABLES, 0)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.execute("BEGIN")
            buf: dict[str, list[tuple[object, ...]]] = {t: [] for t in TABLES}

            def flush(t: str) -> None:
                cols = TABLES[t]
                cur.executemany(f"INSERT INTO {t} ({', '.join(cols)}) VALUES "
                                f"({', '.join('?' for _ in cols)})", buf[t])
                buf[t].clear()

            for t, row in rows:
                buf[t].append(tuple(v.strftime(FMT) if isinstance(v, datetime) else v
                                    for v in row))
                counts[t] += 1
                if len(buf[t]) >= chunk:
                    flush(t)
            for t in TABLES:
                flush(t)
            cur.execute("COMMIT")
            cur.execute("PRAGMA foreign_keys=ON")
        else:
            # One COPY per table at a time: spool each table's rows, then stream them.
            spool: dict[str, list[tuple[object, ...]]] = {t: [] for t in TABLES}

            def copy(t: str) -> None:
                with cur.copy(f"COPY {t} ({', '.join(TABLES[t])}) FROM STDIN") as cp:
                    for row in spool[t]:
                        cp.write_row(row)
                spool[t].clear()

            for t, row in rows:
                spool[t].append(row)
                counts[t] += 1
                if len(spool["case_event"]) >= 500_000:
                    for name in TABLES:  # parents before children
                        copy(name)
            for name in TABLES:
                copy(name)
            for t in ("cases", "case_event", "outbox", "delivery", "inbound_update", "send_log"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT max(id) FROM {t}))")
            raw.commit()
    finally:
        raw.close()
    return counts


def analyze(engine: Engine) -> None:
    """Fresh statistics for PostgreSQL's planner after a bulk load (SQLite is left as a
    deployment has it: the app never runs ANALYZE there, its planner uses fixed heuristics)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
