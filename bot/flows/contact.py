"""Who looks after a 邻: its 邻长 with the 组长 and 片长 above, for the greeting, /mylz and the
printable 邻长联系卡. Phone numbers are the leaders' own (a resident is meant to call them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from core.hierarchy.model import Person, Role
from core.hierarchy.queries import NodeRef, chain_for_node, residence_of
from core.hierarchy.tree import ROLE_LABEL_ZH

TIERS = (Role.neighbor_leader, Role.group_leader, Role.area_leader)


@dataclass(frozen=True)
class Contact:
    role: str  # 邻长 | 组长 | 片长
    name: str
    phone: str | None


@dataclass(frozen=True)
class Card:
    node_name: str
    node_code: str
    contacts: tuple[Contact, ...]
    office_hours: str

    def to_json(self) -> dict[str, object]:
        return {"node": self.node_name, "code": self.node_code,
                "office_hours": self.office_hours,
                "contacts": [{"role": c.role, "name": c.name, "phone": c.phone}
                             for c in self.contacts]}


def card_for_node(session: Session, node: NodeRef, *, office_hours: str = "") -> Card:
    """The contact card of a 邻: one holder per tier, vacant tiers left out."""
    contacts = []
    for step in chain_for_node(session, node).steps:
        if step.role not in TIERS or not step.holders:
            continue
        holder = step.holders[0]
        person = session.get(Person, holder.id)
        contacts.append(Contact(ROLE_LABEL_ZH[step.role], holder.name,
                                person.phone if person else None))
    return Card(node.name, node.code, tuple(contacts), office_hours)


def card_for_resident(session: Session, person_id: int, *, office_hours: str = "") -> Card:
    """The card of the 邻 a resident lives in."""
    return card_for_node(session, residence_of(session, person_id), office_hours=office_hours)


def card_text(card: Card, *, how_to_report: str) -> str:
    """The card as chat text (phone numbers plain: chats make them tappable themselves)."""
    lines = [f"我的邻长（{card.node_name}）"]
    for c in card.contacts:
        lines.append(f"{c.role}：{c.name}" + (f"　电话 {c.phone}" if c.phone else ""))
    if not card.contacts:
        lines.append("本邻暂未安排邻长，您的问题会转给上级处理。")
    if card.office_hours:
        lines.append(f"办公时间：{card.office_hours}")
    lines.append(how_to_report)
    return "\n".join(lines)
