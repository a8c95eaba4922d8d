"""Routing rules (直派): a category goes straight to a department or a tier, optionally only
within a node's subtree or during certain hours, with others informed (知会).

Rules come from the routing file (FORMATS in the README) in file order, then the category's
own `route_to` column as a last rule; the first rule that matches a case routes it. A case
with no matching rule goes to its 邻长 as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel

from core.cases.model import Case, CaseEvent, EventKind, Stage, State
from core.cases.routing import Target, department_for
from core.errors import Conflict, NotFound
from core.hierarchy.model import Category, Level, Role
from core.hierarchy.queries import Chain, NodeRef, node_by_code

# The tiers a rule may route to, and those it may inform (the chain's posts and the office).
ROUTE_ROLES = (Role.group_leader, Role.area_leader, Role.secretary)
INFORM_ROLES = (Role.neighbor_leader, Role.group_leader, Role.area_leader, Role.secretary,
                Role.admin)


class RoutingRule(SQLModel, table=True):
    """One row of the routing file; `position` keeps the file's order (first match wins)."""

    __tablename__ = "routing_rule"
    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(sa_column=sa.Column(sa.String(20), nullable=False, unique=True))
    position: int = Field(nullable=False)
    category: str = Field(sa_column=sa.Column(sa.String(50), nullable=False, index=True))
    route_to: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    within_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(40)))
    hours: str | None = Field(default=None, sa_column=sa.Column(sa.String(11)))
    inform: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))


RULES: sa.Table = RoutingRule.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Rule:
    """A rule as the engine reads it."""

    rule_id: str
    category: str
    route_to: str  # a department code suffix, or a Role value of ROUTE_ROLES
    within_code: str | None = None
    hours: str | None = None  # "HH:MM-HH:MM" local; may wrap midnight
    inform: tuple[str, ...] = ()

    @property
    def to_tier(self) -> Role | None:
        return next((r for r in ROUTE_ROLES if r.value == self.route_to), None)


@dataclass(frozen=True)
class Routing:
    """What a rule decided for one case: who takes it, and who is told."""

    rule: Rule
    target: Target
    informed: tuple[int, ...]


def parse_hours(text: str) -> tuple[time, time]:
    """`20:00-08:00` → (start, end); ValueError with a reason otherwise."""
    start, sep, end = text.strip().partition("-")
    try:
        if not sep:
            raise ValueError
        s, e = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f"hours {text!r} are malformed (use e.g. 08:30-17:30 or 20:00-08:00)"
                         ) from None
    if s == e:
        raise ValueError(f"hours {text!r} start and end at the same time")
    return s, e


def in_hours(hours: str, at: datetime, tz: ZoneInfo) -> bool:
    s, e = parse_hours(hours)
    now = at.astimezone(tz).time()
    return s <= now < e if s < e else (now >= s or now < e)


def rules_for(session: Session, category: Category) -> list[Rule]:
    """The rules of a category in the order they are tried."""
    rows = session.execute(
        sa.select(RULES.c.rule_id, RULES.c.route_to, RULES.c.within_code, RULES.c.hours,
                  RULES.c.inform)
        .where(RULES.c.category == category.name).order_by(RULES.c.position)
    ).all()
    out = [Rule(r[0], category.name, r[1], r[2], r[3],
                tuple(x for x in (r[4] or "").split(";") if x)) for r in rows]
    if category.route_to:
        out.append(Rule(f"category:{category.name}", category.name, category.route_to))
    return out


def _within(session: Session, rule: Rule, home: NodeRef) -> bool:
    if rule.within_code is None:
        return True
    try:
        node = node_by_code(session, rule.within_code)
    except NotFound:
        return False  # the node was archived since: the rule no longer applies anywhere
    return home.path.startswith(node.path)


def _tier_target(chain: Chain, role: Role) -> Target | None:
    """The holder of `role` on the case's chain, else the next filled post above it."""
    steps = chain.steps
    at = next((i for i, s in enumerate(steps) if s.role is role), None)
    if at is None:
        return None
    for step in steps[at:]:
        if step.holders:
            return Target(step.holders[0], step.role, step.node)
    return None


