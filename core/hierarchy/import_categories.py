"""Categories rows of an import: what residents report, which department takes it, and the
category's own policy (大类, time limits, 需核查, 直派) of FORMATS.md."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from core.cases.worktime import LimitError, parse_limit
from core.hierarchy.model import Level
from core.hierarchy.readers import Table

if TYPE_CHECKING:
    from core.hierarchy.importer import Errors, ImportReport

SUFFIX_RE = re.compile(r"[0-9A-Za-z]{1,10}")
YES = {"yes", "y", "true", "1", "是", "需", "需要"}
NO = {"", "no", "n", "false", "0", "否", "不", "不需要"}
# Tiers a category may be routed to straight away (直派) instead of the 邻长.
ROUTE_ROLES = ("group_leader", "area_leader", "secretary")
ROUTE_ROLES_ZH = {"组长": "group_leader", "片长": "area_leader", "书记": "secretary"}
STORED_COLUMNS = "name, department_suffix, parent_name, answer_limit, handle_limit, verify," \
                 " route_to, canned"
# 常用答复: a few ready answers per category, "|" between them (README).
CANNED_MOST, CANNED_LONGEST = 5, 300


@dataclass(frozen=True)
class CategoryRow:
    """One category as a file gives it (empty optional cells: None / False)."""

    name: str
    department_suffix: str | None = None
    parent_name: str | None = None
    answer_limit: str | None = None
    handle_limit: str | None = None
    verify: bool = False
    route_to: str | None = None
    canned: str | None = None  # the ready answers joined by "|"
    # Where the row came from (file, row), for the errors of check_references.
    where: tuple[str, int] = field(default=("", 0), compare=False)

    def values(self) -> dict[str, object]:
        return {"n": self.name, "s": self.department_suffix, "p": self.parent_name,
                "a": self.answer_limit, "h": self.handle_limit, "v": self.verify,
                "r": self.route_to, "c": self.canned}


def stored_categories(conn: sa.Connection) -> dict[str, CategoryRow]:
    return {r[0]: CategoryRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])
            for r in conn.execute(sa.text(f"SELECT {STORED_COLUMNS} FROM category"))}


def _cell(row: list[str], i: int | None) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _limit(text: str, column: str) -> str | None:
    if not text:
        return None
    try:
        return parse_limit(text).text()
    except LimitError as exc:
        raise ValueError(f"{column}: {exc}") from None


def _route(text: str) -> str | None:
    if not text:
        return None
    role = ROUTE_ROLES_ZH.get(text, text)
    if role in ROUTE_ROLES or SUFFIX_RE.fullmatch(role):
        return role
    raise ValueError(f"route_to {text!r} is neither a department suffix (e.g. D06) nor one of "
                     f"{', '.join(ROUTE_ROLES)}")


def split_canned(text: str | None) -> list[str]:
    """The ready answers of a stored `canned` cell, in file order."""
    return [a.strip() for a in (text or "").split("|") if a.strip()]


def _canned(text: str) -> str | None:
    if not text:
        return None
    parts = [a.strip() for a in text.split("|")]
    if any(not a for a in parts):
        raise ValueError("canned has an empty answer (two | in a row, or one at an end)")
    if len(parts) > CANNED_MOST:
        raise ValueError(f"canned has {len(parts)} answers; at most {CANNED_MOST}")
    long = [a for a in parts if len(a) > CANNED_LONGEST]
    if long:
        raise ValueError(f"canned answer {long[0][:20]!r}… is longer than {CANNED_LONGEST} "
                         "characters")
    return "|".join(parts)


def category_row(t: Table, row: list[str]) -> CategoryRow:
    """One row checked on its own; a ValueError says what is wrong."""
    col = t.columns.get
    name = _cell(row, col("category"))
    suffix = _cell(row, col("department_suffix"))
    if not name:
        raise ValueError("category is empty")
    if len(name) > 50:
        raise ValueError("category is longer than 50 characters")
    if suffix and not SUFFIX_RE.fullmatch(suffix):
        raise ValueError(f"department suffix {suffix!r} is malformed (e.g. D01)")
    verify = _cell(row, col("verify")).lower()
    if verify not in YES | NO:
        raise ValueError(f"verify {verify!r} is neither yes nor no")
    parent = _cell(row, col("parent_category")) or None
    if parent == name:
        raise ValueError(f"category {name} cannot be its own parent_category")
    return CategoryRow(
        name=name, department_suffix=suffix or None, parent_name=parent,
        answer_limit=_limit(_cell(row, col("answer_limit")), "answer_limit"),
        handle_limit=_limit(_cell(row, col("handle_limit")), "handle_limit"),
        verify=verify in YES, route_to=_route(_cell(row, col("route_to"))),
        canned=_canned(_cell(row, col("canned"))),
    )


def read_categories(tables: list[Table], errors: Errors) -> dict[str, CategoryRow]:
    """Categories by name with their policy; bad rows go to `errors`."""
    out: dict[str, CategoryRow] = {}
    seen: dict[str, tuple[str, int]] = {}
    for t in tables:
        for rowno, row in t.rows():
            try:
                cat = category_row(t, row)
            except ValueError as exc:
                errors.add(t.label, rowno, str(exc))
                continue
            if cat.name in seen:
                errors.add(t.label, rowno, f"duplicate category {cat.name} (first on "
                           f"{seen[cat.name][0]}:{seen[cat.name][1]})")
                continue
            seen[cat.name] = (t.label, rowno)
            out[cat.name] = replace(cat, where=(t.label, rowno))
    return out


def check_references(conn: sa.Connection, categories: dict[str, CategoryRow],
                     departments: Iterable[str], errors: Errors) -> None:
    """Every department suffix must name a department of the tree (after this import), and
    every parent_category a category (of the file or stored), one level deep."""
    codes = list(departments)
    stored = stored_categories(conn)
    known = {**stored, **categories}
    for cat in categories.values():
        label, rowno = cat.where
        for column, suffix in (("department_suffix", cat.department_suffix),
                               ("route_to", cat.route_to)):
            if suffix and suffix not in ROUTE_ROLES and not any(c.endswith(suffix)
                                                                 for c in codes):
                errors.add(label, rowno, f"{column} {suffix}: no department has this code "
                           "suffix (add it to nodes.csv under its town or district)")
        if cat.parent_name is not None:
            parent = known.get(cat.parent_name)
            if parent is None:
                errors.add(label, rowno, f"parent_category {cat.parent_name} is not a category "
                           "(add a row for it)")
            elif parent.parent_name is not None:
                errors.add(label, rowno, f"parent_category {cat.parent_name} is itself under "
                           f"{parent.parent_name} (one level of parent categories only)")


def department_codes(tree: Iterable[tuple[str, Level]]) -> list[str]:
    return [code for code, level in tree if level is Level.department]


def write_categories(conn: sa.Connection, categories: dict[str, CategoryRow],
                     report: ImportReport) -> None:
    """Add new categories and update changed ones; a category is never deleted."""
    stored = stored_categories(conn)
    for name, cat in categories.items():
        values = cat.values()
        if name not in stored:
            conn.execute(sa.text(
                "INSERT INTO category (name, department_suffix, parent_name, answer_limit,"
                " handle_limit, verify, route_to, canned)"
                " VALUES (:n, :s, :p, :a, :h, :v, :r, :c)"), values)
            report.categories_added += 1
        elif stored[name] != cat:
            conn.execute(sa.text(
                "UPDATE category SET department_suffix = :s, parent_name = :p,"
                " answer_limit = :a, handle_limit = :h, verify = :v, route_to = :r,"
                " canned = :c"
                " WHERE name = :n"), values)
            report.categories_updated += 1
