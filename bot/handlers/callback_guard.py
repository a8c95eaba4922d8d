"""What WeChat and WeCom callbacks share before parsing: the answer to a callback, the
replay check of a signed one, and the bounds of id-like fields."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.callback_nonces import admit
from core.container import Container
from core.db import write_session

log = logging.getLogger(__name__)

# What WeChat and WeCom actually send is far shorter (an OpenID is 28 characters, a WeCom userid
# at most 64, a MediaId about 64); longer values would not fit the columns they end up in.
LIMITS = {"FromUserName": 64, "MsgId": 64, "MediaId": 200, "Format": 16, "EventKey": 200,
          "TaskId": 128, "ResponseCode": 200, "bizmsgmenuid": 64}


@dataclass(frozen=True)
class Answer:
    status: int
    body: str = "success"


def admitted(c: Container, *, platform: str, query: dict[str, str],
             digest: str) -> Answer | None:
    """None when a signed callback is fresh (core/callback_nonces.py); else the 403."""
    with write_session(c.engine) as s:
        why = admit(s, platform=platform, timestamp=query.get("timestamp", ""),
                    nonce=query.get("nonce", ""), digest=digest, now=c.clock.now(),
                    skew=c.settings.wechat_max_clock_skew)
    if why is not None:
        log.warning("%s: callback refused: %s", platform, why)
        return Answer(403, "")
    return None


def check_bounds(f: dict[str, Any], error: type[ValueError] = ValueError) -> None:
    """`error` when an id-like field is not a short text."""
    for key, limit in LIMITS.items():
        value = f.get(key)
        if value is not None and (not isinstance(value, str | int) or len(str(value)) > limit):
            raise error(f"{key} is not a short text")
