"""Stand-ins (/away, /back): while a leader is away their new cases go to a stand-in, and the
cases they held are handed over, so that no deadline runs against them while they are gone.

Decisions (README "Stand-ins"):
- Open and accepted cases the away person holds are handed to the stand-in at once, as a
  改派 with a fresh deadline (the case keeps moving; its 超期 history stays with the case).
- Cases that would be routed to the away person (a new report, an escalation, a reassignment)
  go to the stand-in instead; the case remembers whom it covers for (cases.covering_for_id).
- On /back, or automatically at the end (the sweep), the cases the stand-in still holds for
  them are handed back, with a fresh deadline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from core.cases import events
from core.cases.model import AWAY, CASES, Away, Case, EventKind, Stage, State
from core.cases.routing import Target, next_target
from core.clock import Clock, as_utc
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Person, Role
from core.hierarchy.queries import (
    Actor,
    NodeRef,
    PersonRef,
    actor,
    chain_for_node,
    find_people,
    node_by_id,
    person_by_phone,
)
from core.hierarchy.scope import appoint_refusal
from core.hierarchy.tree import LEADER_ROLES, normalize_phone

MAX_DAYS = 90
DAYS_RE = re.compile(r"^(\d{1,3})\s*(?:d|天|日)$", re.I)
DATE_RE = re.compile(r"^(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?$")
HANDED_STATES = (State.open.value, State.accepted.value)


def looks_like_until(text: str) -> bool:
    """Whether a word is an end (3d, 12-05, 2026-12-05) rather than a person."""
    return bool(DAYS_RE.match(text.strip()) or DATE_RE.match(text.strip()))


def parse_until(text: str, *, now: datetime, tz: ZoneInfo) -> datetime:
    """The moment an absence ends: `3d` from now, or the end of the named local day."""
    text = text.strip()
    days = DAYS_RE.match(text)
    if days:
        n = int(days.group(1))
        if not 1 <= n <= MAX_DAYS:
            raise InvalidInput("away_days_range", most=MAX_DAYS)
        return now + timedelta(days=n)
    m = DATE_RE.match(text)
    if m is None:
        raise InvalidInput("away_until_malformed", text=text[:20])
    today = now.astimezone(tz).date()
    try:
        day = date(int(m.group(1) or today.year), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise InvalidInput("away_until_malformed", text=text[:20]) from None
    if day < today:
        raise InvalidInput("away_date_past", day=day.isoformat())
    if day > today + timedelta(days=MAX_DAYS):
        raise InvalidInput("away_days_range", most=MAX_DAYS)
    # Away through the named day: back at the start of the next one.
    return as_utc(datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz))


def active(session: Session, *, person_id: int, now: datetime) -> Away | None:
    """The person's absence running now, if any."""
    q = (sa.select(Away).where(AWAY.c.person_id == person_id, AWAY.c.ended_at.is_(None),
                               AWAY.c.starts_at <= now, AWAY.c.ends_at > now)
         .order_by(AWAY.c.id.desc()).limit(1))
    return session.execute(q).scalar_one_or_none()


_CACHE = "away_now"


def _away_now(session: Session, now: datetime) -> dict[int, Away]:
    """Everyone away at `now`, read once per session and moment: the sweep hands over
    thousands of cases a batch and asks for each (the table holds a handful of rows)."""
    cached = session.info.get(_CACHE)
    if cached is not None and cached[0] == now:
        return cached[1]
    q = sa.select(Away).where(AWAY.c.ended_at.is_(None), AWAY.c.starts_at <= now,
                              AWAY.c.ends_at > now)
    found = {a.person_id: a for a in session.execute(q).scalars()}
    session.info[_CACHE] = (now, found)
    return found


def _forget(session: Session) -> None:
    session.info.pop(_CACHE, None)


def cover(session: Session, target: Target, *, now: datetime) -> tuple[Target, int | None]:
    """Where a case routed to `target` really goes: the stand-in while the target is away
    (and whom they cover for), else the target itself."""
    away = _away_now(session, now).get(target.person.id)
    if away is None:
        return target, None
    stand_in = session.get(Person, away.stand_in_id)
    assert stand_in is not None and stand_in.id is not None
    node = node_by_id(session, away.stand_in_node_id)
    return Target(PersonRef(stand_in.id, stand_in.name), Role(away.stand_in_role), node), \
        target.person.id


