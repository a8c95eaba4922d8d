"""An account bound by a typed number (the old WeChat fallback: proof `legacy_phone`, or a
resident's `resident_confirmed`) never carries a leader's messages: case cards, addresses and
digests go only to accounts bound by a strong proof. A resident's own messages still reach it."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.cases.unreachable import reachable_anywhere
from core.clock import FakeClock
from core.deliveries import claim_for_platform, unreachable_rows
from core.outbox import Draft, enqueue_many
from tests.support.demo_city import LIN1, TOWN, holder_of, load_demo


def _bind(engine: Engine, person_id: int, external_id: str, proof: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO chat_identity (person_id, platform, external_id, unreachable, proof)"
            " VALUES (:p, 'wechat', :e, false, :proof)"),
            {"p": person_id, "e": external_id, "proof": proof})


def _message(engine: Engine, clock: FakeClock, person_id: int, key: str) -> None:
    with Session(engine) as s, s.begin():
        enqueue_many(s, drafts=[Draft(text="工单#1「幸福路12号3单元502门口」", kind="new_case",
                                      dedupe_key=key, person_id=person_id)], now=clock.now())


def _claimed(engine: Engine, clock: FakeClock) -> set[int]:
    with Session(engine) as s, s.begin():
        rows = claim_for_platform(s, platform="wechat", now=clock.now() + timedelta(seconds=1))
        return {r.person_id for r in rows if r.person_id is not None}


def test_a_typed_number_account_never_receives_a_leaders_messages(
        engine: Engine, clock: FakeClock) -> None:
    load_demo(engine)
    admin = holder_of(engine, "admin", TOWN)  # a town admin, once taken over by a typed number
    resident = holder_of(engine, "resident", LIN1)
    _bind(engine, admin.person_id, "o-intruder", "legacy_phone")
    _bind(engine, resident.person_id, "o-resident", "resident_confirmed")
    _message(engine, clock, admin.person_id, "t:admin")
    _message(engine, clock, resident.person_id, "t:resident")

    assert _claimed(engine, clock) == {resident.person_id}
    with Session(engine) as s:
        assert not reachable_anywhere(s, person_id=admin.person_id, platforms={"wechat"})
        assert reachable_anywhere(s, person_id=resident.person_id, platforms={"wechat"})
        # So the admin's row is settled as unreachable (the tier above hears), not sent.
        waiting = unreachable_rows(s, platforms={"wechat"}, now=clock.now() + timedelta(1))
        assert list(waiting) == [admin.person_id]


def test_a_person_invite_makes_the_account_carry_the_leaders_messages_again(
        engine: Engine, clock: FakeClock) -> None:
    load_demo(engine)
    admin = holder_of(engine, "admin", TOWN)
    _bind(engine, admin.person_id, "o-admin", "legacy_phone")
    with engine.begin() as conn:  # what redeeming the admin's person invite records
        conn.execute(sa.text("UPDATE chat_identity SET proof = 'person_invite'"
                             " WHERE external_id = 'o-admin'"))
    _message(engine, clock, admin.person_id, "t:admin")
    assert _claimed(engine, clock) == {admin.person_id}
