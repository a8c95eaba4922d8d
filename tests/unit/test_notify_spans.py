"""How the notifier says a span of time: never "还剩0分钟" while time is left."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.notify.render import span


@pytest.mark.parametrize(("delta", "zh", "en"), [
    (timedelta(seconds=20), "不到1分钟", "under a minute"),
    (timedelta(seconds=59), "不到1分钟", "under a minute"),
    (timedelta(minutes=1), "1分钟", "1 min"),
    (timedelta(minutes=59, seconds=30), "59分钟", "59 min"),
    (timedelta(minutes=90), "1小时30分钟", "1 h 30 min"),
    (timedelta(hours=4), "4小时", "4 h"),
])
def test_spans_read_as_people_say_them(delta: timedelta, zh: str, en: str) -> None:
    assert span("zh", delta) == zh
    assert span("en", delta) == en
