"""Where a case goes: the first filled tier, the next tier up, and the department of a whistle."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from core.errors import Conflict, InvalidInput, NotFound, Phrase, phrase
from core.hierarchy.model import Category, Level, Person, Post, Role
from core.hierarchy.queries import (
    Chain,
    ChainStep,
    NodeRef,
    PersonRef,
    ancestors,
    holders,
    node_by_code,
    nodes_by_ids,
)
from core.hierarchy.tree import LEADER_ROLE, LEADER_ROLES, path_ids


@dataclass(frozen=True)
class Target:
    """Who holds a case: one person on one post."""

    person: PersonRef
    role: Role
    node: NodeRef


def first_target(chain: Chain) -> Target | None:
    """The lowest filled tier: the 邻长, or past vacant posts whoever comes first."""
    for step in chain.filled():
        return Target(step.holders[0], step.role, step.node)
    return None


def _position(chain: Chain, role: str, node: NodeRef) -> int | None:
    """Index in the chain of the post a case is held on, or of where a department hangs."""
    steps = chain.steps
    for i, step in enumerate(steps):
        if step.role.value == role and step.node.id == node.id:
            return i
    if node.level is Level.department:
        # Above a department comes the office of the town or district it belongs to.
        for i, step in enumerate(steps):
            if step.role is Role.admin and step.node.id == node.parent_id:
                return i - 1
    for i, step in enumerate(steps):
        if step.role is Role.admin:
            return i - 1
    return None


def next_target(chain: Chain, *, role: str, node: NodeRef, holder_id: int) -> Target | None:
    """The next filled tier above the current post, skipping vacant posts and the holder
    themselves (one person may hold two posts); None at the top of the chain."""
    pos = _position(chain, role, node)
    if pos is None:
        return None
    for step in chain.steps[pos + 1:]:
        for person in step.holders:
            if person.id != holder_id:
                return Target(person, step.role, step.node)
    return None


def step_above(chain: Chain, *, role: str, node: NodeRef, holder_id: int) -> ChainStep | None:
    """The superior of a holder (who hears of a poor rating)."""
    target = next_target(chain, role=role, node=node, holder_id=holder_id)
    if target is None:
        return None
    return ChainStep(target.role, target.node, (target.person,))


def category_by_name(session: Session, name: str) -> Category:
    cats: sa.Table = Category.__table__  # type: ignore[attr-defined]
    cat = session.execute(
        sa.select(Category).where(cats.c.name == name.strip())
    ).scalar_one_or_none()
    if cat is None:
        known = session.execute(sa.select(cats.c.name).order_by(cats.c.id)).scalars().all()
        raise InvalidInput("category_unknown", name=name, known=list(known))
    return cat


def department_for(session: Session, *, home: NodeRef, category: Category) -> Target:
    """The department that takes a whistled case: the category's department under the case's
    town, else under its district, and its liaison."""
    if not category.department_suffix:
        raise InvalidInput("category_without_department", name=category.name)
    suffix = category.department_suffix.strip()
    offices = [n for n in reversed(ancestors(session, home)) if n.level in (Level.town,
                                                                             Level.district)]
    tried: list[Phrase] = []
    for office in offices:
        code = office.code + suffix
        try:
            dept = node_by_code(session, code)
        except NotFound:
            tried.append(phrase("department_missing", code=code))
            continue
        liaisons = holders(session, dept, Role.department)
        if liaisons:
            return Target(liaisons[0], Role.department, dept)
        tried.append(phrase("department_without_liaison", name=dept.name))
    if not offices:
        raise NotFound("no_office_above")
    raise Conflict("no_department", tried=tuple(tried))


def chains_for(session: Session, homes: list[NodeRef]) -> dict[int, Chain]:
    """The chains above many nodes at once (two queries, whatever their number), built by the
    same rule as `chain_for_node`: leaders bottom up, then the town and district offices."""
    lineage_ids = {i for home in homes for i in path_ids(home.path)}
    nodes = nodes_by_ids(session, lineage_ids)
    posts: sa.Table = Post.__table__  # type: ignore[attr-defined]
    people: sa.Table = Person.__table__  # type: ignore[attr-defined]
    held: dict[tuple[int, str], list[PersonRef]] = {}
    q = (
        sa.select(posts.c.node_id, posts.c.role, people.c.id, people.c.name)
        .join(people, people.c.id == posts.c.person_id)
        .where(posts.c.node_id.in_(list(lineage_ids)))
        .where(posts.c.role.in_([*(r.value for r in LEADER_ROLES), Role.admin.value]))
        .order_by(posts.c.id)
    )
    for row in session.execute(q):
        held.setdefault((row.node_id, row.role), []).append(PersonRef(row.id, row.name))
    out: dict[int, Chain] = {}
    for home in homes:
        lineage = [nodes[i] for i in path_ids(home.path) if i in nodes]
        steps: list[ChainStep] = []
        for n in reversed(lineage):
            role = LEADER_ROLE.get(n.level)
            if role is not None:
                steps.append(ChainStep(role, n, tuple(held.get((n.id, role.value), ()))))
        for n in reversed(lineage):
            if n.level in (Level.town, Level.district):
                steps.append(ChainStep(Role.admin, n,
                                       tuple(held.get((n.id, Role.admin.value), ()))))
        out[home.id] = Chain(tuple(steps))
    return out
