"""Hierarchy files for import/export tests: the generated city, a small hand-made city,
CSV/XLSX writers and a dump of every hierarchy table for before/after comparisons.

The small city (two towns, so that a town admin's reach can be tested):

district 341602 谯城区 (区管理员; department 341602D01 区城管局)
├─ town 341602001 花戏楼街道 (镇管理员; department 341602001D02 派出所, 联络员)
│  ├─ village 341602001001 幸福社区 (书记老王)
│  │  ├─ area 34160200100101 第1片 (片长老李)
│  │  │  ├─ group 3416020010010101 1组 (组长老张, who is also 邻长 of 1邻)
│  │  │  │  ├─ neighborhood …0101001 1邻 (邻长 = 组长老张; residents 居民孙, 居民周)
│  │  │  │  └─ neighborhood …0101002 2邻 (no 邻长: vacant; resident 居民吴)
│  │  │  └─ group 3416020010010102 2组 (组长小何)
│  │  │     └─ neighborhood …0102001 1邻 (邻长小赵)
│  │  └─ area 34160200100102 第2片 (no 片长: vacant)
│  │     └─ group 3416020010010201 1组 (组长小钱)
│  │        └─ neighborhood …0201001 1邻 (邻长小孙)
│  └─ village 341602001002 和谐社区 (书记老郑)
│     └─ area 34160200100201 → group 3416020010020101 → neighborhood …0101001
└─ town 341602002 古井镇 (镇二管理员)
   └─ village 341602002001 古井村 (书记老冯) → area → group → neighborhood (邻长, 居民陈)
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

NODE_HEADER = ["code", "parent_code", "level", "name"]
MEMBER_HEADER = ["name", "phone", "role", "node_code", "address", "telegram_user_id",
                 "wechat_openid", "wecom_userid"]
CATEGORY_HEADER = ["category", "department_suffix"]

DISTRICT = "341602"
TOWN = "341602001"
TOWN2 = "341602002"
DEPT_DISTRICT = "341602D01"
DEPT_TOWN = "341602001D02"
VILLAGE = "341602001001"
VILLAGE_B = "341602001002"
VILLAGE2 = "341602002001"
AREA = "34160200100101"
AREA_VACANT = "34160200100102"
GROUP = "3416020010010101"
GROUP_2 = "3416020010010102"
GROUP_OTHER_AREA = "3416020010010201"
LIN = "3416020010010101001"
LIN_VACANT = "3416020010010101002"
LIN_G2 = "3416020010010102001"
LIN_OTHER_AREA = "3416020010010201001"
AREA_B = "34160200100201"
GROUP_B = "3416020010020101"
LIN_B = "3416020010020101001"
AREA2 = "34160200200101"
GROUP2 = "3416020020010101"
LIN2 = "3416020020010101001"

SMALL_NODES: list[list[str]] = [
    [DISTRICT, "", "district", "谯城区"],
    [DEPT_DISTRICT, DISTRICT, "department", "区城管局"],
    [TOWN, DISTRICT, "town", "花戏楼街道"],
    [DEPT_TOWN, TOWN, "department", "派出所"],
    [VILLAGE, TOWN, "village", "幸福社区"],
    [AREA, VILLAGE, "area", "第1片"],
    [GROUP, AREA, "group", "1组"],
    [LIN, GROUP, "neighborhood", "1邻"],
    [LIN_VACANT, GROUP, "neighborhood", "2邻"],
    [GROUP_2, AREA, "group", "2组"],
    [LIN_G2, GROUP_2, "neighborhood", "1邻"],
    [AREA_VACANT, VILLAGE, "area", "第2片"],
    [GROUP_OTHER_AREA, AREA_VACANT, "group", "1组"],
    [LIN_OTHER_AREA, GROUP_OTHER_AREA, "neighborhood", "1邻"],
    [VILLAGE_B, TOWN, "village", "和谐社区"],
    [AREA_B, VILLAGE_B, "area", "第1片"],
    [GROUP_B, AREA_B, "group", "1组"],
    [LIN_B, GROUP_B, "neighborhood", "1邻"],
    [TOWN2, DISTRICT, "town", "古井镇"],
    [VILLAGE2, TOWN2, "village", "古井村"],
    [AREA2, VILLAGE2, "area", "第1片"],
    [GROUP2, AREA2, "group", "1组"],
    [LIN2, GROUP2, "neighborhood", "1邻"],
]

# Phones by person, so tests can name people.
PHONE = {
    "district_admin": "13900000001",
    "town_admin": "13900000002",
    "town2_admin": "13900000003",
    "secretary": "13900000004",
    "area_leader": "13900000005",
    "group_leader": "13900000006",  # also 邻长 of LIN
    "resident_sun": "13900000007",
    "resident_zhou": "13900000008",
    "resident_wu": "13900000009",  # lives under the vacant 邻长
    "group2_leader": "13900000010",
    "leader_zhao": "13900000011",
    "group_other_leader": "13900000012",
    "leader_sun": "13900000013",
    "resident_far": "13900000014",  # under the vacant 片长
    "liaison": "13900000015",
    "secretary_b": "13900000016",
    "secretary2": "13900000017",
    "leader2": "13900000018",
    "resident_chen": "13900000019",
}
TG_SUN = "5550001"

SMALL_MEMBERS: list[list[str]] = [
    ["区管理员", PHONE["district_admin"], "admin", DISTRICT, "", "", "", ""],
    ["镇管理员", PHONE["town_admin"], "admin", TOWN, "", "", "", ""],
    ["镇二管理员", PHONE["town2_admin"], "admin", TOWN2, "", "", "", ""],
    ["派出所联络员", PHONE["liaison"], "department", DEPT_TOWN, "", "", "", ""],
    ["书记老王", PHONE["secretary"], "secretary", VILLAGE, "", "", "", ""],
    ["片长老李", PHONE["area_leader"], "area_leader", AREA, "", "", "", ""],
    ["组长老张", PHONE["group_leader"], "group_leader", GROUP, "", "", "", ""],
    ["组长老张", PHONE["group_leader"], "neighbor_leader", LIN, "", "", "", ""],
    ["居民孙", PHONE["resident_sun"], "resident", LIN, "1号楼101室", TG_SUN, "oSunOpenId", ""],
    ["居民周", PHONE["resident_zhou"], "resident", LIN, "1号楼202室", "", "", "zhou.wecom"],
    ["居民吴", PHONE["resident_wu"], "resident", LIN_VACANT, "2号楼101室", "", "", ""],
    ["组长小何", PHONE["group2_leader"], "group_leader", GROUP_2, "", "", "", ""],
    ["邻长小赵", PHONE["leader_zhao"], "neighbor_leader", LIN_G2, "", "", "", ""],
    ["组长小钱", PHONE["group_other_leader"], "group_leader", GROUP_OTHER_AREA, "", "", "", ""],
    ["邻长小孙", PHONE["leader_sun"], "neighbor_leader", LIN_OTHER_AREA, "", "", "", ""],
    ["居民远", PHONE["resident_far"], "resident", LIN_OTHER_AREA, "5号楼1室", "", "", ""],
    ["书记老郑", PHONE["secretary_b"], "secretary", VILLAGE_B, "", "", "", ""],
    ["书记老冯", PHONE["secretary2"], "secretary", VILLAGE2, "", "", "", ""],
    ["邻长小冯", PHONE["leader2"], "neighbor_leader", LIN2, "", "", "", ""],
    ["居民陈", PHONE["resident_chen"], "resident", LIN2, "古井1号", "", "", ""],
]
SMALL_CATEGORIES: list[list[str]] = [["环境保护", "D01"], ["社会治安", "D02"], ["其他", ""]]

TABLES = ("node", "person", "post", "chat_identity", "chat_binding", "category")


def generator() -> Path:
    """shared/tools/gen_hierarchy.py beside the repository (CI), else the workspace copy."""
    beside = Path(__file__).resolve().parents[2].parent / "shared/tools/gen_hierarchy.py"
    for candidate in (beside, Path("/work/shared/tools/gen_hierarchy.py")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("shared/tools/gen_hierarchy.py not found beside the repository")


def generate_city(out: Path, scale: float = 0.002) -> Path:
    subprocess.run([sys.executable, str(generator()), str(out), "--scale", str(scale)],
                   check=True, capture_output=True)
    return out


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]],
              encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write_small_city(folder: Path) -> list[Path]:
    return [
        write_csv(folder / "nodes.csv", NODE_HEADER, SMALL_NODES),
        write_csv(folder / "members.csv", MEMBER_HEADER, SMALL_MEMBERS),
        write_csv(folder / "categories.csv", CATEGORY_HEADER, SMALL_CATEGORIES),
    ]


def write_xlsx(path: Path, sheets: dict[str, tuple[Sequence[object], Iterable[Sequence[object]]]]
               ) -> Path:
    """A workbook with one sheet per entry: {title: (header, rows)}."""
    from openpyxl import Workbook

    wb = Workbook()
    first = True
    for title, (header, rows) in sheets.items():
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        ws.title = title
        first = False
        ws.append(list(header))
        for row in rows:
            ws.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every hierarchy table, sorted, for exact before/after comparisons."""
    out: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for table in TABLES:
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


