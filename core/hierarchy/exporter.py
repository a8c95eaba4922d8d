"""`linzhang export`: write the hierarchy back in the files `linzhang import` reads.

A full export (the operator's CLI, a town or district admin) round-trips into import. A masked
export (`masked=True`: an admin below town level, who does not keep the roster) hides phones and
addresses (core/privacy.py) and leaves chat accounts out; import refuses its masked cells, so it
can never be loaded back over real data.

No cell can become a formula in the reader's spreadsheet: see core/hierarchy/cells.py.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.errors import InvalidInput
from core.hierarchy import boundaries
from core.hierarchy.cells import csv_escape, xlsx_cell
from core.hierarchy.readers import HEADERS, Kind
from core.hierarchy.tree import subtree_bounds
from core.privacy import mask_address, mask_phone

XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit, less the header


@dataclass
class ExportReport:
    files: list[Path]
    nodes: int
    members: int
    categories: int
    masked: bool = False
    boundaries: int = 0


def _where_subtree(root_path: str | None, alias: str) -> tuple[str, dict[str, str]]:
    if root_path is None:
        return "", {}
    low, high = subtree_bounds(root_path)
    return f" AND {alias}.path >= :low AND {alias}.path < :high", {"low": low, "high": high}


def _nodes(conn: sa.Connection, root_path: str | None) -> Iterator[tuple[str, ...]]:
    """Depth first, siblings by code: parents before children, and an order that does not
    depend on row ids (ORDER BY path would: a fresh import numbers the nodes differently, so
    export → import elsewhere → export would shuffle the rows)."""
    where, params = _where_subtree(root_path, "n")
    rows: list[Any] = list(conn.execute(sa.text(
        "SELECT n.id, n.parent_id, n.code, p.code, n.level, n.name, n.latitude, n.longitude"
        " FROM node n LEFT JOIN node p ON p.id = n.parent_id WHERE 1 = 1" + where
    ), params))
    ids = {r[0] for r in rows}
    children: dict[int | None, list[Any]] = {}
    for r in rows:
        children.setdefault(r[1] if r[1] in ids else None, []).append(r)
    for kids in children.values():
        kids.sort(key=lambda r: r[2])
    stack = list(reversed(children.get(None, [])))
    while stack:
        nid, _, code, pcode, level, name, lat, lon = stack.pop()
        yield (code, pcode or "", level, name, _num(lat), _num(lon))
        stack.extend(reversed(children.get(nid, [])))


def _num(v: float | None) -> str:
    return "" if v is None else repr(v)


def _members(conn: sa.Connection, root_path: str | None,
             masked: bool = False) -> Iterator[tuple[str, ...]]:
    where, params = _where_subtree(root_path, "n")
    # One chat account per platform per person: the first one they got. The others are kept in
    # the database; a re-import never drops them.
    rows = conn.execute(sa.text(
        "SELECT p.name, p.phone, x.role, n.code, x.address,"
        " (SELECT c.external_id FROM chat_identity c WHERE c.id = (SELECT MIN(c2.id)"
        "   FROM chat_identity c2 WHERE c2.person_id = p.id AND c2.platform = 'telegram')),"
        " (SELECT c.external_id FROM chat_identity c WHERE c.id = (SELECT MIN(c2.id)"
        "   FROM chat_identity c2 WHERE c2.person_id = p.id AND c2.platform = 'wechat')),"
        " (SELECT c.external_id FROM chat_identity c WHERE c.id = (SELECT MIN(c2.id)"
        "   FROM chat_identity c2 WHERE c2.person_id = p.id AND c2.platform = 'wecom'))"
        " FROM post x JOIN person p ON p.id = x.person_id JOIN node n ON n.id = x.node_id"
        # Residents a campaign found moved away are no members any more (core/campaigns).
        " WHERE p.phone IS NOT NULL AND x.moved_at IS NULL" + where + " ORDER BY x.id"
    ), params)
    for name, phone, role, code, address, tg, openid, wecom in rows:
        if masked:
            yield (name, mask_phone(phone), role, code, mask_address(address) or "", "", "", "")
        else:
            yield (name, phone, role, code, address or "", tg or "", openid or "",
                   wecom or "")


def _categories(conn: sa.Connection) -> Iterator[tuple[str, ...]]:
    rows = conn.execute(sa.text(
        "SELECT name, department_suffix, parent_name, answer_limit, handle_limit, verify,"
        " route_to, canned FROM category ORDER BY id"))
    for name, suffix, parent, answer, handle, verify, route, canned in rows:
        yield (name, suffix or "", parent or "", answer or "", handle or "",
               "yes" if verify else "", route or "", canned or "")


def export_files(engine: Engine | sa.Connection, out: Path, *, fmt: str = "csv",
                 root_code: str | None = None, masked: bool = False) -> ExportReport:
    """Write nodes, members and categories (CSV files in a folder, or one XLSX workbook);
    given a connection, it reads inside that connection's transaction. `masked`: phones and
    addresses hidden (see the module docstring)."""
    if fmt not in ("csv", "xlsx"):
        raise InvalidInput("export_format_unknown", format=fmt)
    opened = engine.connect() if isinstance(engine, Engine) else contextlib.nullcontext(engine)
    with opened as conn:
        root_path = None
        if root_code is not None:
            root_path = conn.execute(sa.text("SELECT path FROM node WHERE code = :c"),
                                     {"c": root_code}).scalar_one_or_none()
            if root_path is None:
                raise InvalidInput("node_code_unknown", code=root_code)
        has_coords = conn.execute(sa.text(
            "SELECT 1 FROM node WHERE latitude IS NOT NULL OR longitude IS NOT NULL LIMIT 1"
        )).first() is not None
        node_headers = HEADERS[Kind.nodes] + (("latitude", "longitude") if has_coords else ())
        tables = [
            (Kind.nodes, node_headers,
             (r if has_coords else r[:4] for r in _nodes(conn, root_path))),
            (Kind.members, HEADERS[Kind.members], _members(conn, root_path, masked)),
            (Kind.categories, HEADERS[Kind.categories], _categories(conn)),
        ]
        counts: dict[Kind, int] = {}
        files: list[Path] = []
        if fmt == "csv":
            out.mkdir(parents=True, exist_ok=True)
            for kind, headers, rows in tables:
                path = out / f"{kind.value}.csv"
                with path.open("w", newline="", encoding="utf-8") as f:
                    w = csv.writer(f)
                    w.writerow(headers)
                    n = 0
                    for row in rows:
                        w.writerow([csv_escape(v) for v in row])
                        n += 1
                counts[kind] = n
                files.append(path)
        else:
            from openpyxl import Workbook

            wb = Workbook(write_only=True)
            for kind, headers, rows in tables:
                ws = wb.create_sheet(kind.value)
                ws.append(list(headers))
                n = 0
                for row in rows:
                    n += 1
                    if n > XLSX_MAX_ROWS:
                        raise InvalidInput("export_sheet_full", kind=kind.value)
                    ws.append([xlsx_cell(ws, v) for v in row])
                counts[kind] = n
            path = out if out.suffix.lower() == ".xlsx" else out / "linzhang.xlsx"
            path.parent.mkdir(parents=True, exist_ok=True)
            wb.save(path)
            files.append(path)
        low, high = subtree_bounds(root_path) if root_path else (None, None)
        geo = (path.parent if fmt == "xlsx" else out) / "boundaries.geojson"
        shapes = boundaries.export(conn, geo, low=low, high=high)
        if shapes is not None:
            files.append(geo)
    return ExportReport(files, counts[Kind.nodes], counts[Kind.members], counts[Kind.categories],
                        masked, shapes or 0)
