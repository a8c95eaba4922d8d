"""Everything a flow needs for one inbound message, and the small helpers every flow uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.flows.texts import t
from bot.flows.types import Button, Inbound, Outbound
from core.clock import Clock
from core.hierarchy.model import Person
from core.hierarchy.queries import Actor
from core.privacy import mask_text
from core.settings import Settings


@dataclass
class Ctx:
    session: Session
    clock: Clock
    settings: Settings
    inbound: Inbound
    actor: Actor | None = None
    lang: str = "zh"
    out: list[Outbound] = field(default_factory=list)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    @property
    def person_id(self) -> int | None:
        return self.actor.person.id if self.actor else None

    @property
    def via(self) -> str:
        return self.inbound.platform

    def t(self, key: str, **fields: object) -> str:
        return t(self.lang, key, **fields)

    def say(self, text: str, *, buttons: tuple[Button, ...] = (), request_contact: bool = False,
            kind: str = "reply", case_id: int | None = None,
            options: dict[str, Any] | None = None) -> None:
        """Answer in the chat the message came from (masked when that is a group chat)."""
        if not self.inbound.chat_is_private:
            text = mask_text(text)
        self.out.append(Outbound(
            text=text, kind=kind, platform=self.inbound.platform, address=self.inbound.chat_id,
            buttons=buttons, request_contact=request_contact, case_id=case_id,
            reply_to_message_id=None if self.inbound.chat_is_private else self.inbound.message_id,
            options=dict(options or {}),
        ))

    def ack(self, text: str) -> None:
        """Acknowledge a button press (a toast on Telegram), when the platform has one."""
        press = self.inbound.press
        if press is not None and press.query_id:
            self.out.append(Outbound(text=text[:190], kind="press_ack",
                                     platform=self.inbound.platform, address=self.inbound.chat_id,
                                     answer_press=press.query_id))

    def person(self) -> Person | None:
        return self.session.get(Person, self.person_id) if self.person_id else None
