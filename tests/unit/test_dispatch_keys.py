"""Which rows share one queue in the dispatcher (and so keep their written order)."""

from __future__ import annotations

import dataclasses

from bot.dispatcher.rows import Row
from core import deliveries


def row(**kw: object) -> Row:
    base = Row(id=1, kind="reply", text="t", person_id=None, chat_binding_id=None,
               platform="web", address=None, case_id=None, actions=(), options={})
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_a_reply_to_a_persons_own_chat_queues_with_their_other_rows() -> None:
    receipt = row(id=1, kind="receipt", person_id=7)
    question = row(id=2, address="w1", chat_owner=7)
    assert receipt.key == question.key == "person:7"


def test_a_chat_nobody_owns_has_its_own_queue() -> None:
    assert row(address="w1").key == "chat:w1"
    assert row(address="w1").key != row(person_id=7).key


def test_card_edits_stay_on_the_cases_queue_even_in_an_owned_chat() -> None:
    edit = row(kind=deliveries.CARD_UPDATE, address="w1", case_id=3, chat_owner=7)
    assert edit.key == "card:3"


def test_a_hooks_updates_of_one_case_share_a_queue_and_its_other_cases_do_not() -> None:
    def update(rid: int, case_id: int) -> Row:
        return row(id=rid, kind="status_hook", platform=deliveries.WEBHOOK, address="4",
                   case_id=case_id)

    assert update(1, 3).key == update(2, 3).key == "hook:4:3"
    assert update(3, 5).key != update(1, 3).key
