"""The rules of the tree: which level nests under which, which role sits on which level."""

from __future__ import annotations

import re

from core.hierarchy.model import Level, Role, Tier

# Each level's allowed parent levels; a root may be a district or a town.
PARENT_LEVELS: dict[Level, frozenset[Level]] = {
    Level.district: frozenset(),
    Level.town: frozenset({Level.district}),
    Level.village: frozenset({Level.town}),
    Level.area: frozenset({Level.village}),
    Level.group: frozenset({Level.area}),
    Level.neighborhood: frozenset({Level.group}),
    Level.department: frozenset({Level.district, Level.town}),
}
ROOT_LEVELS = frozenset({Level.district, Level.town})

# Where each role may be held (FORMATS.md, members.csv).
ROLE_LEVELS: dict[Role, frozenset[Level] | None] = {
    Role.secretary: frozenset({Level.village}),
    Role.area_leader: frozenset({Level.area}),
    Role.group_leader: frozenset({Level.group}),
    Role.neighbor_leader: frozenset({Level.neighborhood}),
    Role.resident: frozenset({Level.neighborhood}),
    Role.department: frozenset({Level.department}),
    Role.admin: None,  # any node: manages its subtree
}

# The leader role of each level of the escalation chain, bottom up.
LEADER_ROLE: dict[Level, Role] = {
    Level.neighborhood: Role.neighbor_leader,
    Level.group: Role.group_leader,
    Level.area: Role.area_leader,
    Level.village: Role.secretary,
}
LEADER_ROLES = frozenset(LEADER_ROLE.values())

# Which node level a bound chat of each tier sits on.
TIER_LEVEL: dict[Tier, Level] = {
    Tier.town_secretary: Level.town,
    Tier.secretary_area: Level.village,
    Tier.area_group: Level.area,
    Tier.group_neighbor: Level.group,
    Tier.neighbor_resident: Level.neighborhood,
}
TIER_FOR_LEVEL: dict[Level, Tier] = {level: tier for tier, level in TIER_LEVEL.items()}

LEVEL_ALIASES: dict[str, Level] = {
    **{lv.value: lv for lv in Level},
    "区县": Level.district, "区": Level.district, "县": Level.district,
    "乡镇": Level.town, "乡镇(街道)": Level.town, "乡镇（街道）": Level.town, "街道": Level.town,
    "村": Level.village, "社区": Level.village,
    "村(社区)": Level.village, "村（社区）": Level.village,
    "片": Level.area, "组": Level.group, "邻": Level.neighborhood,
    "职能部门": Level.department, "部门": Level.department,
}
ROLE_ALIASES: dict[str, Role] = {
    **{r.value: r for r in Role},
    "书记": Role.secretary, "片长": Role.area_leader, "组长": Role.group_leader,
    "邻长": Role.neighbor_leader, "居民": Role.resident, "部门联络员": Role.department,
    "部门": Role.department, "管理员": Role.admin,
}
ROLE_LABEL_ZH: dict[Role, str] = {
    Role.secretary: "书记", Role.area_leader: "片长", Role.group_leader: "组长",
    Role.neighbor_leader: "邻长", Role.resident: "居民", Role.department: "部门联络员",
    Role.admin: "管理员",
}
LEVEL_LABEL_ZH: dict[Level, str] = {
    Level.district: "区县", Level.town: "乡镇(街道)", Level.village: "村(社区)", Level.area: "片",
    Level.group: "组", Level.neighborhood: "邻", Level.department: "职能部门",
}
# The level names a file may use, as an import error lists them.
LEVEL_NAMES_ZH = "区县/乡镇/村/片/组/邻/职能部门"

PHONE_RE = re.compile(r"1[3-9]\d{9}")


def parse_level(text: str) -> Level | None:
    return LEVEL_ALIASES.get(text.strip().lower() if text.isascii() else text.strip())


def parse_role(text: str) -> Role | None:
    return ROLE_ALIASES.get(text.strip().lower() if text.isascii() else text.strip())


def normalize_phone(text: str) -> str | None:
    """An 11-digit mainland mobile number, or None; tolerates +86, spaces and dashes."""
    digits = re.sub(r"[\s\-()]", "", text.strip())
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    return digits if PHONE_RE.fullmatch(digits) else None


def nesting_error(level: Level, parent_level: Level | None) -> str | None:
    """Why a node of `level` may not sit under `parent_level`, or None when it may."""
    if parent_level is None:
        if level in ROOT_LEVELS:
            return None
        return f"a {level.value} needs a parent"
    allowed = PARENT_LEVELS[level]
    if parent_level in allowed:
        return None
    want = " or ".join(sorted(lv.value for lv in allowed)) or "no parent"
    return f"a {level.value} cannot sit under a {parent_level.value} (wants {want})"


def role_error(role: Role, level: Level) -> str | None:
    """Why `role` may not be held on a node of `level`, or None."""
    allowed = ROLE_LEVELS[role]
    if allowed is None or level in allowed:
        return None
    where = " or ".join(sorted(lv.value for lv in allowed))
    return f"role {role.value} is held on a {where}, not on a {level.value}"


def path_of(parent_path: str | None, node_id: int) -> str:
    return f"{parent_path or '/'}{node_id}/"


def path_ids(path: str) -> list[int]:
    return [int(p) for p in path.strip("/").split("/") if p]


def subtree_bounds(path: str) -> tuple[str, str]:
    """[low, high) such that every descendant path (and the node's own) falls inside."""
    return path, path[:-1] + "0"  # '0' sorts right after '/'
