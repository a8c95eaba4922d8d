"""The platform-aware side of the outbox (claims, deferrals, delivery records) and what
happens when a holder cannot be reached; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import deliveries
from core.cases.unreachable import mark_unreachable, on_unreachable
from core.clock import FakeClock, as_utc
from core.db import session_scope
from core.hierarchy.model import ChatBinding, ChatIdentity
from core.outbox import Draft, enqueue
from tests.casehelpers import open_case, outbox, settings
from tests.cityfactory import build_city


def test_claims_take_only_what_telegram_can_deliver(engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=city["resident1"], platform="telegram", external_id="1"))
        s.add(ChatIdentity(person_id=city["resident2"], platform="wechat", external_id="o2"))
        s.add(ChatIdentity(person_id=city["resident3"], platform="telegram", external_id="3",
                           unreachable=True))
        wx = ChatBinding(platform="wechat", chat_id="wxg", node_id=city.nodes["g1"],
                         tier="group_neighbor")
        s.add(wx)
        s.flush()
        drafts = {
            "tg_person": Draft("a", "reply", "k1", person_id=city["resident1"]),
            "wx_person": Draft("b", "reply", "k2", person_id=city["resident2"]),
            "blocked": Draft("c", "reply", "k3", person_id=city["resident3"]),
            "tg_chat": Draft("d", "mirror", "k4", chat_binding_id=city.bindings["g1_chat"]),
            "wx_chat": Draft("e", "mirror", "k5", chat_binding_id=wx.id),
            "tg_raw": Draft("f", "reply", "k6", platform="telegram", address="77"),
            "wx_raw": Draft("g", "reply", "k7", platform="wechat", address="o7"),
        }
        for d in drafts.values():
            enqueue(s, draft=d, now=clock.now())
    with session_scope(engine) as s:
        got = deliveries.claim_for_platform(s, platform="telegram", now=clock.now(), limit=50)
        assert sorted(r.text for r in got) == ["a", "d", "f"]
        assert deliveries.pending_for_platform(s, platform="telegram") == 3
        assert deliveries.claim_for_platform(s, platform="telegram", now=clock.now()) == []
        ids = [r.id for r in got if r.id is not None]
        until = clock.now() + timedelta(seconds=30)
        deliveries.defer(s, message_ids=ids[:1], until=until, note="429")
        deliveries.release(s, message_ids=ids[1:])
    with session_scope(engine) as s:
        again = deliveries.claim_for_platform(s, platform="telegram", now=clock.now())
        assert len(again) == 2
        later = deliveries.claim_for_platform(s, platform="telegram", now=until)
        assert [r.id for r in later] == ids[:1] and later[0].attempts == 0
        assert as_utc(later[0].next_attempt_at) == until


def test_deliveries_answer_which_case_a_message_was_about(engine: Engine,
                                                          clock: FakeClock) -> None:
    city = build_city(engine)
    case_id = open_case(engine, clock, city)
    with session_scope(engine) as s:
        for part, card in ((0, False), (1, True)):
            deliveries.record_delivery(
                s, outbox_id=None, platform="telegram", chat_id="-1001", message_id=str(10 + part),
                kind="new_case", now=clock.now(), part=part, case_id=case_id, is_card=card)
    with Session(engine) as s:
        assert deliveries.message_case(s, "telegram", "-1001", "10") == case_id
        assert deliveries.message_case(s, "wechat", "-1001", "10") is None
        [card] = deliveries.card_messages(s, case_id)
        assert (card.chat_id, card.message_id) == ("-1001", "11")
    with session_scope(engine) as s:
        deliveries.forget_card(s, delivery_id=card.delivery_id)
    with Session(engine) as s:
        assert deliveries.card_messages(s, case_id) == []


def test_an_unreachable_holder_is_reported_to_the_next_tier_once(engine: Engine,
                                                                  clock: FakeClock) -> None:
    city = build_city(engine)
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=city["leader1"], platform="telegram", external_id="11"))
        s.add(ChatIdentity(person_id=city["leader1"], platform="wechat", external_id="o11"))
    first = open_case(engine, clock, city, resident="resident1")
    second = open_case(engine, clock, city, resident="resident2", text="路灯不亮好几天了")
    st = settings()
    with session_scope(engine) as s:
        assert mark_unreachable(s, platform="telegram", external_id="11") == city["leader1"]
        assert mark_unreachable(s, platform="telegram", external_id="999") is None
        on_unreachable(s, person_id=city["leader1"], clock=clock, settings=st)
    assert outbox(engine, kind="holder_unreachable") == []  # WeChat still reaches them
    with session_scope(engine) as s:
        mark_unreachable(s, platform="wechat", external_id="o11")
        on_unreachable(s, person_id=city["leader1"], clock=clock, settings=st)
        on_unreachable(s, person_id=city["leader1"], clock=clock, settings=st)
    [digest] = outbox(engine, person_id=city["group_leader"], kind="digest")
    assert f"工单#{first}" in digest.text and f"工单#{second}" in digest.text
    assert "无法通过聊天联系" in digest.text


def test_an_unreachable_resident_is_flagged_and_the_holder_told_once(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=city["resident1"], platform="telegram", external_id="21"))
    open_case(engine, clock, city, resident="resident1")
    before = len(outbox(engine))
    with session_scope(engine) as s:
        pid = mark_unreachable(s, platform="telegram", external_id="21")
        assert pid == city["resident1"]
        on_unreachable(s, person_id=pid, clock=clock, settings=settings())
    # The holder hears of it (and their card says so); nobody else, and a second 403 adds nothing.
    new = outbox(engine)[before:]
    assert [(m.kind, m.person_id) for m in new] == [("resident_unreachable", city["leader1"])]
    with session_scope(engine) as s:
        on_unreachable(s, person_id=pid, clock=clock, settings=settings())
    assert len(outbox(engine)) == before + 1