def count(engine: Engine, table: str, where: str = "1 = 1", **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE {where}"),
                                params).scalar_one())


def path_problems(engine: Engine) -> list[str]:
    """Nodes whose path is not their parent's path plus their own id (empty when consistent)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, parent_id, path, code FROM node")).all()
    by_id = {r.id: r for r in rows}
    bad = []
    for r in rows:
        want = f"/{r.id}/" if r.parent_id is None else f"{by_id[r.parent_id].path}{r.id}/"
        if r.path != want:
            bad.append(f"{r.code}: path {r.path} != {want}")
    return bad


def person_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {ph: pid for pid, ph in conn.execute(sa.text("SELECT id, phone FROM person"))}


DB_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def fresh_engine(kind: str, request: pytest.FixtureRequest, folder: Path) -> Iterator[Engine]:
    """A fresh, migrated database ("sqlite" file in `folder`, or "postgresql" on the test
    server), for module-scoped fixtures and for second databases beside `engine`."""
    from core.db import make_engine, migrate
    from tests.conftest import create_pg_database, drop_pg_database

    admin: str | None = None
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'fresh.db'}"
    else:
        admin = request.getfixturevalue("pg_server")
        url = create_pg_database(admin)
    eng = make_engine(url)
    try:
        migrate(eng)
        yield eng
    finally:
        eng.dispose()
        if admin is not None:
            drop_pg_database(admin, url)
