"""`linzhang import`: all-or-nothing import of nodes, members and categories."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.clock import Clock, SystemClock
from core.db import write_transaction
from core.errors import ImportRejected, InvalidInput
from core.hierarchy import boundaries, import_members, import_scope
from core.hierarchy.import_categories import (
    check_references,
    department_codes,
    read_categories,
    write_categories,
)
from core.hierarchy.import_routing import check_rules, read_rules, write_rules
from core.hierarchy.import_rows import Errors, ImportReport, NodeRow, TreeNode
from core.hierarchy.model import Level
from core.hierarchy.queries import Actor
from core.hierarchy.readers import Kind, Table, open_tables
from core.hierarchy.tree import LEVEL_NAMES_ZH, nesting_error, parse_level, role_error

__all__ = ["Errors", "ImportReport", "NodeRow", "TreeNode", "import_files", "import_into"]
Progress = Callable[[str, int], None]
CODE_RE = re.compile(r"[0-9A-Za-z._-]{1,40}")


def import_files(
    engine: Engine, paths: Iterable[Path | str], *, clock: Clock | None = None,
    progress: Progress | None = None, max_errors: int = 1000,
) -> ImportReport:
    """The operator's import (unlimited) in one transaction; any bad row rejects it all."""
    with write_transaction(engine) as conn:
        return import_into(conn, paths, by=None, clock=clock, progress=progress,
                           max_errors=max_errors)


def import_into(
    conn: sa.Connection, paths: Iterable[Path | str], *, by: Actor | None,
    clock: Clock | None = None, progress: Progress | None = None, max_errors: int = 1000,
) -> ImportReport:
    """Import inside the caller's transaction (raises ImportRejected before writing anything);
    `by` is the admin importing, checked row by row against their scope (None: the operator
    at the console, unlimited)."""
    started = time.perf_counter()
    clock = clock or SystemClock()
    tables: list[Table] = []
    errors = Errors(max_errors)
    files = [Path(p) for p in paths]
    geo = [p for p in files if boundaries.is_boundaries(p)]
    for p in files:
        if p in geo:
            continue
        try:
            tables.extend(open_tables(Path(p), on_error=errors.add))
        except ImportRejected as exc:  # a file that is no table: its own row errors
            for bad in exc.errors:
                errors.add(bad.file, bad.row, bad.reason)
    errors.raise_if_any()
    if by is not None and geo:
        errors.add(geo[0].name, 0, "boundaries are imported at the console (linzhang import)")
    errors.raise_if_any()
    if not tables and not geo:
        raise InvalidInput("import_nothing")
    report = ImportReport()
    tick = progress or (lambda _phase, _n: None)
    report.lap("open")
    tree = _load_tree(conn)
    report.lap("load tree")
    node_rows = _read_nodes([t for t in tables if t.kind == Kind.nodes], errors, report, tick)
    changed = _merge_nodes(tree, node_rows, errors)
    if by is not None and not errors:  # paths are known only when the tree is sound
        import_scope.check_nodes(by, tree, errors)
    _check_changed_levels(conn, tree, changed, errors)
    report.lap("nodes")
    shapes = boundaries.read_files(geo, known=tree.__contains__, on_error=lambda f, n, why:
                                   errors.add(f, n, why, "feature "))
    category_tables = [t for t in tables if t.kind == Kind.categories]
    categories = read_categories(category_tables, errors)
    if categories and not errors:  # references are checked once the tree itself is sound
        check_references(conn, categories,
                         department_codes((c, n.level) for c, n in tree.items()), errors)
    routing_tables = [t for t in tables if t.kind == Kind.routing]
    rules = read_rules(routing_tables, errors) if routing_tables else None
    if rules is not None:
        if by is not None:
            errors.add(routing_tables[0].label, 0,
                       "routing rules are the whole city's: imported at the console")
        if not errors:
            check_rules(conn, rules, categories, ((c, n.level) for c, n in tree.items()),
                        errors)
    if by is not None:
        import_scope.check_categories(conn, by, category_tables, errors)
    levels = {code: (n.id, n.level) for code, n in tree.items()}
    members = [t for t in tables if t.kind == Kind.members]
    staged = import_members.stage(conn, members, levels, errors, report, tick) if members \
        else None
    try:
        if staged is not None:
            # Also when single rows were bad: every bad row is reported in one go.
            import_members.check(conn, staged, errors, report)
            if by is not None:
                import_scope.check_members(conn, by, staged, {
                    n.id: (n.path, n.level, n.code) for n in tree.values()}, errors)
        errors.raise_if_any()
    except ImportRejected:
        if staged is not None:
            conn.exec_driver_sql("DROP TABLE IF EXISTS imp_member")
        raise
    _write_nodes(conn, tree, report)
    write_categories(conn, categories, report)
    if rules is not None:
        report.rules = write_rules(conn, rules)
    report.boundaries = boundaries.write(conn, shapes, {c: n.id for c, n in tree.items()})
    report.lap("write nodes")
    if staged is not None:
        import_members.apply(conn, staged, report, now=clock.now())
        tick("apply", 1)
    report.lap("apply")
    if report.changed and conn.dialect.name == "postgresql":
        # Fresh statistics: without them the planner picks nested loops that are quadratic
        # on a freshly loaded city (an export of 2,400 members took a second, not 0.1 s).
        conn.exec_driver_sql("ANALYZE node, person, post, chat_identity")
        report.lap("analyze")
    report.seconds = time.perf_counter() - started
    return report


