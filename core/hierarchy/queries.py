"""Read side of the hierarchy: chains, subtrees, ancestors and who somebody is."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.db import memo
from core.errors import NotFound
from core.hierarchy.model import ChatIdentity, Level, Node, Person, Post, Role
from core.hierarchy.tree import LEADER_ROLE, LEADER_ROLES, path_ids, subtree_bounds

N = Node.__table__  # type: ignore[attr-defined]
P = Person.__table__  # type: ignore[attr-defined]
POST = Post.__table__  # type: ignore[attr-defined]
CI = ChatIdentity.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NodeRef:
    id: int
    code: str
    level: Level
    name: str
    path: str
    parent_id: int | None = None

    def contains(self, other: NodeRef | str) -> bool:
        """Whether `other` is this node or below it."""
        other_path = other if isinstance(other, str) else other.path
        return other_path.startswith(self.path)


@dataclass(frozen=True)
class PersonRef:
    id: int
    name: str


@dataclass(frozen=True)
class ChainStep:
    """One tier of the escalation chain; `holders` is empty when the post is vacant."""

    role: Role
    node: NodeRef
    holders: tuple[PersonRef, ...]

    @property
    def vacant(self) -> bool:
        return not self.holders


@dataclass(frozen=True)
class Chain:
    """The posts above a neighborhood, bottom up: 邻长 → 组长 → 片长 → 书记 → admins."""

    steps: tuple[ChainStep, ...]
    # The node and its ancestors as the chain's read found them (a caller needs no re-read).
    lineage: tuple[NodeRef, ...] = field(default=(), compare=False)

    def filled(self) -> list[ChainStep]:
        """Steps with a holder, each person kept only at the lowest post they hold."""
        seen: set[int] = set()
        out: list[ChainStep] = []
        for step in self.steps:
            fresh = tuple(h for h in step.holders if h.id not in seen)
            seen.update(h.id for h in step.holders)
            if fresh:
                out.append(ChainStep(step.role, step.node, fresh))
        return out

    def people(self) -> list[PersonRef]:
        """Every distinct holder, bottom up."""
        return [h for step in self.filled() for h in step.holders]

    def vacancies(self) -> list[ChainStep]:
        return [s for s in self.steps if s.vacant]


@dataclass(frozen=True)
class Actor:
    """A person with the posts they hold: what they may do, and where."""

    person: PersonRef
    posts: tuple[tuple[Role, NodeRef], ...] = field(default=())
    language: str | None = None  # when read with the person (actor_by_identity)
    # The chat account they were found by: its id and whether it was marked unreachable.
    identity: tuple[int, bool] | None = None

    def roles(self) -> set[Role]:
        return {r for r, _ in self.posts}

    def holds(self, role: Role, node: NodeRef | None = None) -> bool:
        return any(r == role and (node is None or n.id == node.id) for r, n in self.posts)

    def admin_scopes(self) -> list[NodeRef]:
        return [n for r, n in self.posts if r == Role.admin]

    def is_admin_of(self, node: NodeRef | str) -> bool:
        """Whether the person administers the node's subtree (an admin of a town: that town)."""
        return any(scope.contains(node) for scope in self.admin_scopes())

    def leads(self, node: NodeRef | str) -> bool:
        """Whether the person holds a leader or department post on the node or above it."""
        return any(
            (r in LEADER_ROLES or r == Role.department) and n.contains(node) for r, n in self.posts
        )

    def residences(self) -> list[NodeRef]:
        return [n for r, n in self.posts if r == Role.resident]

    @property
    def is_admin(self) -> bool:
        return bool(self.admin_scopes())


def seen_people(session: Session) -> dict[int, tuple[str, str]]:
    """People this transaction read, id → (name, language), for the notifier (core.db.memo)."""
    return memo(session, "people")


def seen_nodes(session: Session) -> dict[int, NodeRef]:
    """Nodes this transaction read (the sender's posts, a chain's lineage), for display."""
    return memo(session, "nodes")


