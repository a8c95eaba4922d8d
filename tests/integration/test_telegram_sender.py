"""The outbox sender against the fake Bot API over real HTTP, on virtual time shared by the
database clock, the rate limiter and the fake's flood windows (nothing sleeps for real)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatcher.transport import Stats as SenderStats
from bot.handlers.telegram.api import TelegramApi
from bot.handlers.telegram.transport import StoreMedia, telegram_dispatcher
from core import deliveries
from core.db import session_scope
from core.hierarchy.model import ChatIdentity
from core.media.store import MediaStore
from core.outbox import Action, Draft, OutboxMessage, enqueue
from core.settings import Settings
from tests.casehelpers import open_case, outbox
from tests.cityfactory import City, build_city
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.timer import VirtualTime
from tests.support.poll import apoll

TG = "telegram"


def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def tg(vt: VirtualTime) -> Iterator[FakeTelegram]:
    with FakeTelegram(now=vt.monotonic) as fake:
        yield fake
        assert fake.errors == []


@pytest.fixture
def city(sqlite_engine: Engine) -> City:
    return build_city(sqlite_engine)


def link(engine: Engine, person_id: int, chat: int, platform: str = TG) -> None:
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=person_id, platform=platform, external_id=str(chat)))


def put(engine: Engine, vt: VirtualTime, text: str, key: str, **kw: Any) -> int:
    with session_scope(engine) as s:
        assert enqueue(s, draft=Draft(text=text, kind=kw.pop("kind", "reply"), dedupe_key=key,
                                      **kw), now=vt.now())
        return int(s.execute(sa.select(OutboxMessage.id).where(  # type: ignore[call-overload]
            OutboxMessage.dedupe_key == key)).scalar_one())


def row(engine: Engine, row_id: int) -> OutboxMessage:
    with Session(engine) as s:
        r = s.get(OutboxMessage, row_id)
        assert r is not None
        s.expunge(r)
        return r


def drain(engine: Engine, tg: FakeTelegram, vt: VirtualTime, st: Settings,
          max_seconds: float = 3600) -> SenderStats:
    async def go() -> SenderStats:
        async with TelegramApi(token=tg.token, base=tg.base_url, timer=vt) as api:
            vt.hold_while(lambda: api.limiter.in_flight > 0)
            sender = telegram_dispatcher(engine=engine, api=api, settings=st, clock=vt,
                                    media=StoreMedia(MediaStore.from_settings(st)), idle=0.5)
            return await sender.drain(max_seconds=max_seconds)

    return asyncio.run(go())


def count_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


# ---- delivery ------------------------------------------------------------------------------


def test_a_new_case_reaches_holder_resident_and_mirror_chat(
        engine: Engine, vt: VirtualTime, tg: FakeTelegram, tmp_path: Path) -> None:
    """On SQLite and on PostgreSQL (SKIP LOCKED claims)."""
    city = build_city(engine)
    link(engine, city["leader1"], 1001)
    link(engine, city["resident1"], 2001)
    case_id = open_case(engine, vt, city, text="楼道里堆满杂物，有消防隐患")
    stats = drain(engine, tg, vt, settings(tmp_path))

    [card] = tg.sent_to(1001)
    assert card.original_text is not None and card.original_text.startswith("【新工单】")
    assert card.original_markup is not None
    data = [b["callback_data"] for r in card.original_markup["inline_keyboard"] for b in r]
    assert data == [f"ac:{case_id}:1", f"rp:{case_id}:1", f"rs:{case_id}:1", f"es:{case_id}:1"]
    [ack] = tg.sent_to(2001)
    assert ack.original_text is not None and "已收到" in ack.original_text
    group_chat = f"-100{city.nodes['g1']}"
    assert len(tg.sent_to(group_chat)) == 1
    assert all(r.status == "sent" and r.attempts == 1 for r in outbox(engine))
    assert stats.rows_sent == 3 and tg.too_many == []
    with Session(engine) as s:
        assert deliveries.message_case(s, TG, "1001", str(card.message_id)) == case_id
        assert deliveries.message_case(s, TG, "1001", "999") is None
        cards = deliveries.card_messages(s, case_id)  # the holder's card and the group's
        assert {c.chat_id for c in cards} == {"1001", group_chat}


def test_raw_chat_with_contact_keyboard_and_reply_to(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    first = put(sqlite_engine, vt, "欢迎", "a", platform=TG, address="777")
    put(sqlite_engine, vt, "请分享手机号以加入", "b", platform=TG, address="777",
        options={"request_contact": True, "reply_to_message_id": "1"})
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    a, b = tg.sent_to(777)
    assert a.original_text == "欢迎" and b.reply_to == a.message_id
    assert b.original_markup is not None
    assert b.original_markup["keyboard"][0][0]["request_contact"] is True
    assert b.at - a.at >= 1.0  # one chat, one message a second
    assert row(sqlite_engine, first).status == "sent"


def test_photo_with_long_caption_and_a_document_by_file_id(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    st = settings(tmp_path)
    ref = MediaStore.from_settings(st).put(b"\xff\xd8" + b"1" * 500, "jpg")
    link(sqlite_engine, city["leader1"], 1001)
    text = "\n".join(f"第{i}条：门口堆放杂物" for i in range(120))  # ~1800 characters
    put(sqlite_engine, vt, text, "photo", person_id=city["leader1"],
        actions=(Action("accept", "受理", 0, 0),), options={"photo": ref})
    put(sqlite_engine, vt, "导出的工作簿", "doc", person_id=city["leader1"],
        options={"document": "telegram:BQACAgIAAxk"})
    drain(sqlite_engine, tg, vt, st)
    photo, rest, doc = tg.sent_to(1001)
    assert photo.method == "sendphoto" and photo.media and photo.media["size"] == 502
    assert photo.original_text is not None and len(photo.original_text) <= 1024
    assert photo.original_markup is None and rest.original_markup is not None
    assert photo.original_text + "\n" + (rest.original_text or "") == text
    assert doc.method == "senddocument" and doc.media and doc.media["file_id"] == "BQACAgIAAxk"


def test_long_text_is_split_and_every_part_points_to_the_case(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    link(sqlite_engine, city["leader1"], 1001)
    case_id = open_case(sqlite_engine, vt, city)
    text = "\n".join(f"{i:04d} " + "历史记录" * 30 for i in range(100))  # ~12,500 characters
    rid = put(sqlite_engine, vt, text, "long", person_id=city["leader1"], case_id=case_id,
              actions=(Action("accept", "受理", case_id, 1),))
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    parts = [m for m in tg.sent_to(1001) if m.original_text and m.original_text[:4].isdigit()]
    assert len(parts) == 4
    assert all(len(m.original_text or "") <= 4096 for m in parts)
    assert "\n".join(m.original_text or "" for m in parts) == text
    assert [m.original_markup is not None for m in parts] == [False, False, False, True]
    with Session(sqlite_engine) as s:
        assert all(deliveries.message_case(s, TG, "1001", str(m.message_id)) == case_id
                   for m in parts)
        assert deliveries.parts_of(s, [rid]) == {rid: {("1001", i) for i in range(4)}}


# ---- failures ------------------------------------------------------------------------------


def test_a_429_storm_delays_but_loses_and_repeats_nothing(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    ids = [put(sqlite_engine, vt, f"通知{i}", f"n{i}", platform=TG, address=str(5000 + i % 40))
           for i in range(60)]
    tg.storm(20)
    start = vt.monotonic()
    stats = drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert len(tg.too_many) >= 1 and stats.too_many == len(tg.too_many)
    sent = Counter((m.chat_id, m.original_text) for m in tg.sent)
    assert sent == Counter({(5000 + i % 40, f"通知{i}"): 1 for i in range(60)})
    assert all(m.at >= start + 20 for m in tg.sent)
    rows = [row(sqlite_engine, i) for i in ids]
    assert {r.status for r in rows} == {"sent"}
    assert {r.attempts for r in rows} == {1}  # a 429 is not a failed attempt
    for chat in range(5000, 5020):  # two rows for these chats: still in order
        assert tg.texts_to(chat) == [f"通知{chat - 5000}", f"通知{chat - 5000 + 40}"]


def test_5xx_then_success_is_retried_with_backoff(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    rid = put(sqlite_engine, vt, "重要通知", "x", platform=TG, address="42")
    tg.fail_next("sendMessage", 2)
    start = vt.monotonic()
    stats = drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert tg.texts_to(42) == ["重要通知"]
    r = row(sqlite_engine, rid)
    assert (r.status, r.attempts, r.last_error) == ("sent", 3, None)
    assert stats.rows_retried == 2
    assert tg.sent[0].at - start >= 5 + 10  # the outbox backoff: 5 s, then 10 s


def test_a_dropped_connection_is_retried_and_delivered_once(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    rid = put(sqlite_engine, vt, "断线重发", "x", platform=TG, address="43")
    tg.drop_next("sendMessage", 1)
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert tg.texts_to(43) == ["断线重发"]
    assert row(sqlite_engine, rid).attempts == 2


def test_a_leader_who_blocked_the_bot_is_unreachable_and_the_next_tier_hears(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    link(sqlite_engine, city["leader1"], 1001)
    link(sqlite_engine, city["group_leader"], 3001)
    tg.block(1001)
    case_id = open_case(sqlite_engine, vt, city)
    stats = drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert tg.sent_to(1001) == [] and stats.unreachable == 1
    with Session(sqlite_engine) as s:
        flag = s.execute(sa.select(ChatIdentity.unreachable).where(  # type: ignore[call-overload]
            ChatIdentity.external_id == "1001")).scalar_one()
    assert flag is True
    [card] = outbox(sqlite_engine, kind="new_case")
    assert card.status == "dead" and card.attempts == 1
    assert card.last_error is not None and "blocked" in card.last_error
    [notice] = tg.sent_to(3001)
    assert notice.original_text is not None and f"工单#{case_id}" in notice.original_text
    assert "无法通过聊天联系" in notice.original_text
    # Nothing is retried: another drain finds nothing to do.
    before = tg.requests("sendMessage")
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert tg.requests("sendMessage") == before


def test_rows_claimed_together_go_no_more_to_a_chat_that_blocked_the_bot(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    """Where a batch goes is read with its claim; once a chat says it blocked the bot, the
    rows behind on the person's queue read theirs again and skip it."""
    link(sqlite_engine, city["resident2"], 7001)
    link(sqlite_engine, city["resident2"], 7002)
    tg.block(7001)
    for i in range(3):
        put(sqlite_engine, vt, f"通知{i}", f"k{i}", person_id=city["resident2"])
    stats = drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert tg.texts_to(7002) == ["通知0", "通知1", "通知2"]
    assert tg.requests("sendMessage") == 4  # the blocked chat was tried once, not three times
    assert stats.unreachable == 1 and stats.rows_sent == 3


