"""A resident nobody can reach: the answer is recorded, the holder's card says so, and the
holder is not told the answer was passed on."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.cases.unreachable import mark_unreachable, on_unreachable
from core.clock import FakeClock
from core.db import session_scope
from core.settings import Settings
from tests.integration.test_flows import city, link, outbox_for, send, settings  # noqa: F401
from tests.support.demo_city import LIN1, holder_of


def test_a_blocked_resident_is_shown_on_the_holders_card(
        city: Engine, clock: FakeClock, settings: Settings) -> None:  # noqa: F811
    resident = holder_of(city, "resident", LIN1)
    leader = holder_of(city, "neighbor_leader", LIN1)
    link(city, resident.person_id, "5001")
    link(city, leader.person_id, "9001")
    send(city, clock, settings, sender="5001", text="楼下的水管漏水")
    [card] = [r for r in outbox_for(city, leader.person_id) if r["kind"] == "new_case"]
    assert "无法通过聊天联系" not in card["text"]

    # The resident blocked the bot: the sender flags them (what a 403 does).
    with session_scope(city) as s:
        pid = mark_unreachable(s, platform="telegram", external_id="5001")
        assert pid == resident.person_id
        on_unreachable(s, person_id=pid, clock=clock, settings=settings)
    told = [r for r in outbox_for(city, leader.person_id) if r["kind"] == "resident_unreachable"]
    assert len(told) == 1 and "电话联系居民" in told[0]["text"]
    edits = [r for r in outbox_for(city, leader.person_id) if r["kind"] == "card_update"]
    assert edits and "居民目前无法通过聊天联系" in edits[-1]["text"]
    assert {a["action"] for a in edits[-1]["actions"]} >= {"accept", "reply", "resolve"}

    out = send(city, clock, settings, sender="9001", text="明天来修",
               reply_to_message_id="77", reply_to_text=card["text"])
    said = " ".join(r["text"] for r in out)
    assert "已把答复转给居民" not in said and "无法通过聊天联系" in said
    with city.connect() as conn:  # the answer is on the case's record (and the dashboard)
        notes = conn.execute(sa.text("SELECT note FROM case_event WHERE kind = 'replied'"
                                     " AND case_id = :c"), {"c": card["case_id"]}).scalars()
        assert list(notes) == ["明天来修"]