def cover_holder(session: Session, case: Case, *, now: datetime) -> int | None:
    """A case coming back to its holder (reopened, sent back) while they are away goes to
    their stand-in instead; whom the stand-in covers for (None: the holder is here)."""
    if case.holder_id is None or case.holder_id not in _away_now(session, now):
        return None
    person = session.get(Person, case.holder_id)
    assert person is not None and case.holder_role is not None
    assert case.holder_node_id is not None
    holder = Target(PersonRef(case.holder_id, person.name), Role(case.holder_role),
                    node_by_id(session, case.holder_node_id))
    stand_in, covering = cover(session, holder, now=now)
    case.holder_id = stand_in.person.id
    case.holder_role = stand_in.role.value
    case.holder_node_id = stand_in.node.id
    case.covering_for_id = covering
    return covering


@dataclass(frozen=True)
class AwayResult:
    """What /away or /back did: the absence, and how many cases changed hands."""

    away: Away
    stand_in: PersonRef
    handed: int


def _leader_post(who: Actor) -> tuple[Role, NodeRef]:
    """The post an absence is about: the person's lowest leader post."""
    posts = [(r, n) for r, n in who.posts if r in LEADER_ROLES]
    if not posts:
        raise InvalidInput("away_not_a_leader", name=who.person.name)
    return max(posts, key=lambda p: len(p[1].path))


def _check_setter(setter: Actor, away: Actor, role: Role, node: NodeRef) -> None:
    """One sets their own absence; an admin sets it for someone whose post they could give."""
    if setter.person.id == away.person.id:
        return
    if appoint_refusal(setter, role, node, node.level) is not None:
        raise PermissionDenied("away_outside_scope", name=away.person.name)


def _resolve_person(session: Session, text: str, *, within: NodeRef) -> int:
    """A stand-in named by phone or by name inside a subtree (one match, or a clear refusal)."""
    phone = normalize_phone(text)
    if phone:
        pid = person_by_phone(session, phone)
        if pid is None:
            raise NotFound("away_stand_in_unknown", text=text[:20])
        return pid
    found = [p for p, _, posts in find_people(session, text, within=within)
             if p.name == text.strip()]
    if not found:
        raise NotFound("away_stand_in_unknown", text=text[:20])
    if len(found) > 1:
        raise InvalidInput("away_stand_in_ambiguous", text=text[:20])
    return found[0].id


def _stand_in_post(session: Session, stand_in: Actor, *, node: NodeRef) -> Target:
    """The stand-in's post for the away person's cases: a leader (or admin) post on the away
    person's chain, or a peer post under the node above theirs; anything else is outside."""
    parent = node_by_id(session, node.parent_id) if node.parent_id else node
    fits = [(r, n) for r, n in stand_in.posts
            if (r in LEADER_ROLES or r is Role.admin) and (n.contains(node)
                                                           or parent.contains(n))]
    if not fits:
        raise InvalidInput("away_stand_in_outside", name=stand_in.person.name)
    r, n = max(fits, key=lambda p: len(p[1].path))
    return Target(stand_in.person, r, n)


def set_away(session: Session, *, clock: Clock, tz: ZoneInfo, setter_id: int, person_id: int,
             until: str, stand_in: str | None = None) -> AwayResult:
    """Record an absence until `until` and hand the person's open cases to the stand-in."""
    now = clock.now()
    setter, who = actor(session, setter_id), actor(session, person_id)
    role, node = _leader_post(who)
    _check_setter(setter, who, role, node)
    ends = parse_until(until, now=now, tz=tz)
    running = active(session, person_id=person_id, now=now)
    if running is not None:
        raise Conflict("away_already",
                       until=as_utc(running.ends_at).astimezone(tz).strftime("%m-%d %H:%M"))
    if stand_in:
        sid = _resolve_person(session, stand_in, within=_top_of_chain(session, node))
        if sid == person_id:
            raise InvalidInput("away_stand_in_self")
        target = _stand_in_post(session, actor(session, sid), node=node)
    else:
        found = next_target(chain_for_node(session, node), role=role.value, node=node,
                            holder_id=person_id)
        if found is None:
            raise Conflict("away_nobody_above", name=who.person.name)
        target = found
    if active(session, person_id=target.person.id, now=now) is not None:
        raise Conflict("away_stand_in_away", name=target.person.name)
    row = Away(person_id=person_id, stand_in_id=target.person.id,
               stand_in_role=target.role.value, stand_in_node_id=target.node.id,
               set_by_id=setter_id, starts_at=now, ends_at=ends)
    session.add(row)
    session.flush()
    _forget(session)
    handed = _hand(session, _held_by(session, person_id), target, now=now,
                   covering_for=person_id, actor_id=setter_id, detail={"away": row.id})
    events.publish(session)
    return AwayResult(row, target.person, handed)


