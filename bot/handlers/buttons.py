"""How a stored button (outbox action JSON) carries its press argument, for every platform.

Flows give `Button.arg`; core's case messages give `Action.extra` keys such as `rating`. Each
platform's sender reads the argument through `press_arg`, so a star pressed on Telegram, WeChat,
WeCom or the web chat comes back as the same `Press.arg`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The extra keys that stand for the press argument, in order of preference.
ARG_KEYS = ("arg", "rating")


def press_arg(action: Mapping[str, Any]) -> str | None:
    """The argument a press of this button brings back (None: the button has none)."""
    for key in ARG_KEYS:
        value = action.get(key)
        if value is not None:
            return str(value)
    return None


def with_arg(action: Mapping[str, Any]) -> dict[str, Any]:
    """The action JSON with its argument under `arg` (what a page sends back)."""
    out = dict(action)
    arg = press_arg(action)
    if arg is not None:
        out["arg"] = arg
    return out
