"""The tree's rules, without a database."""

import pytest

from core.hierarchy.model import Level, Role
from core.hierarchy.tree import (
    nesting_error,
    normalize_phone,
    parse_level,
    parse_role,
    path_ids,
    path_of,
    role_error,
    subtree_bounds,
)


@pytest.mark.parametrize(("child", "parent"), [
    (Level.town, Level.district), (Level.village, Level.town), (Level.area, Level.village),
    (Level.group, Level.area), (Level.neighborhood, Level.group),
    (Level.department, Level.town), (Level.department, Level.district),
])
def test_levels_nest_in_order(child: Level, parent: Level) -> None:
    assert nesting_error(child, parent) is None


@pytest.mark.parametrize(("child", "parent"), [
    (Level.group, Level.town), (Level.neighborhood, Level.area), (Level.village, Level.district),
    (Level.town, Level.town), (Level.department, Level.village), (Level.district, Level.town),
    (Level.area, Level.neighborhood),
])
def test_skipping_or_inverting_a_level_is_refused(child: Level, parent: Level) -> None:
    reason = nesting_error(child, parent)
    assert reason is not None and child.value in reason and parent.value in reason


def test_only_districts_and_towns_may_be_roots() -> None:
    assert nesting_error(Level.district, None) is None
    assert nesting_error(Level.town, None) is None
    for level in (Level.village, Level.area, Level.group, Level.neighborhood, Level.department):
        assert nesting_error(level, None) == f"a {level.value} needs a parent"


@pytest.mark.parametrize(("role", "level", "ok"), [
    (Role.secretary, Level.village, True), (Role.secretary, Level.town, False),
    (Role.area_leader, Level.area, True), (Role.group_leader, Level.group, True),
    (Role.neighbor_leader, Level.neighborhood, True), (Role.neighbor_leader, Level.group, False),
    (Role.resident, Level.neighborhood, True), (Role.resident, Level.village, False),
    (Role.department, Level.department, True), (Role.department, Level.town, False),
    (Role.admin, Level.district, True), (Role.admin, Level.neighborhood, True),
])
def test_roles_sit_on_their_level(role: Role, level: Level, ok: bool) -> None:
    assert (role_error(role, level) is None) is ok


def test_chinese_and_english_names_parse() -> None:
    assert parse_level("村") is Level.village
    assert parse_level("社区") is Level.village
    assert parse_level(" Neighborhood ") is Level.neighborhood
    assert parse_level("邻") is Level.neighborhood
    assert parse_level("street") is None
    assert parse_role("邻长") is Role.neighbor_leader
    assert parse_role("部门联络员") is Role.department
    assert parse_role("ADMIN") is Role.admin
    assert parse_role("mayor") is None


@pytest.mark.parametrize(("text", "want"), [
    ("13912345678", "13912345678"), ("+86 139 1234 5678", "13912345678"),
    ("0086-139-1234-5678", "13912345678"), ("139 1234 5678", "13912345678"),
    ("12912345678", None), ("1391234567", None), ("139123456789", None), ("abc", None),
    ("", None), ("1391234567x", None),
])
def test_phone_numbers_are_mainland_mobiles(text: str, want: str | None) -> None:
    assert normalize_phone(text) == want


def test_paths_bound_exactly_the_subtree() -> None:
    root = path_of(None, 1)
    child = path_of(root, 5)
    grandchild = path_of(child, 77)
    sibling_prefix = path_of(root, 50)  # "/1/50/" must not fall inside "/1/5/"
    low, high = subtree_bounds(child)
    assert low <= child < high
    assert low <= grandchild < high
    assert not (low <= sibling_prefix < high)
    assert not (low <= root < high)
    assert path_ids(grandchild) == [1, 5, 77]