def _top_of_chain(session: Session, node: NodeRef) -> NodeRef:
    """Where a named stand-in is looked for: the village (or the highest node) above."""
    chain = chain_for_node(session, node)
    leaders = [s.node for s in chain.steps if s.role is not Role.admin]
    return min(leaders or [node], key=lambda n: len(n.path))


def _held_by(session: Session, person_id: int) -> list[Case]:
    q = (sa.select(Case).where(CASES.c.holder_id == person_id,
                               CASES.c.state.in_(HANDED_STATES),
                               sa.or_(CASES.c.stage.is_(None),
                                      CASES.c.stage != Stage.verify.value))
         .order_by(CASES.c.id))
    return list(session.execute(q).scalars())


def _hand(session: Session, cases: list[Case], target: Target, *, now: datetime,
          covering_for: int | None, actor_id: int | None, detail: dict[str, object]) -> int:
    from core.cases.actions import hand_over

    for case in cases:
        hand_over(session, case, target, now=now, stage=Stage.reply,
                  kind=EventKind.reassigned, actor_id=actor_id, via=None, note=None,
                  detail={**detail, "covering_for": covering_for})
        case.covering_for_id = covering_for
    return len(cases)


def end_away(session: Session, *, clock: Clock, setter_id: int | None, person_id: int,
             reason: str = "back") -> AwayResult:
    """End the person's absence (/back, or `reason="auto"` at its end) and hand back the cases
    the stand-in still holds for them."""
    now = clock.now()
    q = (sa.select(Away).where(AWAY.c.person_id == person_id, AWAY.c.ended_at.is_(None))
         .order_by(AWAY.c.id.desc()).limit(1))
    row = session.execute(q).scalar_one_or_none()
    if row is None:
        raise Conflict("away_not_away")
    who = actor(session, person_id)
    posts = [(r, n) for r, n in who.posts if r in LEADER_ROLES]
    if setter_id is not None:
        role, node = _leader_post(who)
        _check_setter(actor(session, setter_id), who, role, node)
    row.ended_at = now
    row.end_reason = reason
    session.flush()
    _forget(session)
    covered = list(session.execute(
        sa.select(Case).where(CASES.c.covering_for_id == person_id)).scalars())
    back = [c for c in covered if c.holder_id == row.stand_in_id and c.state in HANDED_STATES
            and c.stage != Stage.verify.value]
    for c in covered:
        c.covering_for_id = None
    handed = 0
    if posts:  # someone who lost their post meanwhile gets nothing back
        role, node = max(posts, key=lambda p: len(p[1].path))
        handed = _hand(session, back, Target(who.person, role, node), now=now,
                       covering_for=None, actor_id=setter_id, detail={"back": row.id})
    stand_in = session.get(Person, row.stand_in_id)
    assert stand_in is not None and stand_in.id is not None
    events.publish(session)
    return AwayResult(row, PersonRef(stand_in.id, stand_in.name), handed)


def end_due(session: Session, *, clock: Clock, limit: int = 200) -> int:
    """Bring back everyone whose absence has run out (the sweep calls it); how many."""
    now = clock.now()
    q = (sa.select(AWAY.c.person_id).where(AWAY.c.ended_at.is_(None), AWAY.c.ends_at <= now)
         .order_by(AWAY.c.ends_at).limit(limit))
    people = list(dict.fromkeys(session.execute(q).scalars()))
    for pid in people:
        end_away(session, clock=clock, setter_id=None, person_id=pid, reason="auto")
    return len(people)


def any_due(session: Session, *, now: datetime) -> bool:
    return session.execute(
        sa.select(AWAY.c.id).where(AWAY.c.ended_at.is_(None), AWAY.c.ends_at <= now).limit(1)
    ).first() is not None