def _node_ref(row: sa.Row) -> NodeRef:
    return NodeRef(
        id=row.id, code=row.code, level=Level(row.level), name=row.name, path=row.path,
        parent_id=row.parent_id,
    )


_NODE_COLS = (N.c.id, N.c.code, N.c.level, N.c.name, N.c.path, N.c.parent_id)


def node_by_code(session: Session, code: str) -> NodeRef:
    if len(code) > 40 or "\x00" in code:  # no code is that long; PostgreSQL refuses NUL
        raise NotFound("node_code_unknown", code=code[:40])
    row = session.execute(sa.select(*_NODE_COLS).where(N.c.code == code.strip())).first()
    if row is None:
        raise NotFound("node_code_unknown", code=code)
    return _node_ref(row)


def node_by_id(session: Session, node_id: int) -> NodeRef:
    row = session.execute(sa.select(*_NODE_COLS).where(N.c.id == node_id)).first()
    if row is None:
        raise NotFound("node_id_unknown", node=node_id)
    return _node_ref(row)


def nodes_by_ids(session: Session, ids: Iterable[int]) -> dict[int, NodeRef]:
    rows = session.execute(_nodes_stmt(), {"ids": list(ids)}).all()
    return {r.id: _node_ref(r) for r in rows}


@functools.cache
def _nodes_stmt() -> sa.Select[Any]:
    return sa.select(*_NODE_COLS).where(N.c.id.in_(sa.bindparam("ids", expanding=True)))


def ancestors(session: Session, node: NodeRef, *, include_self: bool = False) -> list[NodeRef]:
    """The node's ancestors from the root down (and the node itself when asked)."""
    ids = path_ids(node.path)
    if not include_self:
        ids = ids[:-1]
    found = nodes_by_ids(session, ids)
    return [found[i] for i in ids if i in found]


def subtree(
    session: Session, node: NodeRef, *, levels: Sequence[Level] | None = None,
    limit: int | None = None,
) -> list[NodeRef]:
    """The node and everything below it, in path order."""
    low, high = subtree_bounds(node.path)
    q = sa.select(*_NODE_COLS).where(N.c.path >= low, N.c.path < high).order_by(N.c.path)
    if levels:
        q = q.where(N.c.level.in_([lv.value for lv in levels]))
    if limit:
        q = q.limit(limit)
    return [_node_ref(r) for r in session.execute(q)]


def subtree_count(session: Session, node: NodeRef) -> int:
    low, high = subtree_bounds(node.path)
    q = sa.select(sa.func.count()).where(N.c.path >= low, N.c.path < high)
    return int(session.execute(q).scalar_one())


def children(session: Session, node: NodeRef) -> list[NodeRef]:
    q = sa.select(*_NODE_COLS).where(N.c.parent_id == node.id).order_by(N.c.code)
    return [_node_ref(r) for r in session.execute(q)]


def roots(session: Session) -> list[NodeRef]:
    q = sa.select(*_NODE_COLS).where(N.c.parent_id.is_(None)).order_by(N.c.code)
    return [_node_ref(r) for r in session.execute(q)]


MAX_DEPTH = 8  # district → town → village → area → group → neighborhood, with room to spare
_CHAIN_ROLES = ", ".join(f"'{r.value}'" for r in (*LEADER_ROLES, Role.admin))
# Fixed parameter slots keep this one cached statement for every lookup.
_LINEAGE_SQL = sa.text(
    "SELECT n.id, n.code, n.level, n.name, n.path, n.parent_id,"
    " x.role, p.id AS pid, p.name AS pname, p.language"
    " FROM node n LEFT JOIN post x ON x.node_id = n.id AND x.role IN (" + _CHAIN_ROLES + ")"
    " LEFT JOIN person p ON p.id = x.person_id"
    " WHERE n.id IN (" + ", ".join(f":a{i}" for i in range(MAX_DEPTH)) + ")"
    " ORDER BY x.id"
)
_RESIDENCE_SQL = sa.text(
    "SELECT n.id, n.code, n.level, n.name, n.path, n.parent_id FROM post x"
    " JOIN node n ON n.id = x.node_id"
    " WHERE x.person_id = :pid AND x.role = 'resident' AND x.moved_at IS NULL"
    " ORDER BY x.id LIMIT 1"
)


