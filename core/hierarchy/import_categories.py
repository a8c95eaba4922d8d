"""Categories rows of an import: what residents report, and which department takes it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sqlalchemy as sa

from core.hierarchy.readers import Table

if TYPE_CHECKING:
    from core.hierarchy.importer import Errors, ImportReport

SUFFIX_RE = re.compile(r"[0-9A-Za-z]{1,10}")


def read_categories(tables: list[Table], errors: Errors) -> dict[str, str | None]:
    """Categories by name with their department suffix; bad rows go to `errors`."""
    out: dict[str, str | None] = {}
    seen: dict[str, tuple[str, int]] = {}
    for t in tables:
        ci, di = t.columns["category"], t.columns.get("department_suffix")
        for rowno, row in t.rows():
            name = row[ci].strip() if ci < len(row) else ""
            suffix = row[di].strip() if di is not None and di < len(row) else ""
            if not name:
                errors.add(t.label, rowno, "category is empty")
            elif len(name) > 50:
                errors.add(t.label, rowno, "category is longer than 50 characters")
            elif name in seen:
                errors.add(t.label, rowno, f"duplicate category {name} (first on "
                           f"{seen[name][0]}:{seen[name][1]})")
            elif suffix and not SUFFIX_RE.fullmatch(suffix):
                errors.add(t.label, rowno, f"department suffix {suffix!r} is malformed (e.g. D01)")
            else:
                seen[name] = (t.label, rowno)
                out[name] = suffix or None
    return out


def write_categories(conn: sa.Connection, categories: dict[str, str | None],
                      report: ImportReport) -> None:
    """Add new categories and update changed suffixes; a category is never deleted."""
    stored: dict[str, str | None] = {
        name: suffix
        for name, suffix in conn.execute(sa.text("SELECT name, department_suffix FROM category"))
    }
    for name, suffix in categories.items():
        if name not in stored:
            conn.execute(sa.text("INSERT INTO category (name, department_suffix) VALUES (:n, :s)"),
                         {"n": name, "s": suffix})
            report.categories_added += 1
        elif stored[name] != suffix:
            conn.execute(sa.text("UPDATE category SET department_suffix = :s WHERE name = :n"),
                         {"n": name, "s": suffix})
            report.categories_updated += 1
