"""The fake Bot API answers as Telegram does (contract), and the API adapter works against it,
over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

from bot.flows.types import Button
from bot.handlers.telegram.api import TelegramApi, Upload, retry_seconds
from core.errors import MediaRejected
from tests.fakes.telegram_api import FakeTelegram

T = TypeVar("T")


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> ManualClock:  # type: ignore[override]
    return ManualClock()


@pytest.fixture
def tg(clock: ManualClock) -> Iterator[FakeTelegram]:
    with FakeTelegram(now=clock) as fake:
        yield fake
        assert fake.errors == []


def call(tg: FakeTelegram, method: str, token: str | None = None, **params: Any) -> httpx.Response:
    return httpx.post(f"{tg.base_url}/bot{token or tg.token}/{method}", json=params, timeout=10)


def with_api(tg: FakeTelegram, fn: Callable[[TelegramApi], Awaitable[T]],
             token: str | None = None) -> T:
    async def main() -> T:
        api = TelegramApi(token=token or tg.token, base=tg.base_url)
        try:
            return await fn(api)
        finally:
            await api.close()

    return asyncio.run(main())


def test_wrong_token_is_401_as_telegram_says_it(tg: FakeTelegram) -> None:
    r = call(tg, "sendMessage", token="1:wrong", chat_id=1, text="x")
    assert r.status_code == 401
    assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}

    async def send(api: TelegramApi) -> int:
        return await api.send_text("1", "x")

    with pytest.raises(InvalidToken):
        with_api(tg, send, token="1:wrong")


def test_too_long_text_caption_and_callback_data_are_400(tg: FakeTelegram) -> None:
    r = call(tg, "sendMessage", chat_id=1, text="字" * 4097)
    assert (r.status_code, r.json()["description"]) == (400, "Bad Request: message is too long")
    assert call(tg, "sendMessage", chat_id=2, text="字" * 4096).status_code == 200
    r = call(tg, "sendMessage", chat_id=3, text="😀" * 2049)  # 4098 UTF-16 units
    assert r.status_code == 400
    r = call(tg, "sendPhoto", chat_id=4, photo="AgAD", caption="x" * 1025)
    assert r.json()["description"] == "Bad Request: message caption is too long"
    markup = {"inline_keyboard": [[{"text": "ok", "callback_data": "x" * 65}]]}
    r = call(tg, "sendMessage", chat_id=5, text="hi", reply_markup=markup)
    assert (r.status_code, r.json()["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")
    r = call(tg, "sendMessage", chat_id=6, text="  ")
    assert r.json()["description"] == "Bad Request: message text is empty"
    assert len(tg.sent) == 1
    assert [x.status for x in tg.rejections] == [400] * 5


def test_flood_limits_answer_429_with_retry_after(tg: FakeTelegram, clock: ManualClock) -> None:
    assert call(tg, "sendMessage", chat_id=7, text="1").status_code == 200
    r = call(tg, "sendMessage", chat_id=7, text="2")
    assert r.status_code == 429
    assert r.json() == {"ok": False, "error_code": 429,
                        "description": "Too Many Requests: retry after 1",
                        "parameters": {"retry_after": 1}}
    clock.t += 1.0
    assert call(tg, "sendMessage", chat_id=7, text="2").status_code == 200
    clock.t += 10
    for i in range(20):
        assert call(tg, "sendMessage", chat_id=-100500, text=str(i)).status_code == 200
        clock.t += 0.1
    r = call(tg, "sendMessage", chat_id=-100500, text="21st")
    assert r.status_code == 429 and r.json()["parameters"]["retry_after"] == 58
    clock.t += 58
    assert call(tg, "sendMessage", chat_id=-100500, text="21st").status_code == 200
    clock.t += 100
    for i in range(30):
        assert call(tg, "sendMessage", chat_id=10_000 + i, text="x").status_code == 200
    assert call(tg, "sendMessage", chat_id=99_999, text="31st").status_code == 429
    assert len(tg.too_many) == 3


def test_blocked_chat_5xx_and_drops_surface_as_ptb_errors(tg: FakeTelegram) -> None:
    tg.block(11)
    r = call(tg, "sendMessage", chat_id=11, text="x")
    assert (r.status_code, r.json()["description"]) == (
        403, "Forbidden: bot was blocked by the user")
    seen: list[type[Exception]] = []
    faults: list[Callable[[], None]] = [
        lambda: None, lambda: tg.fail_next("sendMessage"), lambda: tg.drop_next("sendMessage"),
        lambda: tg.storm(30)]

    async def go(api: TelegramApi) -> None:
        for chat, fault in zip(("11", "12", "13", "14"), faults, strict=True):
            fault()
            try:
                await api.send_text(chat, "x")
            except Exception as e:
                seen.append(type(e))
                if isinstance(e, RetryAfter):
                    assert retry_seconds(e) == 30

    with_api(tg, go)
    assert seen == [Forbidden, NetworkError, NetworkError, RetryAfter]
    assert tg.sent == []


def test_adapter_sends_splits_edits_and_answers() -> None:
    long = "\n".join(f"第{i}段" + "说明" * 100 for i in range(30))

    async def go(api: TelegramApi) -> list[int]:
        # `send` waits its turn per part in the API's limiter (real time here: two seconds).
        [first] = await api.send("21", "原消息")
        ids = await api.send("21", long, buttons=[Button("受理", "accept", 3, 1)],
                             reply_to=str(first))
        assert await api.edit_card("21", ids[-1], "已受理", buttons=[]) is True
        assert await api.edit_card("21", ids[-1], "已受理", buttons=[]) is False
        await api.answer_press("q1", "好" * 300)
        return ids

    with FakeTelegram() as tg:
        ids = with_api(tg, go)
        assert tg.too_many == [] and tg.errors == []
    msgs = tg.sent_to(21)
    assert [m.message_id for m in msgs[1:]] == ids and len(ids) == 2
    assert msgs[1].reply_to == 1 and msgs[2].reply_to is None
    assert msgs[1].original_markup is None
    assert msgs[2].original_markup == {"inline_keyboard": [[{"text": "受理",
                                                          "callback_data": "ac:3:1"}]]}
    assert tg.message(21, ids[-1]).text == "已受理"  # type: ignore[union-attr]
    assert len(tg.answers[0]["text"]) == 200


def test_adapter_downloads_files_and_refuses_big_ones_first(tg: FakeTelegram) -> None:
    tg.add_file("PHOTO1", b"\xff\xd8jpeg", file_path="photos/file_1.jpg")
    tg.add_file("HUGE", b"", size=25 * 2**20)

    async def go(api: TelegramApi) -> bytes:
        with pytest.raises(MediaRejected):
            await api.download("HUGE")
        with pytest.raises(MediaRejected):
            await api.download("PHOTO1", known_size=21 * 2**20)
        return await api.download("PHOTO1")

    assert with_api(tg, go) == b"\xff\xd8jpeg"
    assert tg.requests("getFile") == 2  # the known-size refusal asked nothing


def test_adapter_sets_commands_webhook_and_polls(tg: FakeTelegram) -> None:
    async def go(api: TelegramApi) -> list[dict[str, Any]]:
        await api.set_commands([("stats", "统计"), ("help", "帮助")], scope="chat", chat_id=42)
        await api.set_commands([("help", "帮助")], scope="all_private_chats", language="zh")
        await api.delete_commands(scope="default")
        await api.set_webhook("https://example.org/webhooks/telegram", secret="s3cret_T0ken")
        with pytest.raises(Exception, match="webhook is active"):
            await api.get_updates(timeout=0)
        await api.delete_webhook()
        tg.push_update({"message": {"message_id": 5, "date": 1700000000,
                                    "chat": {"id": 42, "type": "private"},
                                    "from": {"id": 42, "is_bot": False, "first_name": "孙"},
                                    "text": "楼道灯坏了"}})
        first = await api.get_updates(timeout=1)
        again = await api.get_updates(offset=first[-1]["update_id"] + 1, timeout=0)
        assert again == []
        return first

    updates = with_api(tg, go)
    assert updates[0]["message"]["text"] == "楼道灯坏了"
    assert updates[0]["message"]["chat"] == {"id": 42, "type": "private"}
    assert tg.commands[('{"chat_id": 42, "type": "chat"}', "")][0]["command"] == "stats"
    assert tg.commands[('{"type": "all_private_chats"}', "zh")] == [
        {"command": "help", "description": "帮助"}]
    assert tg.webhook is None


def test_a_long_poll_returns_when_an_update_arrives(tg: FakeTelegram) -> None:
    async def go(api: TelegramApi) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, tg.push_update, {"message": {
            "message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "hi"}})
        return await api.get_updates(timeout=5)

    assert [u["message"]["text"] for u in with_api(tg, go)] == ["hi"]


def test_photo_upload_is_multipart_and_recorded(tg: FakeTelegram) -> None:
    async def go(api: TelegramApi) -> int:
        return await api.send_photo("31", Upload("door.jpg", b"\xff\xd8" + b"0" * 100),
                                    caption="门口")

    with_api(tg, go)
    [m] = tg.sent_to(31)
    assert m.media is not None and m.media["filename"] == "door.jpg" and m.media["size"] == 102
    assert m.text == "门口"


def test_badrequest_is_not_retryable_by_type() -> None:
    # The sender relies on BadRequest being caught before NetworkError (it subclasses it).
    assert issubclass(BadRequest, NetworkError)
