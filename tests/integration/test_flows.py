"""The conversations, platform-neutral: Inbound in, outbox rows out, on a real database."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound, Media, Press
from core.clock import FakeClock
from core.settings import Settings
from tests.support.demo_city import LIN1, VACANT_LIN, holder_of, load_demo

_ids = itertools.count(1)


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]


def _row(r: Any) -> dict[str, Any]:
    """An outbox row with its JSON columns decoded (raw SQL hands them back as text)."""
    row = dict(r)
    for key in ("actions", "options"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def send(engine: Engine, clock: FakeClock, settings: Settings, *, sender: str,
         chat: str | None = None, **fields: Any) -> list[dict[str, Any]]:
    """Deliver one inbound message; return the outbox rows it produced."""
    uid = str(next(_ids))
    inbound = Inbound(platform="telegram", update_id=uid, chat_id=chat or sender,
                      sender_id=sender, received_at=clock.now(), **fields)
    assert process(engine, inbound=inbound, payload={"update_id": uid}, clock=clock,
                   settings=settings)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT * FROM outbox WHERE dedupe_key LIKE :k ORDER BY id"
        ), {"k": f"in:telegram:{uid}:%"}).mappings().all()
    return [_row(r) for r in rows]


def outbox_for(engine: Engine, person_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(sa.text(
            "SELECT * FROM outbox WHERE person_id = :p ORDER BY id"), {"p": person_id}
        ).mappings()]


def link(engine: Engine, person_id: int, tg: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": person_id, "t": tg})


def resident_of(engine: Engine, code: str) -> Any:
    return holder_of(engine, "resident", code)


def test_the_whole_story_from_stranger_to_rating(city: Engine, clock: FakeClock,
                                                 settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    leader = holder_of(city, "neighbor_leader", LIN1)
    link(city, leader.person_id, "9001")

    # A stranger writes first: kept, and told how to join.
    out = send(city, clock, settings, sender="5001", text="楼道灯坏了三天了")
    assert any("分享手机号" in r["text"] or "二维码" in r["text"] for r in out)
    assert out[0]["options"]["request_contact"] is True

    # Sharing the phone joins them, and the kept report becomes a case for their 邻长.
    out = send(city, clock, settings, sender="5001", contact_phone=resident.phone)
    assert any("欢迎" in r["text"] for r in out)
    cards = outbox_for(city, leader.person_id)
    assert len(cards) == 1 and "楼道灯坏了三天了" in cards[0]["text"]
    case_id = cards[0]["case_id"]
    actions = {a["action"]: a for a in cards[0]["actions"]}
    assert {"accept", "reply", "escalate"} <= set(actions)

    # The 邻长 accepts by button, then answers by replying to the card.
    out = send(city, clock, settings, sender="9001",
               press=Press("accept", case_id, actions["accept"]["version"], query_id="q1"))
    assert any(r["kind"] == "press_ack" for r in out)
    # The notifier keeps the 邻长's card current (its own row, keyed by the accept event).
    assert any(r["kind"] == "card_update" for r in outbox_for(city, leader.person_id))
    out = send(city, clock, settings, sender="9001", text="明天上午就来换灯泡",
               reply_to_message_id="77", reply_to_text=cards[0]["text"])
    to_resident = outbox_for(city, resident.person_id)
    assert any("明天上午就来换灯泡" in r["text"] for r in to_resident)

    # A stale press (the version moved on) is refused with what happened, applied never.
    out = send(city, clock, settings, sender="9001",
               press=Press("accept", case_id, actions["accept"]["version"], query_id="q2"))
    assert out and all("受理" in r["text"] or "已" in r["text"] for r in out)

    # Resolve, then the resident confirms with 5 stars.
    with city.connect() as conn:
        version = conn.execute(sa.text("SELECT version FROM cases WHERE id = :c"),
                               {"c": case_id}).scalar_one()
    send(city, clock, settings, sender="9001", press=Press("resolve", case_id, version))
    ask = [r for r in outbox_for(city, resident.person_id) if r["kind"] == "resolved"]
    assert ask, "the resident is asked whether it is fixed"
    star5 = next(a for a in ask[-1]["actions"] if a.get("rating") == 5)
    out = send(city, clock, settings, sender="5001",
               press=Press("confirm", case_id, star5["version"], arg="5"))
    with city.connect() as conn:
        state, rating = conn.execute(sa.text("SELECT state, rating FROM cases WHERE id = :c"),
                                     {"c": case_id}).one()
    assert (state, rating) == ("closed", 5)


def test_messages_within_ten_minutes_add_to_the_case(city: Engine, clock: FakeClock,
                                                     settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    link(city, resident.person_id, "5100")
    out = send(city, clock, settings, sender="5100", text="垃圾桶满了没人清")
    with city.connect() as conn:
        first = conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one()
    assert not any("类别" in r["text"] for r in out), "垃圾 is obviously 环境保护"
    clock.advance(timedelta(minutes=3))
    out = send(city, clock, settings, sender="5100",
               media=(Media("photo", file_ref="AgAD-photo", file_unique_id="u1"),))
    assert any(f"#{first}" in r["text"] for r in out)
    new_case = next(a for r in out for a in r["actions"] if a["action"] == "new_case")
    clock.advance(timedelta(minutes=11))
    send(city, clock, settings, sender="5100", text="另外路灯也不亮")
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM case_attachment WHERE case_id = :c"),
                            {"c": first}).scalar_one() == 1
    # "This is a new problem" splits the photo off into its own case.
    send(city, clock, settings, sender="5100",
         press=Press("new_case", first, new_case["version"]))


def test_unclear_reports_ask_category_after_filing(city: Engine, clock: FakeClock,
                                                   settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    link(city, resident.person_id, "5200")
    out = send(city, clock, settings, sender="5200", text="想问一下这个事情怎么弄")
    ask = next(r for r in out if "类别" in r["text"])
    assert len(ask["actions"]) == 11
    with city.connect() as conn:
        case_id = conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one()
    pick = next(a for a in ask["actions"] if a["label"] == "公共设施")
    send(city, clock, settings, sender="5200",
         press=Press("category", case_id, pick["version"], arg=pick["arg"]))
    with city.connect() as conn:
        name = conn.execute(sa.text(
            "SELECT c.name FROM cases k JOIN category c ON c.id = k.category_id WHERE k.id = :i"
        ), {"i": case_id}).scalar_one()
    assert name == "公共设施"


def test_emergency_words_tell_the_resident_to_call(city: Engine, clock: FakeClock,
                                                   settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    link(city, resident.person_id, "5300")
    out = send(city, clock, settings, sender="5300", text="楼下着火了，冒烟很大")
    assert any("119" in r["text"] and "120" in r["text"] for r in out)
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one() == 1


def test_a_vacant_post_routes_to_the_group_leader(city: Engine, clock: FakeClock,
                                                  settings: Settings) -> None:
    resident = resident_of(city, VACANT_LIN)
    link(city, resident.person_id, "5400")
    send(city, clock, settings, sender="5400", text="下水道堵塞")
    group_leader = holder_of(city, "group_leader", VACANT_LIN[:-3])
    assert any(r["kind"] == "new_case" for r in outbox_for(city, group_leader.person_id))


def test_escalate_asks_for_a_reason_first(city: Engine, clock: FakeClock,
                                          settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    leader = holder_of(city, "neighbor_leader", LIN1)
    link(city, resident.person_id, "5500")
    link(city, leader.person_id, "9500")
    send(city, clock, settings, sender="5500", text="小区门口路面坑洼")
    card = outbox_for(city, leader.person_id)[-1]
    esc = next(a for a in card["actions"] if a["action"] == "escalate")
    out = send(city, clock, settings, sender="9500",
               press=Press("escalate", card["case_id"], esc["version"], query_id="q"))
    assert any("原因" in r["text"] for r in out)
    send(city, clock, settings, sender="9500", text="需要市政维修，超出能力")
    group_leader = holder_of(city, "group_leader", LIN1[:-3])
    got = outbox_for(city, group_leader.person_id)
    assert got and "需要市政维修" in "".join(r["text"] for r in got)


def test_strangers_and_wrong_roles_are_refused_politely(city: Engine, clock: FakeClock,
                                                         settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    link(city, resident.person_id, "5600")
    out = send(city, clock, settings, sender="5600", command="import")
    assert "管理员" in out[0]["text"]
    out = send(city, clock, settings, sender="5600", command="stats")
    assert "管理员" in out[0]["text"]
    out = send(city, clock, settings, sender="5600", command="frobnicate")
    assert "/help" in out[0]["text"]
    send(city, clock, settings, sender="5600", text="门口有积水")
    with city.connect() as conn:
        case_id = conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one()
    # A resident pressing a leader's button is refused and the attempt is recorded.
    out = send(city, clock, settings, sender="5600", press=Press("accept", case_id, 1))
    assert any("抱歉" in r["text"] for r in out)
    with city.connect() as conn:
        refused = conn.execute(sa.text(
            "SELECT count(*) FROM case_event WHERE case_id = :c AND kind = 'refused'"
        ), {"c": case_id}).scalar_one()
    assert refused == 1


def test_a_duplicate_update_is_handled_once(city: Engine, clock: FakeClock,
                                            settings: Settings) -> None:
    resident = resident_of(city, LIN1)
    link(city, resident.person_id, "5700")
    inbound = Inbound(platform="telegram", update_id="dup-1", chat_id="5700", sender_id="5700",
                      received_at=clock.now(), text="电梯坏了")
    assert process(city, inbound=inbound, payload={}, clock=clock, settings=settings)
    assert not process(city, inbound=inbound, payload={}, clock=clock, settings=settings)
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one() == 1


def test_a_bound_group_chat_mirrors_cards_and_takes_replies(city: Engine, clock: FakeClock,
                                                            settings: Settings) -> None:
    from tests.support.demo_city import TOWN

    admin = holder_of(city, "admin", TOWN)
    group_leader = holder_of(city, "group_leader", LIN1[:-3])
    resident = resident_of(city, LIN1)
    link(city, admin.person_id, "9700")
    link(city, group_leader.person_id, "9701")
    link(city, resident.person_id, "5701")

    # Only an admin of the node binds; a resident is refused.
    out = send(city, clock, settings, sender="5701", chat="-100500", chat_is_private=False,
               command="bind", args=(LIN1[:-3],), message_id="1")
    assert "管理员" in out[0]["text"] or "抱歉" in out[0]["text"]
    out = send(city, clock, settings, sender="9700", chat="-100500", chat_is_private=False,
               command="bind", args=(LIN1[:-3],), chat_title="组长邻长群", message_id="2")
    assert "绑定" in out[0]["text"]

    send(city, clock, settings, sender="5701", text="楼顶水箱漏水")
    with city.connect() as conn:
        mirror = conn.execute(sa.text(
            "SELECT text, case_id FROM outbox WHERE chat_binding_id IS NOT NULL")).one()
    assert "楼顶水箱漏水" in mirror[0]

    # People talking in the group are left alone; a reply to the card by the 组长 answers.
    assert send(city, clock, settings, sender="9701", chat="-100500", chat_is_private=False,
                text="大家好", message_id="3") == []
    send(city, clock, settings, sender="9701", chat="-100500", chat_is_private=False,
         text="已联系物业明天修", reply_to_text=mirror[0], message_id="4")
    assert any("已联系物业明天修" in r["text"] for r in outbox_for(city, resident.person_id))

    # Someone outside the chain replying in the group is refused and changes nothing.
    other = holder_of(city, "resident", VACANT_LIN)
    link(city, other.person_id, "5702")
    before = outbox_for(city, resident.person_id)
    send(city, clock, settings, sender="5702", chat="-100500", chat_is_private=False,
         text="我也来答复", reply_to_text=mirror[0], message_id="5")
    assert outbox_for(city, resident.person_id) == before