def _load_tree(conn: sa.Connection) -> dict[str, TreeNode]:
    rows = conn.exec_driver_sql(
        "SELECT n.id, n.code, p.code, n.level, n.name, n.path, n.latitude, n.longitude, n.parent_id"
        " FROM node n LEFT JOIN node p ON p.id = n.parent_id"
    )
    tree: dict[str, TreeNode] = {}
    for nid, code, pcode, level, name, path, lat, lon, pid in rows:
        tree[code] = TreeNode(nid, code, pcode or "", Level(level), name, path, lat, lon,
                              stored=(pid, level, name, path, lat, lon))
    return tree


def _cell(row: list[str], i: int | None) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _opt_float(text: str, lo: float, hi: float) -> float | None:
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if not lo <= value <= hi:
        raise ValueError
    return value


def _read_nodes(tables: list[Table], errors: Errors, report: ImportReport,
                tick: Progress) -> list[NodeRow]:
    out: list[NodeRow] = []
    first: dict[str, tuple[str, int]] = {}
    for t in tables:
        ci, pi, li, ni = (t.columns[k] for k in ("code", "parent_code", "level", "name"))
        lai, loi = t.columns.get("latitude"), t.columns.get("longitude")
        count = 0
        for rowno, row in t.rows():
            count += 1
            code, parent, level_text, name = (_cell(row, i) for i in (ci, pi, li, ni))
            bad = _node_row_error(code, parent, level_text, name)
            if bad:
                errors.add(t.label, rowno, bad)
                continue
            if code in first:
                f, r = first[code]
                errors.add(t.label, rowno, f"duplicate code {code} (first on {f}:{r})")
                continue
            try:
                lat = _opt_float(_cell(row, lai), -90, 90)
                lon = _opt_float(_cell(row, loi), -180, 180)
            except ValueError:
                errors.add(t.label, rowno, "latitude/longitude is not a valid coordinate")
                continue
            first[code] = (t.label, rowno)
            level = parse_level(level_text)
            assert level is not None
            out.append(NodeRow(code, parent, level, name, lat, lon, (t.label, rowno)))
        report.rows_read[t.label] = count
        tick("nodes", count)
    return out


def _node_row_error(code: str, parent: str, level_text: str, name: str) -> str | None:
    if not code:
        return "code is empty"
    if not CODE_RE.fullmatch(code):
        return f"code {code!r} is malformed (letters, digits, . _ - up to 40)"
    if parent == code:
        return f"node {code} names itself as its parent"
    if parse_level(level_text) is None:
        return f"unknown level {level_text!r} (district, town, village, area, group, " \
               f"neighborhood, department or {LEVEL_NAMES_ZH})"
    if not name:
        return "name is empty"
    if len(name) > 200:
        return "name is longer than 200 characters"
    return None


