"""An outbox row as the dispatcher and every transport hold it: plain, frozen data (it is
claimed in a database thread and delivered on the event loop or in another thread)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core import deliveries
from core.outbox import OutboxMessage

# Messages that present a case to its holder or its tier chat are cards whose state edits
# follow the case, whether or not the row says `options.card` (named once, here: bot/notify
# writes them, the dispatcher and its transports keep them current).
HOLDER_CARD = "new_case"
CHAT_CARD = "mirror"
CARD_KINDS = frozenset({HOLDER_CARD, CHAT_CARD})


@dataclass(frozen=True)
class Row:
    """An outbox row as a transport needs it."""

    id: int
    kind: str
    text: str
    person_id: int | None
    chat_binding_id: int | None
    platform: str | None
    address: str | None
    case_id: int | None
    actions: tuple[dict[str, Any], ...]
    options: dict[str, Any]
    attempts: int = 0  # failed attempts so far (a transport may make each attempt's id unique)
    # Whose own chat a raw address is (a flow's reply to the chat it came from): their rows
    # then share one queue, so a receipt written for the person and the question the flow
    # asked in that chat arrive in the order they were written.
    chat_owner: int | None = None

    @classmethod
    def of(cls, row: OutboxMessage, *, chat_owner: int | None = None) -> Row:
        assert row.id is not None
        return cls(row.id, row.kind, row.text, row.person_id, row.chat_binding_id, row.platform,
                   row.address, row.case_id, tuple(row.actions or ()), dict(row.options or {}),
                   row.attempts, chat_owner)

    @property
    def key(self) -> str:
        """Rows with the same key go out in order, one at a time: one recipient's rows (so a
        card's edits follow the card itself), or a case's edits of every copy."""
        if self.person_id is not None:
            return f"person:{self.person_id}"
        if self.platform == deliveries.WEBHOOK:
            # One hook's updates of one case in order; its other cases go side by side.
            return f"hook:{self.address}:{self.case_id}"
        if self.chat_owner is not None and self.kind != deliveries.CARD_UPDATE:
            return f"person:{self.chat_owner}"
        if self.chat_binding_id is not None:
            return f"binding:{self.chat_binding_id}"
        if self.kind == deliveries.CARD_UPDATE and self.case_id is not None:
            return f"card:{self.case_id}"
        return f"chat:{self.address}"

    @property
    def is_card(self) -> bool:
        """A case card whose later edits should follow the case."""
        return bool(self.options.get("card")) or self.kind in CARD_KINDS
