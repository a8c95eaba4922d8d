"""Small cities for case tests, built straight into the hierarchy tables.

district 341602 → town 341602001 (department 341602001D03 环保, liaison) → village V1
(书记) → area (片长) → group (组长) → neighborhoods N1, N2 (邻长 each, residents);
a second village V2 with its own chain and resident; admins on the town and the district.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.db import session_scope
from core.hierarchy.model import Category, ChatBinding, Node, Person, Post

# key: (code, parent key, level, name)
NODES: list[tuple[str, str, str | None, str, str]] = [
    ("district", "341602", None, "district", "谯城区"),
    ("town", "341602001", "district", "town", "花戏楼街道"),
    ("dept_env", "341602001D03", "town", "department", "生态环境所"),
    ("dept_district_road", "341602D05", "district", "department", "区交通局"),
    ("v1", "341602001001", "town", "village", "东关社区"),
    ("a1", "34160200100101", "v1", "area", "一片"),
    ("g1", "3416020010010101", "a1", "group", "一组"),
    ("n1", "3416020010010101001", "g1", "neighborhood", "一邻"),
    ("n2", "3416020010010101002", "g1", "neighborhood", "二邻"),
    ("v2", "341602001002", "town", "village", "西关社区"),
    ("a2", "34160200100201", "v2", "area", "一片"),
    ("g2", "3416020010020101", "a2", "group", "一组"),
    ("n3", "3416020010020101001", "g2", "neighborhood", "一邻"),
]

# key: (name, phone, role, node key)
PEOPLE: list[tuple[str, str, str, str, str]] = [
    ("district_admin", "区管理员", "13900000001", "admin", "district"),
    ("town_admin", "镇管理员", "13900000002", "admin", "town"),
    ("liaison", "环保联络员", "13900000003", "department", "dept_env"),
    ("road_liaison", "交通联络员", "13900000013", "department", "dept_district_road"),
    ("secretary", "书记老王", "13900000004", "secretary", "v1"),
    ("area_leader", "片长老李", "13900000005", "area_leader", "a1"),
    ("group_leader", "组长老张", "13900000006", "group_leader", "g1"),
    ("leader1", "邻长小赵", "13900000007", "neighbor_leader", "n1"),
    ("leader2", "邻长小钱", "13900000008", "neighbor_leader", "n2"),
    ("resident1", "居民孙", "13900000009", "resident", "n1"),
    ("resident2", "居民周", "13900000010", "resident", "n1"),
    ("resident3", "居民吴", "13900000011", "resident", "n2"),
    ("secretary2", "书记老郑", "13900000012", "secretary", "v2"),
    ("leader3", "邻长小冯", "13900000014", "neighbor_leader", "n3"),
    ("resident4", "居民陈", "13900000015", "resident", "n3"),
]

CATEGORIES = [("环境保护", "D03"), ("公共设施", "D05"), ("其他", None)]


@dataclass
class City:
    nodes: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)
    bindings: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, key: str) -> int:
        return self.people[key]


def build_city(engine: Engine, *, vacant: Iterable[str] = (),
               bindings: bool = True) -> City:
    """Write the city; people named in `vacant` are left out (their posts stay empty)."""
    skip = set(vacant)
    city = City()
    with session_scope(engine) as s:
        _build(s, city, skip, bindings)
    return city


def _build(s: Session, city: City, skip: set[str], bindings: bool) -> None:
    for key, code, parent, level, name in NODES:
        parent_id = city.nodes[parent] if parent else None
        node = Node(code=code, parent_id=parent_id, level=level, name=name, path="/")
        s.add(node)
        s.flush()
        assert node.id is not None
        parent_path = s.get(Node, parent_id).path if parent_id else "/"  # type: ignore[union-attr]
        node.path = f"{parent_path}{node.id}/"
        city.nodes[key] = node.id
    for key, name, phone, role, node_key in PEOPLE:
        if key in skip:
            continue
        person = Person(name=name, phone=phone)
        s.add(person)
        s.flush()
        assert person.id is not None
        s.add(Post(person_id=person.id, node_id=city.nodes[node_key], role=role))
        city.people[key] = person.id
    for cat, suffix in CATEGORIES:
        s.add(Category(name=cat, department_suffix=suffix))
    if bindings:
        # 组长+邻长 chat bound to the group, 片长+组长 chat bound to the area.
        for key, node_key, tier in [("g1_chat", "g1", "group_neighbor"),
                                    ("a1_chat", "a1", "area_group")]:
            b = ChatBinding(platform="telegram", chat_id=f"-100{city.nodes[node_key]}",
                            node_id=city.nodes[node_key], tier=tier)
            s.add(b)
            s.flush()
            assert b.id is not None
            city.bindings[key] = b.id
    s.flush()


def add_post(engine: Engine, city: City, *, person: str, role: str, node: str) -> None:
    """Give an existing person one more post (one person may hold several)."""
    with session_scope(engine) as s:
        s.add(Post(person_id=city.people[person], node_id=city.nodes[node], role=role))


def add_person(engine: Engine, city: City, *, key: str, role: str, node: str) -> int:
    with session_scope(engine) as s:
        person = Person(name=key)
        s.add(person)
        s.flush()
        assert person.id is not None
        s.add(Post(person_id=person.id, node_id=city.nodes[node], role=role))
        city.people[key] = person.id
        return person.id