def test_a_person_only_on_wechat_is_left_for_the_wechat_sender(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    link(sqlite_engine, city["resident2"], 9, platform="wechat")
    rid = put(sqlite_engine, vt, "微信用户", "w", person_id=city["resident2"])
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    r = row(sqlite_engine, rid)
    assert (r.status, r.attempts, r.claimed_until) == ("pending", 0, None)
    assert tg.sent == []


# ---- limits ----------------------------------------------------------------------------------


def test_a_burst_to_many_chats_goes_close_to_30_a_second_without_429(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    for i in range(300):
        put(sqlite_engine, vt, f"广播{i}", f"b{i}", platform=TG, address=str(10_000 + i))
    start = vt.monotonic()
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert tg.too_many == [] and len(tg.sent) == 300
    assert count_in_window([m.at for m in tg.sent], 1.0) <= 30
    assert max(m.at for m in tg.sent) - start < 300 / 30 * 1.1


def test_a_sender_holding_rows_does_not_claim_again_at_every_send(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    """Once a claim found fewer rows than it could take, the next looks after `idle` (0.5 s),
    not as each send ends: 300 messages at 30/s take 10 s, so about 20 claims, not 300 (each
    a write transaction, on SQLite the one writer lock the webhooks wait on)."""
    for i in range(300):
        put(sqlite_engine, vt, f"广播{i}", f"b{i}", platform=TG, address=str(10_000 + i))
    claims: list[str] = []

    def seen(_c, _cur, statement, _p, _ctx, _many):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "FROM outbox" in statement \
                and "outbox.claimed_until" in statement and "count(" not in statement:
            claims.append(statement)

    sa.event.listen(sqlite_engine, "before_cursor_execute", seen)
    try:
        drain(sqlite_engine, tg, vt, settings(tmp_path))
    finally:
        sa.event.remove(sqlite_engine, "before_cursor_execute", seen)
    assert len(tg.sent) == 300 and tg.too_many == []
    assert 3 <= len(claims) <= 40, len(claims)


def test_a_burst_into_one_group_and_one_chat_gets_no_429(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    group = f"-100{city.nodes['g1']}"
    for i in range(100):
        put(sqlite_engine, vt, f"广播{i}", f"b{i}", platform=TG, address=str(10_000 + i))
    for i in range(45):
        put(sqlite_engine, vt, f"群消息{i}", f"g{i}", chat_binding_id=city.bindings["g1_chat"])
    for i in range(6):
        put(sqlite_engine, vt, f"私聊{i}", f"p{i}", platform=TG, address="31337")
    start = vt.monotonic()
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert tg.too_many == []
    assert len(tg.sent) == 151
    assert count_in_window([m.at for m in tg.sent], 1.0) <= 30
    in_group = sorted(m.at for m in tg.sent_to(group))
    assert count_in_window(in_group, 60.0) <= 20
    assert in_group[-1] - in_group[0] >= 120  # 45 messages: three minutes' windows
    assert in_group[-1] - start < 150
    assert tg.texts_to(group) == [f"群消息{i}" for i in range(45)]
    private = sorted(m.at for m in tg.sent_to(31337))
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(private))


# ---- cards ---------------------------------------------------------------------------------


def test_card_update_edits_its_recipients_cards_and_not_modified_is_fine(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    link(sqlite_engine, city["leader1"], 1001)
    case_id = open_case(sqlite_engine, vt, city)
    st = settings(tmp_path)
    put(sqlite_engine, vt, "【工单】待受理", "card1", person_id=city["leader1"], case_id=case_id,
        actions=(Action("accept", "受理", case_id, 1),), options={"card": True})
    put(sqlite_engine, vt, "【工单】待受理", "card2", chat_binding_id=city.bindings["g1_chat"],
        case_id=case_id, options={"card": True})
    drain(sqlite_engine, tg, vt, st)
    with Session(sqlite_engine) as s:
        cards = deliveries.card_messages(s, case_id)
    assert len(cards) == 4  # these two, and the holder and group cards open_case wrote
    for v in (1, 2):  # the second update changes nothing: "not modified" is success
        put(sqlite_engine, vt, "【工单】已受理 by 邻长小赵 10:42", f"upd{v}",
            person_id=city["leader1"], case_id=case_id, kind=deliveries.CARD_UPDATE,
            actions=(Action("resolve", "已解决", case_id, 2),))
        drain(sqlite_engine, tg, vt, st)
    # A card_update addressed to the 邻长 edits the 邻长's two cards, not the group's copies
    # (each copy is worded for its reader by bot/notify).
    assert len(tg.edits) == 2
    for c in cards:
        m = tg.message(c.chat_id, c.message_id)
        assert m is not None
        if c.chat_id == "1001":
            assert m.text == "【工单】已受理 by 邻长小赵 10:42"
            assert m.reply_markup == {"inline_keyboard": [[{
                "text": "已解决", "callback_data": f"rs:{case_id}:2"}]]}
        else:
            assert m.text != "【工单】已受理 by 邻长小赵 10:42"
    put(sqlite_engine, vt, "【工单】已受理（群）", "upd-group",
        chat_binding_id=city.bindings["g1_chat"], case_id=case_id, kind=deliveries.CARD_UPDATE)
    drain(sqlite_engine, tg, vt, st)
    assert len(tg.edits) == 4
    assert {r.status for r in outbox(sqlite_engine, kind=deliveries.CARD_UPDATE)} == {"sent"}


# ---- stopping --------------------------------------------------------------------------------


def test_stopping_gives_rows_back_and_the_next_run_sends_each_once(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    st = settings(tmp_path)
    for i in range(30):
        put(sqlite_engine, vt, f"群{i}", f"g{i}", chat_binding_id=city.bindings["g1_chat"])

    async def run_until(n: int) -> None:
        async with TelegramApi(token=tg.token, base=tg.base_url, timer=vt) as api:
            vt.hold_while(lambda: api.limiter.in_flight > 0)
            stop = asyncio.Event()
            sender = telegram_dispatcher(engine=sqlite_engine, api=api, settings=st, clock=vt)
            task = asyncio.create_task(sender.run(stop))
            await apoll(lambda: len(tg.sent) >= n, timeout=20,
                        what="the sender's first messages")
            stop.set()
            await task

    asyncio.run(run_until(5))
    left = [r for r in outbox(sqlite_engine) if r.status != "sent"]
    assert left and all(r.claimed_until is None and r.attempts == 0 for r in left)
    drain(sqlite_engine, tg, vt, st)
    group = f"-100{city.nodes['g1']}"
    assert tg.texts_to(group) == [f"群{i}" for i in range(30)]
    # A new process does not know what the old one sent into the group in the last minute:
    # it may be told 429 once, and then waits (the row is deferred, nothing is lost).
    assert len(tg.too_many) <= 1
