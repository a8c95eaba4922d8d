"""What the notifier reads to address and word one batch of events, in a handful of queries
whatever the batch's size (a sweep publishes a thousand events at once)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from bot.dispatcher.rows import CARD_KINDS, CHAT_CARD, HOLDER_CARD
from bot.notify import render as R
from core.cases import ops
from core.cases.model import CASES, Case, CaseEvent
from core.cases.routing import Target, chains_for, next_target
from core.deliveries import CARD_UPDATE, DEL
from core.hierarchy.import_categories import split_canned
from core.hierarchy.model import Category, ChatIdentity, Person, Post, Role
from core.hierarchy.queries import NodeRef, nodes_by_ids, seen_nodes, seen_people
from core.outbox import OUT, Action

PEOPLE: sa.Table = Person.__table__  # type: ignore[attr-defined]
POSTS: sa.Table = Post.__table__  # type: ignore[attr-defined]
CI: sa.Table = ChatIdentity.__table__  # type: ignore[attr-defined]
# Outbox kinds that are a case's cards: the holder's (private) and the tier chats' (masked).
CARD_ROW_KINDS = tuple(sorted(CARD_KINDS))


@dataclass(frozen=True)
class Recipient:
    person_id: int | None = None
    binding_id: int | None = None
    lang: str = "zh"

    @property
    def private(self) -> bool:
        """A person's own chat sees everything; a group chat sees masked copies."""
        return self.person_id is not None

    @property
    def key(self) -> str:
        return f"p{self.person_id}" if self.person_id is not None else f"b{self.binding_id}"


def _ids() -> sa.BindParameter[list[int]]:
    return sa.bindparam("ids", expanding=True)


class _Q:
    """The batch's reads, built once (core/db.py, "Statements built once"): every update's
    events come through here."""

    @staticmethod
    @functools.cache
    def residents() -> sa.Select[tuple[int, int, str | None, bool, bool]]:
        """Each case's resident: their address at home, whether a chat reaches them, and
        whether they have a chat account at all (one read for both)."""
        reachable = sa.exists().where(CI.c.person_id == CASES.c.resident_id,
                                      CI.c.unreachable.is_(False))
        any_chat = sa.exists().where(CI.c.person_id == CASES.c.resident_id)
        return (sa.select(CASES.c.id, CASES.c.resident_id, POSTS.c.address,
                          reachable.label("reachable"), any_chat.label("any_chat"))
                .outerjoin(POSTS, sa.and_(POSTS.c.person_id == CASES.c.resident_id,
                                          POSTS.c.node_id == CASES.c.home_node_id,
                                          POSTS.c.role == Role.resident.value))
                .where(CASES.c.id.in_(_ids())))

    @staticmethod
    @functools.cache
    def canned() -> sa.Select[tuple[int, str]]:
        cats: sa.Table = Category.__table__  # type: ignore[attr-defined]
        return (sa.select(CASES.c.id, cats.c.canned)
                .join(cats, cats.c.id == CASES.c.category_id)
                .where(CASES.c.id.in_(_ids()), cats.c.canned.is_not(None)))

    @staticmethod
    @functools.cache
    def cards() -> sa.Select[tuple[int, int | None, int | None]]:
        return (sa.select(OUT.c.case_id, OUT.c.person_id, OUT.c.chat_binding_id)
                .where(OUT.c.case_id.in_(_ids()), OUT.c.kind.in_(CARD_ROW_KINDS)).distinct())

    @staticmethod
    @functools.cache
    def copies() -> sa.Select[tuple[int, int | None, int | None, str]]:
        return (sa.select(OUT.c.case_id, OUT.c.person_id, OUT.c.chat_binding_id,
                          DEL.c.platform)
                .join(DEL, DEL.c.outbox_id == OUT.c.id)
                .where(DEL.c.case_id.in_(_ids()), DEL.c.is_card.is_(True)).distinct())

    @staticmethod
    @functools.cache
    def people() -> sa.Select[tuple[int, str, str | None]]:
        return sa.select(PEOPLE.c.id, PEOPLE.c.name, PEOPLE.c.language).where(
            PEOPLE.c.id.in_(_ids()))