def _merge_nodes(tree: dict[str, TreeNode], rows: list[NodeRow], errors: Errors) -> set[str]:
    """Lay the file rows over the stored tree; returns the codes whose level changed."""
    next_id = max((n.id for n in tree.values()), default=0) + 1
    level_changed: set[str] = set()
    for r in rows:
        node = tree.get(r.code)
        if node is None:
            tree[r.code] = TreeNode(next_id, r.code, r.parent_code, r.level, r.name, "",
                                    r.lat, r.lon, stored=None, where=r.where)
            next_id += 1
            continue
        if node.level != r.level:
            level_changed.add(r.code)
        node.parent_code, node.level, node.name = r.parent_code, r.level, r.name
        node.where = r.where
        if r.lat is not None or r.lon is not None:
            node.lat, node.lon = r.lat, r.lon
    for r in rows:
        node = tree[r.code]
        parent = tree.get(r.parent_code) if r.parent_code else None
        if r.parent_code and parent is None:
            errors.add(*r.where, f"parent {r.parent_code} does not exist")
            continue
        bad = nesting_error(r.level, parent.level if parent else None)
        if bad:
            errors.add(*r.where, f"wrong nesting: {bad} ({r.parent_code})" if parent else
                       f"wrong nesting: {bad}")
    if not errors:
        _assign_paths(tree, errors)
    return level_changed


def _assign_paths(tree: dict[str, TreeNode], errors: Errors) -> None:
    resolved: dict[str, str] = {}
    for start in tree:
        chain: list[str] = []
        code = start
        while code not in resolved:
            if code in chain:
                # Report it on a file row of the cycle itself (the walk may have started
                # below it, or at a stored node that no file row names).
                cycle = chain[chain.index(code):]
                named = next((c for c in cycle if tree[c].where is not None), cycle[0])
                where = tree[named].where or ("database", 0)
                loop = " → ".join([*cycle[cycle.index(named):], *cycle[:cycle.index(named)],
                                   named])
                errors.add(*where, f"node {named} would be its own ancestor ({loop})")
                return
            chain.append(code)
            parent = tree[code].parent_code
            if not parent:
                resolved[code] = f"/{tree[code].id}/"
                chain.pop()
                break
            code = parent
        for c in reversed(chain):
            resolved[c] = f"{resolved[tree[c].parent_code]}{tree[c].id}/"
    for code, path in resolved.items():
        tree[code].path = path


def _check_changed_levels(conn: sa.Connection, tree: dict[str, TreeNode], changed: set[str],
                          errors: Errors) -> None:
    """A node whose level changes must still fit its stored children and the posts on it."""
    if not changed or errors:
        return
    stored_children: dict[str, list[TreeNode]] = {}
    for n in tree.values():
        if n.where is None and n.parent_code in changed:
            stored_children.setdefault(n.parent_code, []).append(n)
    for code in changed:
        node = tree[code]
        where = node.where or ("database", 0)
        for child in stored_children.get(code, []):
            bad = nesting_error(child.level, node.level)
            if bad:
                errors.add(*where, f"changing {code} to {node.level.value} would break its "
                           f"child {child.code}: {bad}")
        for (role,) in conn.execute(sa.text("SELECT DISTINCT role FROM post WHERE node_id = :n"),
                                    {"n": node.id}):
            from core.hierarchy.model import Role

            bad = role_error(Role(role), node.level)
            if bad:
                errors.add(*where, f"changing {code} to {node.level.value} conflicts with its "
                           f"posts: {bad}")


def _write_nodes(conn: sa.Connection, tree: dict[str, TreeNode], report: ImportReport) -> None:
    inserts, updates = [], []
    for n in tree.values():
        pid = tree[n.parent_code].id if n.parent_code else None
        row = (pid, n.level.value, n.name, n.path, n.lat, n.lon)
        if n.stored is None:
            inserts.append((n.path.count("/"), (n.id, n.code, *row)))
        elif row != n.stored:
            updates.append((*row, n.id))
    # Parents first, so that foreign keys hold at every insert.
    inserts.sort(key=lambda x: x[0])
    ph = "?" if conn.dialect.name == "sqlite" else "%s"
    if inserts:
        conn.exec_driver_sql(
            "INSERT INTO node (id, code, parent_id, level, name, path, latitude, longitude)"
            f" VALUES ({', '.join([ph] * 8)})", [r for _, r in inserts],
        )
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('node', 'id'), (SELECT MAX(id) FROM node))"
            )
    if updates:
        conn.exec_driver_sql(
            f"UPDATE node SET parent_id = {ph}, level = {ph}, name = {ph}, path = {ph},"
            f" latitude = {ph}, longitude = {ph} WHERE id = {ph}", updates,
        )
    report.nodes_added, report.nodes_updated = len(inserts), len(updates)
    if any(n.stored is not None and n.stored[3] != n.path for n in tree.values()):
        # A node moved: the figure rollups file villages by path, so rebuild them.
        from core.rollup.model import STATE

        conn.execute(sa.update(STATE).values(rebuild=True))
