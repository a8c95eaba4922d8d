"""Button keys of WeChat message menus and WeCom template cards: `action:case:version[:arg]`."""

from __future__ import annotations

import re

from bot.flows.types import Press

KEY = re.compile(r"^([a-z_]{1,20}):(\d{1,9}):(\d{1,9})(?::([^:]{1,40}))?$")


def encode(action: str, case_id: int, version: int, arg: object | None = None) -> str:
    """The key a button carries back to us."""
    key = f"{action}:{case_id}:{version}"
    return f"{key}:{arg}" if arg is not None else key


def decode(key: str, *, query_id: str | None = None, message_id: str | None = None
           ) -> Press | None:
    """The press a key stands for; None for keys that are not ours."""
    m = KEY.match(key.strip())
    if m is None:
        return None
    return Press(action=m.group(1), case_id=int(m.group(2)), version=int(m.group(3)),
                 arg=m.group(4), query_id=query_id, message_id=message_id)
