"""Phones and addresses in group chats: the holder's private card shows them, a tier group
chat's copy masks them (core/privacy.py), through the public paths on both engines."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.cases import actions
from core.clock import FakeClock
from tests.casehelpers import do, get, open_case, outbox
from tests.cityfactory import build_city

ADDRESS = "幸福路12号3单元502"
REPORT = "下水道堵了，电话138 1234 5678，座机0558-1234567"
# 34 characters, then a number the 40-character snippet of the card would cut in two.
LONG = "小区东门外的路灯已经坏了一个多星期，晚上很黑，老人出门不安全，身份证110101198001013812"


def _set_address(engine: Engine, person_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE post SET address = :a WHERE person_id = :p"
                             " AND role = 'resident'"), {"a": ADDRESS, "p": person_id})


def _no_numbers(text: str) -> None:
    """Nothing in a group chat's text that reads as a whole phone, ID or house number."""
    flat = re.sub(r"[ \-]", "", text)
    assert not re.search(r"1[3-9]\d{9}", flat), text
    assert "1234567" not in flat and "19800101" not in flat, text
    assert "12号" not in text and "3单元" not in text and "502" not in text, text


def test_a_case_card_is_whole_in_private_and_masked_in_group_chats(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    _set_address(engine, city["resident1"])
    case_id = open_case(engine, clock, city, text=REPORT)

    private = outbox(engine, person_id=city["leader1"], kind="new_case")
    assert len(private) == 1
    assert ADDRESS in private[0].text and "138 1234 5678" in private[0].text

    group = outbox(engine, chat_binding_id=city.bindings["g1_chat"])
    assert [m.kind for m in group] == ["mirror"]
    assert "住址：幸福路**号***" in group[0].text
    assert "138****5678" in group[0].text and "0558-***4567" in group[0].text
    assert f"工单#{case_id}" in group[0].text  # still answerable by replying to it
    _no_numbers(group[0].text)

    # Escalated by hand with a reason that carries a number: the same split one tier up.
    do(engine, actions.escalate, clock=clock, case_id=case_id, person_id=city["leader1"],
       version=get(engine, case_id).version, reason="住户电话13900000009打不通，请组长协调")
    up = [m for m in outbox(engine, person_id=city["group_leader"]) if m.case_id == case_id]
    assert ADDRESS in up[-1].text and "13900000009" in up[-1].text
    mirrored = outbox(engine, chat_binding_id=city.bindings["a1_chat"])
    assert [m.kind for m in mirrored] == ["mirror"]
    assert "幸福路**号***" in mirrored[0].text and "139****0009" in mirrored[0].text
    _no_numbers(mirrored[0].text)


def test_a_number_at_the_end_of_the_cards_snippet_is_not_cut_in_half(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    open_case(engine, clock, city, text=LONG)
    (group,) = outbox(engine, chat_binding_id=city.bindings["g1_chat"])
    assert "不安全，身份证…" in group.text
    _no_numbers(group.text)


def test_a_resident_without_an_address_gets_no_address_line_in_the_group(
        engine: Engine, clock: FakeClock) -> None:
    city = build_city(engine)
    open_case(engine, clock, city, text="路灯坏了")
    group = outbox(engine, chat_binding_id=city.bindings["g1_chat"])
    assert "住址" not in group[0].text and "路灯坏了" in group[0].text
