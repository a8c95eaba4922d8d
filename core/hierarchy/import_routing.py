"""The routing file of an import (routing.csv beside categories.csv): rules that send a
category straight to a department or a tier. The file is the whole rule set: importing it
replaces the stored rules, all or nothing."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from core.cases.route_rules import INFORM_ROLES, ROUTE_ROLES, RULES, parse_hours
from core.hierarchy.import_categories import SUFFIX_RE, CategoryRow, stored_categories
from core.hierarchy.model import Level
from core.hierarchy.readers import Table

if TYPE_CHECKING:
    from core.hierarchy.importer import Errors

RULE_ID_RE = re.compile(r"[0-9A-Za-z_.-]{1,20}")
# The tier words a routing file may use (glossary; FORMATS in the README).
ROLE_WORDS = {"邻长": "neighbor_leader", "组长": "group_leader", "片长": "area_leader",
              "书记": "secretary", "管理员": "admin", "乡镇": "admin", "街道": "admin"}
SEPARATORS = re.compile(r"[;；,，、\s]+")


@dataclass(frozen=True)
class RuleRow:
    rule_id: str
    category: str
    route_to: str
    within_code: str | None
    hours: str | None
    inform: tuple[str, ...]
    where: tuple[str, int]


def _cell(row: list[str], i: int | None) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _role(word: str) -> str:
    return ROLE_WORDS.get(word, word)


def _row(t: Table, row: list[str], rowno: int) -> RuleRow:
    col = t.columns.get
    rule_id = _cell(row, col("rule"))
    if not RULE_ID_RE.fullmatch(rule_id):
        raise ValueError(f"rule {rule_id!r} must be 1–20 letters, digits or _.- (e.g. R1)")
    category = _cell(row, col("category"))
    if not category:
        raise ValueError("category is empty")
    route_to = _role(_cell(row, col("route_to")))
    tiers = {r.value for r in ROUTE_ROLES}
    if route_to not in tiers and not SUFFIX_RE.fullmatch(route_to):
        raise ValueError(f"route_to {route_to!r} is neither a department suffix (e.g. D06) nor "
                         f"one of {', '.join(sorted(tiers))}")
    hours = _cell(row, col("hours")) or None
    if hours is not None:
        parse_hours(hours)
    inform = tuple(_role(w) for w in SEPARATORS.split(_cell(row, col("inform"))) if w)
    allowed = {r.value for r in INFORM_ROLES}
    for word in inform:
        if word not in allowed:
            raise ValueError(f"inform {word!r} is not one of {', '.join(sorted(allowed))}")
    return RuleRow(rule_id, category, route_to, _cell(row, col("within")) or None, hours,
                   inform, (t.label, rowno))


def read_rules(tables: list[Table], errors: Errors) -> list[RuleRow]:
    """The rules in file order; bad rows go to `errors`."""
    out: list[RuleRow] = []
    seen: dict[str, tuple[str, int]] = {}
    for t in tables:
        for rowno, row in t.rows():
            try:
                rule = _row(t, row, rowno)
            except ValueError as exc:
                errors.add(t.label, rowno, str(exc))
                continue
            if rule.rule_id in seen:
                errors.add(t.label, rowno, f"duplicate rule {rule.rule_id} (first on "
                           f"{seen[rule.rule_id][0]}:{seen[rule.rule_id][1]})")
                continue
            seen[rule.rule_id] = (t.label, rowno)
            out.append(rule)
    return out


def check_rules(conn: sa.Connection, rules: list[RuleRow], categories: dict[str, CategoryRow],
                tree: Iterable[tuple[str, Level]], errors: Errors) -> None:
    """Each rule's category, department and `within` node must exist after this import."""
    levels = dict(tree)
    departments = [c for c, lv in levels.items() if lv is Level.department]
    known = set(stored_categories(conn)) | set(categories)
    tiers = {r.value for r in ROUTE_ROLES}
    for rule in rules:
        label, rowno = rule.where
        if rule.category not in known:
            errors.add(label, rowno, f"category {rule.category} is not a category (add it to "
                       "categories.csv)")
        if rule.route_to not in tiers and not any(c.endswith(rule.route_to)
                                                  for c in departments):
            errors.add(label, rowno, f"route_to {rule.route_to}: no department has this code "
                       "suffix (add it to nodes.csv under its town or district)")
        if rule.within_code is not None and rule.within_code not in levels:
            errors.add(label, rowno, f"within {rule.within_code} is not a node code")


def write_rules(conn: sa.Connection, rules: list[RuleRow]) -> int:
    """Replace the stored rules with the file's; the number written."""
    conn.execute(sa.delete(RULES))
    if rules:
        conn.execute(sa.insert(RULES), [
            {"rule_id": r.rule_id, "position": i, "category": r.category,
             "route_to": r.route_to, "within_code": r.within_code, "hours": r.hours,
             "inform": ";".join(r.inform) or None}
            for i, r in enumerate(rules)])
    return len(rules)
