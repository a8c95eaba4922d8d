"""Flood control: a resident sending 100 messages within a minute is slowed down politely —
a bounded number of answers and one notice — and nothing they said is lost."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.flood import NOTICE
from bot.flows.types import Inbound
from core.clock import FakeClock
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo

_ids = itertools.count(1)


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', '5100', false)"),
                     {"p": resident.person_id})
    return engine


def say(engine: Engine, clock: FakeClock, settings: Settings, text: str,
        sender: str = "5100") -> None:
    uid = f"f{next(_ids)}"
    inbound = Inbound(platform="telegram", update_id=uid, chat_id=sender, sender_id=sender,
                      received_at=clock.now(), text=text)
    assert process(engine, inbound=inbound, payload={"update_id": uid}, clock=clock,
                   settings=settings)


def rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def test_a_hundred_messages_in_a_minute_lose_nothing_and_get_one_notice(
        city: Engine, clock: FakeClock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, media_dir=str(tmp_path))  # type: ignore[call-arg]
    assert settings.flood_per_minute == 20
    texts = [f"第{n}条：楼道灯又灭了" for n in range(100)]
    for text in texts:
        say(city, clock, settings, text)
        clock.advance(timedelta(milliseconds=500))  # 100 messages in 50 seconds
    # Every word is on the one case: the first message opened it, the rest were added.
    cases = rows(city, "SELECT id, text FROM cases")
    assert len(cases) == 1 and cases[0][1] == texts[0]
    notes = [r[0] for r in rows(city, "SELECT note FROM case_event WHERE case_id = :c AND"
                                      " kind = 'added' ORDER BY id", c=cases[0][0])]
    assert notes == texts[1:]
    # Answers to the resident are bounded: one per message up to the limit, then one notice.
    to_resident = [r[0] for r in rows(city, "SELECT text FROM outbox WHERE address = '5100'"
                                            " ORDER BY id")]
    assert sum(NOTICE["zh"] in t for t in to_resident) == 1
    assert len(to_resident) <= 20 + 1 + 1  # + the category question after filing
    assert not any("繁忙" in t for t in to_resident)  # nothing failed
    # The 邻长 is told of the first additions and of the flood once, not of all 100.
    leader = holder_of(city, "neighbor_leader", LIN1)
    to_leader = rows(city, "SELECT text FROM outbox WHERE person_id = :p", p=leader.person_id)
    assert len(to_leader) <= 22

    # A minute later the resident is answered as usual again.
    clock.advance(timedelta(minutes=1))
    before = len(to_resident)
    say(city, clock, settings, "灯修好了吗？")
    after = [r[0] for r in rows(city, "SELECT text FROM outbox WHERE address = '5100'"
                                      " ORDER BY id")]
    assert len(after) == before + 1 and "已补充到工单" in after[-1]


def test_the_limit_is_a_setting_and_counts_per_person(city: Engine, clock: FakeClock,
                                                      tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, media_dir=str(tmp_path),  # type: ignore[call-arg]
                        flood_per_minute=3)
    for n in range(6):
        say(city, clock, settings, f"水管漏水{n}")
    # A stranger writing at the same time is not slowed down by the resident's flood.
    say(city, clock, settings, "你好", sender="7777")
    to_resident = [r[0] for r in rows(city, "SELECT text FROM outbox WHERE address = '5100'")]
    assert sum(NOTICE["zh"] in t for t in to_resident) == 1
    assert len(rows(city, "SELECT id FROM outbox WHERE address = '7777'")) == 1
    # An emergency is never slowed down: the 119/110/120 advice goes out.
    say(city, clock, settings, "楼下着火了")
    last = rows(city, "SELECT text FROM outbox WHERE address = '5100' ORDER BY id")
    assert any("119" in str(r[0]) for r in last[-3:])
