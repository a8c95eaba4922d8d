"""Members rows: validated row by row, staged in a temporary table, merged with set SQL.

A Bozhou-size members file has 1.2 M rows; holding them as Python objects would cost
gigabytes, so cross-row checks (duplicates, one phone with two names, a chat account claimed
twice) and the upserts run in the database over a staging table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from core.hierarchy.model import Level, Platform, Role
from core.hierarchy.readers import Table
from core.hierarchy.tree import normalize_phone, parse_role, role_error
from core.privacy import MASK_MARK, is_masked

if TYPE_CHECKING:
    from core.hierarchy.importer import Errors, ImportReport

IDENTITY_COLUMNS: dict[str, tuple[Platform, re.Pattern[str]]] = {
    "tg": (Platform.telegram, re.compile(r"[1-9]\d{0,19}")),
    "openid": (Platform.wechat, re.compile(r"[A-Za-z0-9_-]{1,64}")),
    "wecom": (Platform.wecom, re.compile(r"[A-Za-z0-9_.@-]{1,64}")),
}
FILE_COLUMN = {"tg": "telegram_user_id", "openid": "wechat_openid", "wecom": "wecom_userid"}
BATCH = 20_000


@dataclass
class Staged:
    labels: list[str]
    rows: int
    # Tables that have an address column: a file without one leaves stored addresses alone.
    with_address: list[int]


def _create_staging(conn: sa.Connection) -> None:
    conn.exec_driver_sql("DROP TABLE IF EXISTS imp_member")
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE imp_member (seq INTEGER NOT NULL, src INTEGER NOT NULL,"
        " rowno INTEGER NOT NULL, name VARCHAR(100) NOT NULL, phone VARCHAR(20) NOT NULL,"
        " role VARCHAR(20) NOT NULL, node_id INTEGER NOT NULL, address VARCHAR(300),"
        " tg VARCHAR(128), openid VARCHAR(128), wecom VARCHAR(128), person_id INTEGER)"
    )


def _insert_batch(conn: sa.Connection, batch: list[tuple[object, ...]]) -> None:
    if conn.dialect.name == "postgresql":
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cur.copy(
            "COPY imp_member (seq, src, rowno, name, phone, role, node_id, address, tg, openid,"
            " wecom) FROM STDIN"
        ) as copy:
            for row in batch:
                copy.write_row(row)
        return
    conn.exec_driver_sql(
        "INSERT INTO imp_member (seq, src, rowno, name, phone, role, node_id, address, tg, openid,"
        " wecom) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch
    )


def stage(conn: sa.Connection, tables: list[Table], levels: dict[str, tuple[int, Level]],
          errors: Errors, report: ImportReport, tick: Callable[[str, int], None]) -> Staged:
    """Validate each members row on its own and copy the good ones into the staging table."""
    _create_staging(conn)
    role_fit: dict[tuple[Role, Level], str | None] = {}
    seq = 0
    batch: list[tuple[object, ...]] = []
    labels = [t.label for t in tables]
    for src, t in enumerate(tables):
        c = t.columns
        idx = [c.get(k) for k in ("name", "phone", "role", "node_code", "address",
                                  "telegram_user_id", "wechat_openid", "wecom_userid")]
        width = max(i for i in idx if i is not None) + 1
        # A missing column reads the empty cell appended after the row's own cells.
        pick = itemgetter(*(i if i is not None else width for i in idx))
        pad = [""] * (width + 1)
        count = 0
        strip = str.strip
        for rowno, row in t.rows():
            count += 1
            if len(row) <= width:
                row = (row + pad)[: width + 1]
            name, phone_t, role_t, code, address, tg, openid, wecom = map(strip, pick(row))
            bad, staged = _check_row(name, phone_t, role_t, code, address, tg, openid, wecom,
                                     levels, role_fit)
            if bad:
                errors.add(t.label, rowno, bad)
                continue
            seq += 1
            batch.append((seq, src, rowno, *staged))
            if len(batch) >= BATCH:
                _insert_batch(conn, batch)
                tick("members", len(batch))
                batch = []
        report.rows_read[t.label] = count
    if batch:
        _insert_batch(conn, batch)
        tick("members", len(batch))
    report.lap("stage members")
    for col in ("phone", "tg", "openid", "wecom"):
        conn.exec_driver_sql(f"CREATE INDEX imp_member_{col} ON imp_member ({col})")
    report.lap("index staging")
    with_address = [k for k, t in enumerate(tables) if "address" in t.columns]
    return Staged(labels, seq, with_address)


_FAST_PHONE = frozenset("3456789")
MASKED_FILE = ("this file is a masked export (made below town level) and cannot be imported;"
               " import an export made by a town or district admin")


def _check_row(
    name: str, phone_t: str, role_t: str, code: str, address: str, tg: str, openid: str,
    wecom: str, levels: dict[str, tuple[int, Level]],
    role_fit: dict[tuple[Role, Level], str | None],
) -> tuple[str | None, tuple[object, ...]]:
    if not name:
        return "name is empty", ()
    if len(name) > 100:
        return "name is longer than 100 characters", ()
    # Fast paths for the common, already clean cell; the general parsers handle the rest.
    if len(phone_t) == 11 and phone_t.isdigit() and phone_t[0] == "1" and phone_t[1] in _FAST_PHONE:
        phone: str | None = phone_t
    else:
        phone = normalize_phone(phone_t)
        if phone is None and is_masked(phone_t):
            return f"phone {phone_t!r} is masked: {MASKED_FILE}", ()
        if phone is None:
            return f"malformed phone {phone_t!r} (an 11-digit mainland mobile number)", ()
    role = _ROLES.get(role_t) or parse_role(role_t)
    if role is None:
        return f"unknown role {role_t!r}", ()
    node = levels.get(code)
    if node is None:
        return (f"node {code} does not exist" if code else "node_code is empty"), ()
    key = (role, node[1])
    if key not in role_fit:
        role_fit[key] = role_error(role, node[1])
    if role_fit[key]:
        return f"{role_fit[key]} ({code})", ()
    if len(address) > 300:
        return "address is longer than 300 characters", ()
    if MASK_MARK * 2 in address:
        return f"address {address!r} is masked: {MASKED_FILE}", ()
    if tg and not (tg.isdigit() and tg[0] != "0" and len(tg) <= 20):
        return f"malformed telegram_user_id {tg!r}", ()
    if openid and not _OPENID.fullmatch(openid):
        return f"malformed wechat_openid {openid!r}", ()
    if wecom and not _WECOM.fullmatch(wecom):
        return f"malformed wecom_userid {wecom!r}", ()
    return None, (name, phone, role.value, node[0], address or None, tg or None, openid or None,
                  wecom or None)


_ROLES = {r.value: r for r in Role}
_OPENID = IDENTITY_COLUMNS["openid"][1]
_WECOM = IDENTITY_COLUMNS["wecom"][1]


def check(conn: sa.Connection, staged: Staged, errors: Errors, report: ImportReport) -> None:
    """Cross-row rules: no duplicate post, one name per phone, one person per chat account."""
    limit = errors.limit + 1
    label = staged.labels

    def bad_rows(sql: str, params: dict[str, str] | None = None) -> list[Any]:
        """The first `limit` bad rows in file order; the rest are only counted."""
        rows = list(conn.execute(sa.text(f"{sql} ORDER BY s.seq LIMIT {limit}"), params or {}))
        if len(rows) == limit:
            total = conn.execute(sa.text(f"SELECT COUNT(*) FROM ({sql}) q"),
                                 params or {}).scalar_one()
            errors.dropped += total - len(rows)
        return rows

    dup = bad_rows(
        "SELECT s.src, s.rowno, f.src AS fsrc, f.rowno AS frow, s.phone, s.role"
        " FROM imp_member s"
        " JOIN (SELECT phone, role, node_id, MIN(seq) AS first FROM imp_member"
        "       GROUP BY phone, role, node_id HAVING COUNT(*) > 1) d"
        "   ON d.phone = s.phone AND d.role = s.role AND d.node_id = s.node_id"
        " JOIN imp_member f ON f.seq = d.first"
        " WHERE s.seq <> d.first"
    )
    report.lap("check duplicates")
    for src, rowno, fsrc, frow, phone, role in dup:
        errors.add(label[src], rowno, f"duplicate: {phone} already holds {role} on this node "
                   f"({label[fsrc]}:{frow})")

    names = bad_rows(
        "SELECT s.src, s.rowno, s.name, f.name AS fname, f.src AS fsrc, f.rowno AS frow"
        " FROM imp_member s"
        " JOIN (SELECT phone, MIN(seq) AS first FROM imp_member GROUP BY phone"
        "       HAVING COUNT(DISTINCT name) > 1) d ON d.phone = s.phone"
        " JOIN imp_member f ON f.seq = d.first"
        " WHERE s.name <> f.name"
    )
    report.lap("check names")
    for src, rowno, name, fname, fsrc, frow in names:
        errors.add(label[src], rowno, f"the phone of {name} is already given to {fname} "
                   f"({label[fsrc]}:{frow}); one phone is one person")

    for col, (platform, _) in IDENTITY_COLUMNS.items():
        twice = bad_rows(
            f"SELECT s.src, s.rowno, s.{col}, f.src AS fsrc, f.rowno AS frow"
            " FROM imp_member s"
            f" JOIN (SELECT {col} AS v, MIN(seq) AS first FROM imp_member WHERE {col} IS NOT NULL"
            f"       GROUP BY {col} HAVING COUNT(DISTINCT phone) > 1) d ON d.v = s.{col}"
            " JOIN imp_member f ON f.seq = d.first"
            " WHERE s.phone <> f.phone"
        )
        for src, rowno, value, fsrc, frow in twice:
            errors.add(label[src], rowno, f"{FILE_COLUMN[col]} {value} is already given to "
                       f"another person ({label[fsrc]}:{frow})")
        taken = bad_rows(
            f"SELECT s.src, s.rowno, s.{col}, p.name FROM imp_member s"
            f" JOIN chat_identity c ON c.platform = :platform AND c.external_id = s.{col}"
            " JOIN person p ON p.id = c.person_id"
            " WHERE p.phone IS NOT NULL AND p.phone <> s.phone",
            {"platform": platform.value},
        )
        report.lap(f"check identities {col}")
        for src, rowno, value, owner in taken:
            errors.add(label[src], rowno, f"{FILE_COLUMN[col]} {value} already belongs to "
                       f"{owner}, who has another phone")


def apply(conn: sa.Connection, staged: Staged, report: ImportReport, *, now: datetime) -> None:
    """Merge the staging table into person, post and chat_identity; never delete anything."""
    _claim_phoneless(conn)
    report.lap("claim")
    r = conn.execute(sa.text(
        "INSERT INTO person (name, phone, language, created_at)"
        " SELECT MIN(s.name), s.phone, 'zh', :now FROM imp_member s"
        " WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.phone = s.phone)"
        " GROUP BY s.phone ORDER BY s.phone"
    ), {"now": now})
    report.people_added = r.rowcount
    report.lap("people_added")
    # One name per phone was checked, so any matching staging row carries the same name.
    r = conn.exec_driver_sql(
        "UPDATE person SET name = s.name FROM imp_member s"
        " WHERE person.phone = s.phone AND person.name <> s.name"
    )
    report.people_updated = r.rowcount
    report.lap("people_updated")
    conn.exec_driver_sql(
        "UPDATE imp_member SET person_id = p.id FROM person p WHERE p.phone = imp_member.phone"
    )
    report.lap("resolve people")
    r = conn.exec_driver_sql(
        "UPDATE post SET address = s.address FROM imp_member s"
        " WHERE post.person_id = s.person_id AND post.role = s.role"
        "   AND post.node_id = s.node_id AND post.address IS DISTINCT FROM s.address"
        f" AND s.src IN ({', '.join(str(k) for k in staged.with_address) or '-1'})"
    )
    report.posts_updated = r.rowcount
    report.lap("posts_updated")
    r = conn.exec_driver_sql(
        "INSERT INTO post (person_id, node_id, role, address)"
        " SELECT s.person_id, s.node_id, s.role, s.address FROM imp_member s"
        " WHERE NOT EXISTS (SELECT 1 FROM post x WHERE x.person_id = s.person_id"
        "                   AND x.role = s.role"
        "                   AND x.node_id = s.node_id)"
        " ORDER BY s.seq"
    )
    report.posts_added = r.rowcount
    report.lap("posts_added")
    for col, (platform, _) in IDENTITY_COLUMNS.items():
        r = conn.execute(sa.text(
            "INSERT INTO chat_identity (person_id, platform, external_id, unreachable)"
            # CAST: PostgreSQL cannot type a bare parameter used both here and in a comparison.
            " SELECT MIN(s.person_id), CAST(:platform AS VARCHAR(16)),"
            f" s.{col}, :no FROM imp_member s"
            f" WHERE s.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM chat_identity c"
            f"   WHERE c.platform = :platform AND c.external_id = s.{col})"
            # In key order: the unique index then grows at its end instead of at random.
            f" GROUP BY s.{col} ORDER BY s.{col}"
        ), {"platform": platform.value, "no": False})
        report.identities_added += r.rowcount
        report.lap(f"identities {col}")
    conn.exec_driver_sql("DROP TABLE imp_member")


def _claim_phoneless(conn: sa.Connection) -> None:
    """A person who joined by chat before their row was imported gets that row's phone."""
    for col, (platform, _) in IDENTITY_COLUMNS.items():
        rows = conn.execute(sa.text(
            f"SELECT DISTINCT c.person_id, s.phone, s.name FROM imp_member s"
            f" JOIN chat_identity c ON c.platform = :platform AND c.external_id = s.{col}"
            " JOIN person p ON p.id = c.person_id WHERE p.phone IS NULL"
        ), {"platform": platform.value}).all()
        for person_id, phone, name in rows:
            owner = conn.execute(sa.text("SELECT id FROM person WHERE phone = :ph"),
                                 {"ph": phone}).scalar_one_or_none()
            if owner is None:
                conn.execute(sa.text("UPDATE person SET phone = :ph, name = :n WHERE id = :id"),
                             {"ph": phone, "n": name, "id": person_id})
            elif owner != person_id:
                # The phone already has a person: move the chat account over to them.
                conn.execute(sa.text("UPDATE chat_identity SET person_id = :o WHERE person_id"
                                     " = :p AND platform = :platform"),
                             {"o": owner, "p": person_id, "platform": platform.value})