def chain_for_node(session: Session, node: NodeRef) -> Chain:
    """The escalation chain above (and on) a node: leaders bottom up, then admins bottom up."""
    ids = path_ids(node.path)[-MAX_DEPTH:]
    params = {f"a{i}": (ids[i] if i < len(ids) else -1) for i in range(MAX_DEPTH)}
    lineage: dict[int, NodeRef] = {}
    by_node: dict[tuple[int, str], list[PersonRef]] = {}
    people = seen_people(session)
    for row in session.connection().execute(_LINEAGE_SQL, params):
        if row.id not in lineage:
            lineage[row.id] = _node_ref(row)
        if row.role is not None:
            by_node.setdefault((row.id, row.role), []).append(PersonRef(row.pid, row.pname))
            people[row.pid] = (row.pname, row.language or "zh")
    seen_nodes(session).update(lineage)
    ordered = [lineage[i] for i in reversed(ids) if i in lineage]
    steps: list[ChainStep] = []
    for n in ordered:
        role = LEADER_ROLE.get(n.level)
        if role is not None:
            steps.append(ChainStep(role, n, tuple(by_node.get((n.id, role.value), ()))))
    # Above the village the case goes to the town office, and as a last resort the district's.
    for n in ordered:
        if n.level in (Level.town, Level.district):
            steps.append(ChainStep(Role.admin, n, tuple(by_node.get((n.id, Role.admin.value), ()))))
    return Chain(tuple(steps), tuple(ordered))


def residence_of(session: Session, person_id: int) -> NodeRef:
    """The neighborhood where a resident lives (their first resident post)."""
    row = session.connection().execute(_RESIDENCE_SQL, {"pid": person_id}).first()
    if row is None:
        raise NotFound("not_a_resident", person=person_id)
    return _node_ref(row)


def chain_for_resident(session: Session, person_id: int) -> Chain:
    """邻长 → 组长 → 片长 → 书记 → town admin above a resident's home."""
    return chain_for_node(session, residence_of(session, person_id))


def actor(session: Session, person_id: int) -> Actor:
    """Who a person is and every post they hold."""
    prow = session.execute(sa.select(P.c.id, P.c.name).where(P.c.id == person_id)).first()
    if prow is None:
        raise NotFound("person_unknown", person=person_id)
    q = (
        sa.select(POST.c.role, *_NODE_COLS)
        .join(N, N.c.id == POST.c.node_id)
        # A resident a campaign found moved away (core/campaigns/registry.py) lives there no more.
        .where(POST.c.person_id == person_id, POST.c.moved_at.is_(None))
        .order_by(POST.c.id)
    )
    posts = tuple((Role(r.role), _node_ref(r)) for r in session.execute(q))
    return Actor(PersonRef(prow.id, prow.name), posts)


def person_by_phone(session: Session, phone: str) -> int | None:
    from core.hierarchy.tree import normalize_phone

    norm = normalize_phone(phone)
    if norm is None:
        return None
    return session.execute(sa.select(P.c.id).where(P.c.phone == norm)).scalar_one_or_none()


def actor_by_identity(session: Session, platform: str, external_id: str) -> Actor | None:
    """Who a chat account belongs to, or None for a stranger (one read: the account, the
    person and every post they hold)."""
    rows = session.execute(_actor_stmt(), {"platform": platform,
                                           "external_id": str(external_id)}).all()
    if not rows:
        return None
    head = rows[0]
    posts = tuple((Role(r.role), _node_ref(r)) for r in rows if r.role is not None)
    seen_people(session)[head.pid] = (head.pname, head.language or "zh")
    seen_nodes(session).update((n.id, n) for _, n in posts)
    return Actor(PersonRef(head.pid, head.pname), posts, language=head.language or "zh",
                 identity=(head.ci_id, bool(head.unreachable)))


