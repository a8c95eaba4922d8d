"""Settings parse durations and times, and never show secrets."""

from datetime import time, timedelta

import pytest
from pydantic import ValidationError

from core.settings import Settings, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("4h", 14400), ("90s", 90), ("1h30m", 5400), ("72h", 259200), ("2m", 120), ("1d", 86400),
    ("250ms", 0.25), ("45", 45), (30, 30),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "4 hours", "h4", "4x", "1h-30m", "-5s"])
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLY_DEADLINE", "90s")
    monkeypatch.setenv("QUIET_START", "23:30")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:very-secret-token")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.reply_deadline == timedelta(seconds=90)
    assert s.quiet_start == time(23, 30)
    assert s.telegram_bot_token is not None
    assert s.telegram_bot_token.get_secret_value() == "123:very-secret-token"
    assert "very-secret-token" not in repr(s)
    assert "very-secret-token" not in str(s.model_dump())


def test_bad_settings_say_which(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLY_DEADLINE", "soon")
    with pytest.raises(ValidationError, match="reply_deadline"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("REPLY_DEADLINE", "4h")
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="timezone"):
        Settings(_env_file=None)  # type: ignore[call-arg]
