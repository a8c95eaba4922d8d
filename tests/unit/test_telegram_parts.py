"""Cutting outbox messages into what Telegram accepts, and the rate limiter on virtual time."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.flows.types import Button
from bot.handlers.telegram.callback import decode
from bot.handlers.telegram.parts import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    buttons_from_actions,
    keyboard_rows,
    plan,
    split_text,
    utf16_len,
)
from bot.handlers.telegram.ratelimit import Limits, RateLimiter
from tests.fakes.timer import VirtualTime


def test_short_text_is_one_part() -> None:
    assert split_text("你好") == ["你好"]


def test_long_text_is_cut_on_line_breaks_and_loses_nothing() -> None:
    lines = [f"第{i}行：" + "楼道堆物" * 20 for i in range(300)]
    text = "\n".join(lines)
    parts = split_text(text)
    assert len(parts) > 1
    assert all(utf16_len(p) <= TEXT_LIMIT for p in parts)
    assert "\n".join(parts) == text  # every cut was a line break, dropped once
    assert all(p.startswith("第") for p in parts)


def test_a_text_without_breaks_is_cut_hard_and_counts_utf16() -> None:
    text = "😀" * 5000  # two UTF-16 units each
    parts = split_text(text)
    assert [utf16_len(p) for p in parts] == [4096, 4096, 1808]
    assert "".join(parts) == text


def test_words_are_cut_on_spaces() -> None:
    text = " ".join(["word"] * 3000)
    parts = split_text(text, 100)
    assert all(len(p) <= 100 and not p.startswith(" ") for p in parts)
    assert " ".join(parts) == text


def test_photo_caption_overflow_follows_as_text_with_buttons_last() -> None:
    text = "\n".join("情况说明" * 10 for _ in range(40))  # ~1640 characters
    parts = plan(text, photo="p.jpg")
    assert parts[0].kind == "photo" and parts[0].first and not parts[0].last
    assert utf16_len(parts[0].text) <= CAPTION_LIMIT
    assert [p.kind for p in parts[1:]] == ["text"]
    assert parts[-1].last
    assert parts[0].text + "\n" + parts[1].text == text


def test_short_photo_caption_is_one_part() -> None:
    [part] = plan("门口照片", photo="p.jpg")
    assert part.kind == "photo" and part.first and part.last and part.text == "门口照片"


def test_rating_buttons_carry_the_rating_and_share_a_row() -> None:
    actions = [{"action": "confirm", "label": "★" * n, "case_id": 7, "version": 3, "rating": n}
               for n in range(5, 0, -1)]
    actions.append({"action": "not_fixed", "label": "没解决", "case_id": 7, "version": 3})
    buttons = buttons_from_actions(actions)
    assert buttons[0] == Button("★★★★★", "confirm", 7, 3, "5")
    rows = keyboard_rows(buttons)
    assert [len(r) for r in rows] == [5, 1]
    press = decode(rows[0][1][1])
    assert (press.action, press.case_id, press.version, press.arg) == ("confirm", 7, 3, "4")


def test_a_button_that_cannot_be_encoded_is_left_out() -> None:
    buttons = [Button("不存在", "no_such_action", 1, 1), Button("受理", "accept", 1, 1),
               Button("x", "accept", 1, 1, arg="a" * 70)]
    rows = keyboard_rows(buttons)
    assert rows == [[("受理", "ac:1:1")]]


def test_holder_buttons_are_packed_by_width() -> None:
    buttons = [Button("受理", "accept", 12, 1), Button("答复居民", "reply", 12, 1),
               Button("解决不了，转上级", "escalate", 12, 1)]
    assert [[label for label, _ in row] for row in keyboard_rows(buttons)] == [
        ["受理", "答复居民"], ["解决不了，转上级"]]


# ---- the limiter ---------------------------------------------------------------------------


def _run(limiter: RateLimiter, chats: list[str], vt: VirtualTime) -> list[tuple[str, float]]:
    done: list[tuple[str, float]] = []

    async def one(chat: str) -> None:
        async with limiter.slot(chat):
            await asyncio.sleep(0)
        done.append((chat, vt.monotonic()))

    async def main() -> None:
        await asyncio.gather(*(one(c) for c in chats))

    asyncio.run(main())
    return done


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_limiter_keeps_30_a_second_in_all_and_gets_close() -> None:
    vt = VirtualTime()
    done = _run(RateLimiter(Limits(), vt), [str(1000 + i) for i in range(300)], vt)
    times = [t for _, t in done]
    assert _max_in_window(times, 1.0) <= 30
    assert max(times) < 10.0  # 300 messages at 30/s: about nine seconds, not more


def test_limiter_keeps_one_a_second_per_chat_and_20_a_minute_per_group() -> None:
    vt = VirtualTime()
    done = _run(RateLimiter(Limits(), vt), ["42"] * 5 + ["-100777"] * 25, vt)
    private = sorted(t for c, t in done if c == "42")
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(private))
    group = sorted(t for c, t in done if c == "-100777")
    assert _max_in_window(group, 60.0) <= 20
    assert group[20] - group[0] >= 60.0
    assert group[-1] < 90.0


def test_a_429_pauses_the_chat_and_a_second_one_pauses_everything() -> None:
    vt = VirtualTime()
    limiter = RateLimiter(Limits(), vt)
    limiter.too_many("1", 5)
    assert limiter.wait_needed("1") == pytest.approx(5.05)
    assert limiter.wait_needed("2") == 0
    limiter.too_many("2", 5)
    assert limiter.paused_globally == 1
    assert limiter.wait_needed("3") == pytest.approx(5.05)