def _informed(chain: Chain, roles: tuple[str, ...], target: Target) -> tuple[int, ...]:
    ids: list[int] = []
    for role in roles:
        step = next((s for s in chain.steps if s.role.value == role), None)
        for person in step.holders if step is not None else ():
            if person.id != target.person.id and person.id not in ids:
                ids.append(person.id)
    return tuple(ids)


def route(session: Session, *, category: Category | None, home: NodeRef, chain: Chain,
          at: datetime, tz: ZoneInfo) -> Routing | None:
    """The first rule of the category that matches the case and can be staffed; None: the
    ordinary route (the 邻长 first)."""
    if category is None:
        return None
    for rule in rules_for(session, category):
        if rule.hours and not in_hours(rule.hours, at, tz):
            continue
        if not _within(session, rule, home):
            continue
        tier = rule.to_tier
        target: Target | None
        if tier is not None:
            target = _tier_target(chain, tier)
        else:
            try:
                target = department_for(session, home=home, category=Category(
                    name=category.name, department_suffix=rule.route_to))
            except (Conflict, NotFound):
                target = None  # no such department or no liaison here: try the next rule
        if target is not None:
            return Routing(rule, target, _informed(chain, rule.inform, target))
    return None


def is_department(target: Target) -> bool:
    return target.node.level is Level.department


def record_routing(session: Session, case: Case, routing: Routing, *, at: datetime,
                   kind: EventKind, actor_id: int | None = None, via: str | None = None,
                   previous: int | None = None) -> CaseEvent:
    """The timeline's line for a rule's decision; bot/notify tells the informed."""
    rule = routing.rule
    detail: dict[str, object] = {"rule": rule.rule_id, "route_to": rule.route_to,
                                 "node": routing.target.node.code,
                                 "node_name": routing.target.node.name, "inform": list(
                                     routing.informed)}
    if previous is not None:
        detail["from"] = previous
    from core.cases import ops

    return ops.record(session, case, kind=kind, at=at, actor_id=actor_id, via=via,
                      role=case.holder_role, detail=detail)


def reroute(session: Session, case: Case, category: Category, *, at: datetime,
            actor_id: int | None, via: str | None) -> bool:
    """Re-run the rules after a case's category changed: a rule that names another holder
    hands the case over (a fresh deadline); True when it did."""
    from core.cases import ops
    from core.hierarchy.queries import chain_for_node, node_by_id

    if State(case.state) not in (State.open, State.accepted):
        return False
    home = node_by_id(session, case.home_node_id)
    routing = route(session, category=category, home=home, chain=chain_for_node(session, home),
                    at=at, tz=ops.policy_of(case).tz)
    if routing is None:
        return False
    target = routing.target
    if (target.person.id, target.role.value, target.node.id) == (
            case.holder_id, case.holder_role, case.holder_node_id):
        return False
    previous = case.holder_id
    ops.assign(case, target)
    case.state = State.open.value
    if is_department(target):
        case.department_node_id = target.node.id
        case.department_reported_at = None
    ops.start_stage(case, Stage.department if is_department(target) else Stage.reply, at)
    ops.touch(case, at)
    record_routing(session, case, routing, at=at, kind=EventKind.rerouted, actor_id=actor_id,
                   via=via, previous=previous)
    return True


def all_rules(session: Session) -> list[Rule]:
    """Every rule of the routing file in its order, for the dashboard (read-only)."""
    rows = session.execute(
        sa.select(RULES.c.rule_id, RULES.c.category, RULES.c.route_to, RULES.c.within_code,
                  RULES.c.hours, RULES.c.inform).order_by(RULES.c.position)).all()
    return [Rule(r[0], r[1], r[2], r[3], r[4], tuple(x for x in (r[5] or "").split(";") if x))
            for r in rows]