@dataclass
class Env:
    session: Session
    cases: dict[int, Case] = field(default_factory=dict)
    people: dict[int, tuple[str, str]] = field(default_factory=dict)  # id → (name, language)
    followers: dict[int, list[int]] = field(default_factory=dict)
    addresses: dict[int, str | None] = field(default_factory=dict)
    unreachable: set[int] = field(default_factory=set)  # residents no chat reaches
    # Reporters that are client systems (Open311: a 12345 hotline): they read answers back
    # through the API, so they get no chat message and are never "unreachable".
    systems: set[int] = field(default_factory=set)
    no_chat: set[int] = field(default_factory=set)  # residents with no chat account at all
    nodes: dict[int, NodeRef] = field(default_factory=dict)
    mirrors: dict[int, list[int]] = field(default_factory=dict)
    superiors: dict[int, Target | None] = field(default_factory=dict)
    card_holders: dict[int, set[Recipient]] = field(default_factory=dict)
    # (case, person, binding) → the platforms holding delivered copies of that card
    card_platforms: dict[tuple[int, int | None, int | None], set[str]] = field(
        default_factory=dict)
    canned: dict[int, tuple[str, ...]] = field(default_factory=dict)  # 常用答复 per case
    # Found once per case and batch, however many cards show them (holder, tier chats).
    maybe_dupes: dict[int, list[int]] = field(default_factory=dict)
    supporters: dict[int, int] = field(default_factory=dict)

    def load(self, events: Sequence[CaseEvent]) -> None:
        s = self.session
        ids = sorted({e.case_id for e in events})
        for cid in ids:
            case = s.get(Case, cid)  # the identity map holds what the action changed
            if case is not None:
                self.cases[cid] = case
        self.followers = ops.followers_of(s, ids)
        people = {p for c in self.cases.values()
                  for p in (c.holder_id, c.resident_id, c.covering_for_id) if p}
        people |= {p for f in self.followers.values() for p in f}
        for e in events:
            people |= {v for k, v in (e.detail or {}).items()
                       if k in ("from", "taken_from") and isinstance(v, int)}
            informed = (e.detail or {}).get("inform")
            if isinstance(informed, list):
                people |= {p for p in informed if isinstance(p, int)}
            if e.actor_id:
                people.add(e.actor_id)
        self._people(people)
        seen = seen_nodes(s)  # what the update's own reads found
        wanted = {n for c in self.cases.values() for n in (c.holder_node_id, c.home_node_id)
                  if n}
        self.nodes = {n: seen[n] for n in wanted if n in seen}
        if rest := wanted - self.nodes.keys():
            self.nodes.update(nodes_by_ids(s, rest))
        residents = {c.resident_id for c in self.cases.values()}
        reachable: set[int] = set()
        with_chat: set[int] = set()
        for cid, resident, address, reaches, any_chat in s.execute(
                _Q.residents(), {"ids": ids}):
            if address is not None:
                self.addresses.setdefault(cid, address)
            if reaches:
                reachable.add(resident)
            if any_chat:
                with_chat.add(resident)
        self.unreachable = residents - reachable
        # Never had a chat (a caller on the hotline) is not "blocked the bot".
        self.no_chat = residents - with_chat
        if self.unreachable:  # only then can one be a system (no extra read for a chat report)
            from core.open311.model import Open311Client

            clients: sa.Table = Open311Client.__table__  # type: ignore[attr-defined]
            self.systems = set(s.execute(sa.select(clients.c.person_id).where(
                clients.c.person_id.in_(sorted(self.unreachable)))).scalars())
            self.unreachable -= self.systems
        with_category = [cid for cid, c in self.cases.items() if c.category_id is not None]
        for cid, canned in s.execute(_Q.canned(), {"ids": with_category}) \
                if with_category else []:
            self.canned[cid] = tuple(split_canned(canned))
        # A case opened in this transaction has no card anywhere yet.
        ids = [cid for cid in ids if not ops.is_new_here(s, cid)]
        if not ids:
            return
        found = list(s.execute(_Q.cards(), {"ids": ids}))
        self._people({r.person_id for r in found if r.person_id})
        for cid, pid, bid in found:
            self.card_holders.setdefault(cid, set()).add(
                Recipient(pid, bid, self.lang(pid) if pid else "zh"))
        for cid, pid, bid, platform in s.execute(_Q.copies(), {"ids": ids}):
            self.card_platforms.setdefault((cid, pid, bid), set()).add(platform)

    def _people(self, ids: set[int]) -> None:
        missing = [i for i in ids if i not in self.people]
        seen = seen_people(self.session)  # who the update's own reads found
        self.people.update({i: seen[i] for i in missing if i in seen})
        missing = [i for i in missing if i not in self.people]
        if missing:
            for pid, name, lang in self.session.execute(_Q.people(), {"ids": missing}):
                self.people[pid] = (name, lang or "zh")

    def name(self, person_id: int | None) -> str:
        return self.people.get(person_id, ("", "zh"))[0] if person_id else ""

    def lang(self, person_id: int | None) -> str:
        return self.people.get(person_id, ("", "zh"))[1] if person_id else "zh"

    def person(self, person_id: int | None) -> list[Recipient]:
        if person_id is None:
            return []
        self._people({person_id})
        return [Recipient(person_id=person_id, lang=self.lang(person_id))]

    def holder_actions(self, lang: str, case: Case) -> tuple[Action, ...]:
        """The holder's buttons, with the category's 常用答复 when it has some."""
        assert case.id is not None
        return R.holder_actions(lang, case, canned=self.canned.get(case.id, ()))

    def tz(self, case: Case) -> ZoneInfo:
        return ops.policy_of(case).tz

    def node(self, node_id: int) -> NodeRef:
        if node_id not in self.nodes:
            self.nodes.update(nodes_by_ids(self.session, {node_id}))
        return self.nodes[node_id]

    def tier_chats(self, case: Case) -> list[Recipient]:
        if case.holder_node_id is None:
            return []
        ids = ops.mirror_bindings(self.session, self.node(case.holder_node_id), self.mirrors)
        return [Recipient(binding_id=b) for b in ids]

    def superior(self, case: Case) -> Target | None:
        assert case.id is not None
        if case.id not in self.superiors:
            target = None
            if case.holder_role and case.holder_node_id:
                home = self.node(case.home_node_id)
                chain = chains_for(self.session, [home])[home.id]
                target = next_target(chain, role=case.holder_role,
                                     node=self.node(case.holder_node_id),
                                     holder_id=case.holder_id or -1)
            self.superiors[case.id] = target
        return self.superiors[case.id]


__all__ = ["CARD_ROW_KINDS", "CARD_UPDATE", "CHAT_CARD", "HOLDER_CARD", "Env", "Recipient"]
