"""Who a notice reaches: the chosen tiers of one node's subtree, and the residents without a
chat of their own, whom their 邻长 is asked to tell (请转达N户).

Read in bulk SQL (one query per tier kind), never one object per person: a city-wide notice
has over 100,000 邻长.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from core.errors import InvalidInput
from core.hierarchy.model import ChatIdentity, Node, Person, Post, Role
from core.hierarchy.queries import NodeRef
from core.hierarchy.tree import subtree_bounds
from core.notices.model import RECIPIENT

N: sa.Table = Node.__table__  # type: ignore[attr-defined]
POST: sa.Table = Post.__table__  # type: ignore[attr-defined]
CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
PEOPLE: sa.Table = Person.__table__  # type: ignore[attr-defined]

# The tiers a notice may go to, top down (书记 and admins send; they are not an audience).
AUDIENCE_ROLES: tuple[Role, ...] = (Role.area_leader, Role.group_leader, Role.neighbor_leader,
                                    Role.department, Role.resident)


@dataclass(frozen=True)
class Target:
    person_id: int
    role: str
    node_id: int
    relay_households: int = 0


@dataclass(frozen=True)
class Household:
    """One address under a 邻 whose residents have no chat of their own."""

    neighborhood_id: int
    address: str | None  # None: a resident imported without an address is a household alone
    person_ids: tuple[int, ...]


def parse_audience(roles: Iterable[str]) -> tuple[Role, ...]:
    """The audience as roles, top down; refuses an empty list or a role that is no tier below."""
    wanted: set[Role] = set()
    for r in roles:
        try:
            role = Role(str(r).strip())
        except ValueError:
            raise InvalidInput("notice_audience_role", role=str(r)[:30]) from None
        if role not in AUDIENCE_ROLES:
            raise InvalidInput("notice_audience_role", role=role.value)
        wanted.add(role)
    if not wanted:
        raise InvalidInput("notice_audience_empty")
    return tuple(r for r in AUDIENCE_ROLES if r in wanted)


def _in_subtree(node: NodeRef) -> sa.ColumnElement[bool]:
    low, high = subtree_bounds(node.path)
    return sa.and_(N.c.path >= low, N.c.path < high)


def _living() -> sa.ColumnElement[bool]:
    """A resident post still in the registry: 已搬离 (a campaign's outcome) hides it."""
    return POST.c.moved_at.is_(None)


def _has_chat(by_sms: bool = False) -> sa.ColumnElement[bool]:
    """A chat of their own reaches them; with SMS on (`by_sms`), so does a phone on file, and
    the notice goes to them by text instead of the relay through their 邻长."""
    chat = sa.exists().where(CI.c.person_id == POST.c.person_id, CI.c.unreachable.is_(False))
    if not by_sms:
        return chat
    return sa.or_(chat, sa.exists().where(PEOPLE.c.id == POST.c.person_id,
                                          PEOPLE.c.phone.is_not(None)))


def targets(session: Session, *, node: NodeRef, audience: tuple[Role, ...],
            exclude: int | None = None, by_sms: bool = False) -> list[Target]:
    """Everybody the notice goes to, one row per person (at the highest post they hold in the
    audience); a 邻长 whose residents in the audience have no chat carries their households."""
    leaders = [r.value for r in audience if r is not Role.resident]
    order = {r.value: i for i, r in enumerate(AUDIENCE_ROLES)}
    found: dict[int, Target] = {}
    if leaders:
        q = (sa.select(POST.c.person_id, POST.c.role, POST.c.node_id)
             .join(N, N.c.id == POST.c.node_id)
             .where(_in_subtree(node), POST.c.role.in_(leaders)))
        for pid, role, nid in session.execute(q):
            have = found.get(pid)
            if have is None or order[role] < order[have.role]:
                found[pid] = Target(pid, role, nid)
    if Role.resident in audience:
        q = (sa.select(POST.c.person_id, POST.c.node_id)
             .join(N, N.c.id == POST.c.node_id)
             .where(_in_subtree(node), POST.c.role == Role.resident.value, _living(),
                    _has_chat(by_sms)))
        for pid, nid in session.execute(q):
            found.setdefault(pid, Target(pid, Role.resident.value, nid))
        relay = _households_by_leader(session, node=node, by_sms=by_sms)
        for leader_id, (nid, count) in relay.items():
            have = found.get(leader_id)
            if have is None:
                found[leader_id] = Target(leader_id, Role.neighbor_leader.value, nid, count)
            else:
                found[leader_id] = Target(have.person_id, have.role, have.node_id,
                                          have.relay_households + count)
    if exclude is not None:
        found.pop(exclude, None)
    return list(found.values())


def homes_without_chat(session: Session, *, node: NodeRef, by_sms: bool = False
                       ) -> dict[int, list[Household]]:
    """Per 邻 (node id) in `node`'s subtree, the households of residents (not moved) of whom
    none has a chat of their own: the items of a notice's relay, 邻长 or not."""
    q = (sa.select(POST.c.node_id, POST.c.address, POST.c.person_id)
         .join(N, N.c.id == POST.c.node_id)
         .where(_in_subtree(node), POST.c.role == Role.resident.value, _living(),
                sa.not_(_has_chat(by_sms)))
         .order_by(POST.c.node_id, POST.c.address, POST.c.person_id))
    by_node: dict[int, dict[str | int, list[int]]] = {}
    for nid, address, pid in session.execute(q):
        key: str | int = address.strip() if address and address.strip() else -pid
        by_node.setdefault(nid, {}).setdefault(key, []).append(pid)
    return {nid: [Household(nid, k if isinstance(k, str) else None, tuple(v))
                  for k, v in homes.items()] for nid, homes in by_node.items()}


def relay_households(session: Session, *, node: NodeRef, by_sms: bool = False
                     ) -> dict[int, list[Household]]:
    """Per 邻长 (person id), the households of their 邻 in `node`'s subtree whose residents
    have no chat of their own: what the 邻长 passes on by word of mouth (a campaign's items)."""
    by_node = homes_without_chat(session, node=node, by_sms=by_sms)
    if not by_node:
        return {}
    leaders = session.execute(
        sa.select(POST.c.node_id, POST.c.person_id)
        .where(POST.c.role == Role.neighbor_leader.value, POST.c.node_id.in_(list(by_node)))
        .order_by(POST.c.id)).all()
    out: dict[int, list[Household]] = {}
    for nid, leader_id in leaders:
        out.setdefault(leader_id, []).extend(by_node[nid])
    return out


def _households_by_leader(session: Session, *, node: NodeRef, by_sms: bool = False
                          ) -> dict[int, tuple[int, int]]:
    """Per 邻长: (their 邻, how many households to tell)."""
    out: dict[int, tuple[int, int]] = {}
    for leader_id, homes in relay_households(session, node=node, by_sms=by_sms).items():
        nid = homes[0].neighborhood_id
        out[leader_id] = (nid, len(homes))
    return out


def write_recipients(session: Session, *, notice_id: int, node: NodeRef,
                     audience: tuple[Role, ...], exclude: int | None,
                     with_relay: bool = True, by_sms: bool = False) -> dict[str, int]:
    """The recipient rows of a notice, written by the database from the tree (INSERT …
    SELECT: a city's 100,000 邻长 never pass through Python); the same people as `targets`.
    `with_relay` False: residents without a chat are not passed on to their 邻长 (a survey about
    the 邻长 cannot go through them). Returns how many per role."""
    r = RECIPIENT
    leaders = [x.value for x in audience if x is not Role.resident]
    rank = sa.case(*[(POST.c.role == x.value, i) for i, x in enumerate(AUDIENCE_ROLES)],
                   else_=99)
    not_sender = POST.c.person_id != exclude if exclude is not None else sa.true()
    cols = ["notice_id", "person_id", "role", "node_id", "relay_households"]
    if leaders:
        ranked = (sa.select(POST.c.person_id, POST.c.role, POST.c.node_id,
                            sa.func.row_number().over(partition_by=POST.c.person_id,
                                                      order_by=(rank, POST.c.node_id))
                            .label("rn"))
                  .join(N, N.c.id == POST.c.node_id)
                  .where(_in_subtree(node), POST.c.role.in_(leaders), not_sender)
                  .subquery())
        session.execute(sa.insert(r).from_select(cols, sa.select(
            sa.literal(notice_id), ranked.c.person_id, ranked.c.role, ranked.c.node_id,
            sa.literal(0)).where(ranked.c.rn == 1)))
    if Role.resident in audience:
        taken = sa.exists().where(r.c.notice_id == notice_id, r.c.person_id == POST.c.person_id)
        session.execute(sa.insert(r).from_select(cols, sa.select(
            sa.literal(notice_id), POST.c.person_id, sa.literal(Role.resident.value),
            sa.func.min(POST.c.node_id), sa.literal(0))
            .join(N, N.c.id == POST.c.node_id)
            .where(_in_subtree(node), POST.c.role == Role.resident.value, _living(),
                   _has_chat(by_sms), not_sender, ~taken)
            .group_by(POST.c.person_id)))
        relay = {k: v for k, v in _households_by_leader(session, node=node,
                                                         by_sms=by_sms).items()
                 if k != exclude} if with_relay else {}
        have = set(session.execute(sa.select(r.c.person_id).where(
            r.c.notice_id == notice_id, r.c.person_id.in_(list(relay)))).scalars()) \
            if relay else set()
        adds = [{"n": n, "p": pid} for pid, (_nid, n) in relay.items() if pid in have]
        fresh = [{"notice_id": notice_id, "person_id": pid, "role": Role.neighbor_leader.value,
                  "node_id": nid, "relay_households": n}
                 for pid, (nid, n) in relay.items() if pid not in have]
        if adds:
            session.execute(sa.update(r).where(
                r.c.notice_id == notice_id, r.c.person_id == sa.bindparam("p")).values(
                relay_households=r.c.relay_households + sa.bindparam("n")), adds)
        if fresh:
            session.execute(sa.insert(r), fresh)
    return {role: int(n) for role, n in session.execute(
        sa.select(r.c.role, sa.func.count()).where(r.c.notice_id == notice_id)
        .group_by(r.c.role))}
