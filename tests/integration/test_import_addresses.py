"""A members file without an address column leaves stored addresses alone."""

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.hierarchy.importer import import_files
from tests.support.demo_city import LIN1, load_demo


def _address(engine: Engine, phone: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT x.address FROM post x JOIN person p ON p.id = x.person_id"
            " WHERE p.phone = :ph AND x.role = 'resident'"), {"ph": phone}).scalar_one()


def test_missing_address_column_keeps_addresses_but_a_blank_cell_clears(
    engine: Engine, tmp_path: Path
) -> None:
    load_demo(engine)
    with engine.connect() as conn:
        phone, name = conn.execute(sa.text(
            "SELECT p.phone, p.name FROM post x JOIN person p ON p.id = x.person_id"
            " JOIN node n ON n.id = x.node_id WHERE n.code = :c AND x.role = 'resident'"
            " ORDER BY x.id LIMIT 1"), {"c": LIN1}).one()
    before = _address(engine, phone)
    assert before

    no_column = tmp_path / "members.csv"
    no_column.write_text(f"name,phone,role,node_code\n{name},{phone},resident,{LIN1}\n",
                         encoding="utf-8")
    report = import_files(engine, [no_column])
    assert not report.changed
    assert _address(engine, phone) == before

    blank = tmp_path / "members2.csv"
    blank.write_text(f"name,phone,role,node_code,address\n{name},{phone},resident,{LIN1},\n",
                     encoding="utf-8")
    assert import_files(engine, [blank]).posts_updated == 1
    assert _address(engine, phone) is None