@functools.cache
def _actor_stmt() -> sa.Select[Any]:
    # Built once (core/db.py, "Statements built once"): every update runs it.
    return (
        sa.select(CI.c.id.label("ci_id"), CI.c.unreachable, P.c.id.label("pid"),
                  P.c.name.label("pname"), P.c.language, POST.c.role, *_NODE_COLS)
        .join(P, P.c.id == CI.c.person_id)
        # A resident a campaign found moved away (core/campaigns/registry.py) lives there no more.
        .outerjoin(POST, sa.and_(POST.c.person_id == P.c.id, POST.c.moved_at.is_(None)))
        .outerjoin(N, N.c.id == POST.c.node_id)
        .where(CI.c.platform == sa.bindparam("platform"),
               CI.c.external_id == sa.bindparam("external_id"))
        .order_by(POST.c.id)
    )


def identities_of(session: Session, person_id: int) -> list[tuple[str, str, bool]]:
    q = sa.select(CI.c.platform, CI.c.external_id, CI.c.unreachable).where(
        CI.c.person_id == person_id).order_by(CI.c.id)
    return [(r.platform, r.external_id, r.unreachable) for r in session.execute(q)]


def holders(session: Session, node: NodeRef, role: Role) -> list[PersonRef]:
    q = (
        sa.select(P.c.id, P.c.name)
        .join(POST, POST.c.person_id == P.c.id)
        .where(POST.c.node_id == node.id, POST.c.role == role.value, POST.c.moved_at.is_(None))
        .order_by(POST.c.id)
    )
    return [PersonRef(r.id, r.name) for r in session.execute(q)]


@dataclass(frozen=True)
class Vacancy:
    node: NodeRef
    role: Role


def vacancies(session: Session, root: NodeRef, *, limit: int = 1000) -> list[Vacancy]:
    """Leader posts in a subtree that nobody holds (admins see these)."""
    low, high = subtree_bounds(root.path)
    leader_of = sa.case(
        *((N.c.level == lv.value, role.value) for lv, role in LEADER_ROLE.items()), else_=None
    )
    held = (
        sa.select(sa.literal(1))
        .where(POST.c.node_id == N.c.id, POST.c.role == leader_of)
        .exists()
    )
    q = (
        sa.select(*_NODE_COLS)
        .where(N.c.path >= low, N.c.path < high)
        .where(N.c.level.in_([lv.value for lv in LEADER_ROLE]))
        .where(~held)
        .order_by(N.c.path)
        .limit(limit)
    )
    return [
        Vacancy(_node_ref(r), LEADER_ROLE[Level(r.level)]) for r in session.execute(q)
    ]


def find_people(session: Session, text: str, *, within: NodeRef | None = None,
                limit: int = 20) -> list[tuple[PersonRef, str | None, list[tuple[Role, NodeRef]]]]:
    """People by name fragment, phone or a node code they hold a post on."""
    from core.hierarchy.tree import normalize_phone

    text = text.strip()
    if not text:
        return []
    phone = normalize_phone(text)
    q = sa.select(P.c.id).distinct()
    if phone:
        q = q.where(P.c.phone == phone)
    else:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        code_match = sa.select(POST.c.person_id).join(N, N.c.id == POST.c.node_id).where(
            N.c.code == text
        )
        q = q.where(sa.or_(P.c.name.like(like, escape="\\"), P.c.id.in_(code_match)))
    if within is not None:
        low, high = subtree_bounds(within.path)
        inside = (
            sa.select(POST.c.person_id).join(N, N.c.id == POST.c.node_id)
            # A resident found moved away is no longer among a subtree's people.
            .where(N.c.path >= low, N.c.path < high, POST.c.moved_at.is_(None))
        )
        q = q.where(P.c.id.in_(inside))
    ids = [r[0] for r in session.execute(q.order_by(P.c.id).limit(limit))]
    out = []
    for pid in ids:
        a = actor(session, pid)
        ph = session.execute(sa.select(P.c.phone).where(P.c.id == pid)).scalar_one()
        out.append((a.person, ph, list(a.posts)))
    return out
