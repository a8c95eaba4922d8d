"""An admin's import (chat /import) checked row by row against their scope (core.hierarchy.scope).

A row that changes nothing stored passes, so an admin's own export imports back unchanged
(their own post and node included); a row that adds or changes something must be one the
admin could write by hand. The operator's `linzhang import` skips all of this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from core.errors import phrase
from core.hierarchy.import_members import FILE_COLUMN, IDENTITY_COLUMNS, Staged
from core.hierarchy.model import Level, Role
from core.hierarchy.queries import Actor
from core.hierarchy.readers import Table
from core.hierarchy.scope import appoint_refusal, may_edit_person, node_refusal

if TYPE_CHECKING:
    from core.hierarchy.importer import Errors, TreeNode

_CHUNK = 500


def check_nodes(who: Actor, tree: dict[str, TreeNode], errors: Errors) -> None:
    """Every node row that adds or changes a node must lie strictly below the admin's node,
    before and after."""
    for n in tree.values():
        if n.where is None:
            continue
        pid = tree[n.parent_code].id if n.parent_code else None
        row = (pid, n.level.value, n.name, n.path, n.lat, n.lon)
        if n.stored is not None and row == n.stored:
            continue
        before = str(n.stored[3]) if n.stored is not None else None
        bad = node_refusal(who, before=before, after=n.path)
        if bad:
            errors.add(*n.where, phrase("row_node_refused", code=n.code, why=bad))


def check_categories(conn: sa.Connection, who: Actor, tables: list[Table],
                     errors: Errors) -> None:
    """Categories are the whole city's: an admin's file may repeat them, never change them."""
    from core.hierarchy.import_categories import category_row, stored_categories

    del who  # no admin post reaches the whole city's list; only the console changes it
    stored = stored_categories(conn)
    for t in tables:
        for rowno, row in t.rows():
            try:
                cat = category_row(t, row)
            except ValueError:
                continue  # read_categories reports it
            if stored.get(cat.name) != cat:
                errors.add(t.label, rowno, phrase("row_category_refused", name=cat.name))


def check_members(conn: sa.Connection, who: Actor, staged: Staged,
                  nodes: dict[int, tuple[str, Level, str]], errors: Errors) -> None:
    """Each members row that adds or changes a post must be one the admin may appoint; a row
    that renames a person or gives them a chat account also needs the admin to reach every
    post that person already holds. `nodes`: node id → (path, level, code) after the import."""
    owners = _identity_owners(conn)
    rows = conn.execute(sa.text(
        "SELECT s.seq, s.src, s.rowno, s.name, s.phone, s.role, s.node_id, s.address,"
        " s.tg, s.openid, s.wecom, p.id AS pid, p.name AS pname, x.id AS post_id,"
        " x.address AS post_address"
        " FROM imp_member s LEFT JOIN person p ON p.phone = s.phone"
        " LEFT JOIN post x ON x.person_id = p.id AND x.role = s.role AND x.node_id = s.node_id"
        " ORDER BY s.seq"
    ))
    edits: list[tuple[Any, set[int]]] = []
    for r in rows:
        touched: set[int] = set()
        renames = r.pid is not None and r.pname != r.name
        if renames:
            touched.add(r.pid)
        for col in IDENTITY_COLUMNS:
            value = getattr(r, col)
            if value is None:
                continue
            owner = owners.get((col, value))
            if owner is None:
                if r.pid is not None:
                    touched.add(r.pid)  # a new chat account for a stored person
            elif owner[1] is None:
                touched.add(owner[0])  # a person who joined by chat gets this phone
                if r.pid is not None:
                    touched.add(r.pid)
        post_changes = r.post_id is None or (
            r.src in staged.with_address and r.post_address != r.address)
        label = staged.labels[r.src]
        path, level, code = nodes[r.node_id]
        if not path:
            continue  # the nodes rows are already refused; their paths are not known
        if post_changes or touched:
            bad = appoint_refusal(who, Role(r.role), path, level)
            if bad:
                errors.add(label, r.rowno, phrase("row_post_refused", post=phrase(
                    f"role.{Role(r.role).value}"), code=code, why=bad))
                continue
        if touched:
            edits.append((r, touched))
    _check_people(conn, who, staged, edits, errors)


def _identity_owners(conn: sa.Connection) -> dict[tuple[str, str], tuple[int, str | None]]:
    """(column, chat id) → (person id, their phone) for the chat ids the file names."""
    out: dict[tuple[str, str], tuple[int, str | None]] = {}
    for col, (platform, _) in IDENTITY_COLUMNS.items():
        for value, pid, phone in conn.execute(sa.text(
            f"SELECT DISTINCT s.{col}, c.person_id, p.phone FROM imp_member s"
            f" JOIN chat_identity c ON c.platform = :platform AND c.external_id = s.{col}"
            " JOIN person p ON p.id = c.person_id"
        ), {"platform": platform.value}):
            out[(col, value)] = (pid, phone)
    return out


def _check_people(conn: sa.Connection, who: Actor, staged: Staged,
                  edits: list[tuple[Any, set[int]]], errors: Errors) -> None:
    people = sorted({pid for _, touched in edits for pid in touched})
    posts: dict[int, list[tuple[Role, str, Level]]] = {}
    for i in range(0, len(people), _CHUNK):
        chunk = people[i:i + _CHUNK]
        q = sa.text("SELECT x.person_id, x.role, n.path, n.level FROM post x"
                    " JOIN node n ON n.id = x.node_id WHERE x.person_id IN :ids"
                    ).bindparams(sa.bindparam("ids", expanding=True))
        for pid, role, path, level in conn.execute(q, {"ids": chunk}):
            posts.setdefault(pid, []).append((Role(role), path, Level(level)))
    editable = {pid: may_edit_person(who, posts.get(pid, [])) for pid in people}
    for r, touched in edits:
        if all(editable[pid] for pid in touched):
            continue
        cols = [FILE_COLUMN[c] for c in IDENTITY_COLUMNS if getattr(r, c) is not None]
        what = phrase("name_or_accounts" if cols else "name_only")
        errors.add(staged.labels[r.src], r.rowno,
                   phrase("row_person_refused", phone=r.phone, what=what))
