"""The demo city in a fresh database, with the people tests talk about by role."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.hierarchy.importer import import_files

DEMO = Path(__file__).resolve().parents[2] / "core" / "demo"


@dataclass(frozen=True)
class Who:
    person_id: int
    name: str
    phone: str


def load_demo(engine: Engine) -> None:
    import_files(engine, sorted(DEMO.glob("*.csv")))


def holder_of(engine: Engine, role: str, node_code: str) -> Who:
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT p.id, p.name, p.phone FROM post x JOIN person p ON p.id = x.person_id"
            " JOIN node n ON n.id = x.node_id WHERE x.role = :r AND n.code = :c ORDER BY x.id"
        ), {"r": role, "c": node_code}).first()
    assert row is not None, f"no {role} on {node_code}"
    return Who(row[0], row[1], row[2])


# Codes in the demo city (scripts/make_demo_city.py).
TOWN = "341602001"
VILLAGE1 = "341602001001"
AREA1 = "34160200100101"
GROUP1 = "3416020010010102"
LIN1 = "3416020010010102001"  # 邻 with its own 邻长, under a 组长 of his own
VACANT_LIN = "3416020010020202002"  # the 邻 whose 邻长 post is vacant
