"""Telegram's rules inside its transport, against the fake Bot API on virtual time: albums as
one media group, voice notes as voice messages, a group upgraded to a supergroup keeps its
binding, and two workers writing into one chat share its limit (real time, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatcher.transport import Stats as SenderStats
from bot.handlers.telegram.api import TelegramApi
from bot.handlers.telegram.transport import telegram_dispatcher
from core.clock import SystemClock
from core.db import make_engine, migrate, session_scope
from core.outbox import Draft, enqueue_many
from core.ratebucket import PostgresRateStore, token_key
from core.settings import Settings
from tests.casehelpers import open_case, outbox
from tests.cityfactory import City
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.timer import VirtualTime
from tests.integration.test_telegram_sender import city, drain, link, put, settings, tg, vt

__all__ = ["city", "tg", "vt"]  # fixtures shared with the sender's tests


def test_an_album_goes_as_one_media_group(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    link(sqlite_engine, city["leader1"], 1001)
    case_id = open_case(sqlite_engine, vt, city)
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    vt.advance(timedelta(seconds=2))  # a new sender's limiter does not know the card's second
    for k in range(3):
        put(sqlite_engine, vt, f"工单#{case_id} 居民发来的照片", f"ph{k}", kind="case_photo",
            platform="telegram", address="1001", case_id=case_id,
            options={"photo": f"telegram:AgADphoto{k}"})
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    album = [m for m in tg.sent_to(1001) if m.method == "sendmediagroup"]
    assert len(album) == 3 and len({m.media["media_group_id"] for m in album}) == 1
    assert [m.media["file_id"] for m in album] == [f"AgADphoto{k}" for k in range(3)]
    assert album[0].text is not None and f"工单#{case_id}" in album[0].text
    assert not [m for m in tg.sent_to(1001) if m.method == "sendphoto"]
    assert {r.status for r in outbox(sqlite_engine, kind="case_photo")} == {"sent"}
    assert tg.too_many == []


def test_a_voice_note_goes_as_a_voice_message(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    put(sqlite_engine, vt, "工单#1 居民发来的语音", "v1", kind="case_voice",
        platform="telegram", address="1001", options={"voice": "telegram:AwADvoice1"})
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    [voice] = tg.sent_to(1001)
    assert voice.method == "sendvoice" and voice.media is not None
    assert voice.media["file_id"] == "AwADvoice1" and voice.text == "工单#1 居民发来的语音"


def test_a_group_upgraded_to_a_supergroup_is_rebound_and_the_next_card_goes_there(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    link(sqlite_engine, city["leader1"], 1001)
    old, new = f"-100{city.nodes['g1']}", "-1009999000001"
    tg.migrate(old, new)
    open_case(sqlite_engine, vt, city)
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert len(tg.sent_to(new)) == 1 and tg.sent_to(old) == []
    with sqlite_engine.connect() as conn:
        chats = set(conn.execute(sa.text(
            "SELECT chat_id FROM chat_binding WHERE platform = 'telegram'")).scalars())
    assert new in chats and old not in chats
    # The next case's mirror goes straight to the new id: no second refusal.
    refused = len(tg.rejections)
    vt.advance(timedelta(seconds=5))
    open_case(sqlite_engine, vt, city, text="单元门口的垃圾三天没人收")
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert len(tg.sent_to(new)) == 2 and len(tg.rejections) == refused
    assert [r.status for r in outbox(sqlite_engine, kind="mirror")] == ["sent", "sent"]


# ---- two workers, one chat -----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_two_workers_writing_into_one_chat_share_its_limit(pg_url: str,
                                                           tmp_path: Path) -> None:
    engines = [make_engine(pg_url), make_engine(pg_url)]
    migrate(engines[0])
    n = 6
    with session_scope(engines[0]) as s:
        enqueue_many(s, drafts=[Draft(text=f"通知 {k}", kind="notice", dedupe_key=f"c{k}",
                                      platform="telegram", address="4242") for k in range(n)],
                     now=SystemClock().now())
    st = Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]
    with FakeTelegram() as fake:
        async def one(engine: Engine) -> SenderStats:
            async with TelegramApi(token=fake.token, base=fake.base_url) as api:
                api.limiter.share(PostgresRateStore(engine),
                                  key=token_key(fake.token, "global"))
                sender = telegram_dispatcher(engine=engine, api=api, settings=st,
                                        clock=SystemClock(), batch=1, idle=0.05)
                return await sender.drain(max_seconds=60)

        async def both() -> list[SenderStats]:
            return list(await asyncio.gather(*(one(e) for e in engines)))

        start = time.monotonic()
        stats = asyncio.run(both())
        elapsed = time.monotonic() - start
        assert fake.too_many == [], "the chat's 1/s held across both workers"
        assert len(fake.sent_to(4242)) == n
    assert sum(x.rows_sent for x in stats) == n and elapsed >= n - 1
    for e in engines:
        e.dispose()


def test_a_migration_update_rebinds_the_chat(sqlite_engine: Engine, city: City,
                                             vt: VirtualTime, tmp_path: Path) -> None:
    from bot.handlers.telegram.inbound import handle_body
    from core.container import build_container

    old, new = int(f"-100{city.nodes['g1']}"), -1009999000002
    c = build_container(settings(tmp_path), clock=vt, engine=sqlite_engine)
    handle_body(c, json.dumps({"update_id": 77, "message": {
        "message_id": 5, "date": 1700000000, "chat": {"id": old, "type": "group", "title": "一组"},
        "migrate_to_chat_id": new}}).encode())
    with sqlite_engine.connect() as conn:
        chats = set(conn.execute(sa.text(
            "SELECT chat_id FROM chat_binding WHERE platform = 'telegram'")).scalars())
    assert str(new) in chats and str(old) not in chats


def test_a_card_in_a_group_that_became_a_supergroup_is_let_go_and_the_binding_follows(
        sqlite_engine: Engine, city: City, vt: VirtualTime, tg: FakeTelegram,
        tmp_path: Path) -> None:
    link(sqlite_engine, city["leader1"], 1001)
    old, new = f"-100{city.nodes['g1']}", "-1009999000003"
    case_id = open_case(sqlite_engine, vt, city)
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    assert len(tg.sent_to(old)) == 1
    tg.migrate(old, new)
    vt.advance(timedelta(seconds=5))
    put(sqlite_engine, vt, "工单已受理", "u1", kind="card_update", platform="telegram",
        address="*", case_id=case_id)
    drain(sqlite_engine, tg, vt, settings(tmp_path))
    [row] = outbox(sqlite_engine, kind="card_update")
    assert row.status == "sent" and row.attempts == 1
    with sqlite_engine.connect() as conn:
        chats = set(conn.execute(sa.text(
            "SELECT chat_id FROM chat_binding WHERE platform = 'telegram'")).scalars())
    assert new in chats and old not in chats
    assert [e["chat_id"] for e in tg.edits] == [1001]
