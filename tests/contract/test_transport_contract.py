"""The transport contract: the same tests against every platform's transport and fake (see
harness.py). What each platform does differently (splitting, menus, cards, windows) is its
own business; what a row means and how it is settled is the same everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import deliveries
from core.db import session_scope
from core.hierarchy.model import ChatIdentity
from core.outbox import Action, Draft, enqueue_many
from tests.casehelpers import open_case, outbox
from tests.cityfactory import City, build_city
from tests.contract.harness import PLATFORMS, Harness, harness
from tests.fakes.timer import VirtualTime


@pytest.fixture(params=PLATFORMS)
def h(request: pytest.FixtureRequest, engine: Engine, tmp_path: Path) -> Iterator[Harness]:
    with harness(request.param, engine, VirtualTime(), tmp_path) as made:
        yield made


def people_only(h: Harness) -> None:
    if not getattr(h, "people", True):
        pytest.skip("a status webhook carries a hook's raw rows, never a person's chats, "
                    "buttons or cards")


@pytest.fixture
def city(engine: Engine) -> City:
    return build_city(engine)


def clock_of(h: Harness) -> VirtualTime:
    vt = h.vt  # type: ignore[attr-defined]
    assert isinstance(vt, VirtualTime)
    return vt


def link(engine: Engine, person_id: int, platform: str, chat: str) -> None:
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=person_id, platform=platform, external_id=chat))


def put(engine: Engine, h: Harness, *drafts: Draft) -> None:
    with session_scope(engine) as s:
        enqueue_many(s, drafts=list(drafts), now=clock_of(h).now())


def test_a_text_reaches_each_of_a_persons_chats_once_and_the_row_is_sent(
        h: Harness, engine: Engine, city: City) -> None:
    people_only(h)
    a, b = h.chat(1), h.chat(2)
    link(engine, city["resident1"], h.platform, a)
    link(engine, city["resident1"], h.platform, b)
    put(engine, h, Draft(text="您的问题已转交邻长。", kind="reply", dedupe_key="t1",
                         person_id=city["resident1"]))
    h.drain()
    h.drain()  # a second pass finds nothing to send again
    assert h.texts_to(a) == ["您的问题已转交邻长。"] and h.texts_to(b) == ["您的问题已转交邻长。"]
    [row] = outbox(engine, dedupe_key="t1")
    assert (row.status, row.attempts) == ("sent", 1)


def test_buttons_arrive_with_their_labels(h: Harness, engine: Engine, city: City) -> None:
    people_only(h)
    chat = h.chat(1)
    link(engine, city["leader1"], h.platform, chat)
    put(engine, h, Draft(text="【新工单】楼道灯坏了", kind="new_case", dedupe_key="c1",
                         person_id=city["leader1"],
                         actions=(Action("accept", "受理", 1, 1),
                                  Action("reply", "答复居民", 1, 1))))
    h.drain()
    assert any("楼道灯坏了" in t for t in h.texts_to(chat))
    assert {"受理", "答复居民"} <= set(h.labels_to(chat))


def test_a_row_for_someone_not_on_this_platform_is_left_for_another(
        h: Harness, engine: Engine, city: City) -> None:
    other = "telegram" if h.platform != "telegram" else "wecom"
    link(engine, city["resident2"], other, "elsewhere-1")
    put(engine, h, Draft(text="别处的人", kind="reply", dedupe_key="x1",
                         person_id=city["resident2"]))
    h.drain()
    [row] = outbox(engine, dedupe_key="x1")
    assert (row.status, row.attempts, row.claimed_until) == ("pending", 0, None)


def test_a_retried_row_skips_the_chats_it_already_reached(
        h: Harness, engine: Engine, city: City) -> None:
    people_only(h)
    a, b = h.chat(1), h.chat(2)
    link(engine, city["resident1"], h.platform, a)
    link(engine, city["resident1"], h.platform, b)
    put(engine, h, Draft(text="重试的消息", kind="reply", dedupe_key="r1",
                         person_id=city["resident1"]))
    [row] = outbox(engine, dedupe_key="r1")
    with session_scope(engine) as s:  # an earlier attempt reached the first chat, then died
        deliveries.record_delivery(s, outbox_id=row.id, platform=h.platform, chat_id=a,
                                   message_id="1", kind="reply", now=clock_of(h).now())
    h.drain()
    assert h.texts_to(a) == [] and h.texts_to(b) == ["重试的消息"]
    [row] = outbox(engine, dedupe_key="r1")
    assert row.status == "sent"


def test_a_chat_that_is_gone_flags_its_identity_and_the_next_tier_hears(
        h: Harness, engine: Engine, city: City) -> None:
    people_only(h)
    if h.platform == "web":
        pytest.skip("a web chat cannot block the bot")
    holder, boss = h.chat(1), h.chat(2)
    link(engine, city["leader1"], h.platform, holder)
    link(engine, city["group_leader"], h.platform, boss)
    h.leave(holder)
    case_id = open_case(engine, clock_of(h), city)
    h.drain()
    with engine.connect() as conn:
        flag = conn.execute(sa.text("SELECT unreachable FROM chat_identity WHERE external_id"
                                    " = :c"), {"c": holder}).scalar_one()
    assert flag
    assert any(f"工单#{case_id}" in t and "无法通过聊天联系" in t for t in h.texts_to(boss))
    [card] = outbox(engine, kind="new_case")
    assert card.status == "dead" and (card.last_error or "").startswith("unreachable")


def test_a_card_update_refreshes_every_copy_the_platform_lets_us_change(
        h: Harness, engine: Engine, city: City) -> None:
    people_only(h)
    chat = h.chat(1)
    link(engine, city["leader1"], h.platform, chat)
    case_id = open_case(engine, clock_of(h), city)
    h.drain()
    before = h.updated_copies()
    put(engine, h, Draft(text="工单已受理：高勇", kind="card_update", dedupe_key="u1",
                         platform=h.platform, address="*", case_id=case_id))
    h.drain()
    [row] = outbox(engine, with_card_edits=True, dedupe_key="u1")
    assert row.status == "sent"
    if h.platform == "wechat":
        assert h.updated_copies() == before  # the OA has no card to edit: nothing is sent
    else:
        assert h.updated_copies() > before  # the holder's card (and a bound group's mirror)
        assert any("已受理" in t for t in h.texts_to(chat)) or h.platform == "wecom"
