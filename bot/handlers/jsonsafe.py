"""JSON from outside, read without surprises: bounded nesting, no NaN or Infinity.

Python's json recurses once per nesting level and raises RecursionError (not ValueError) past
about a thousand; a little less deep, the payload passes json.loads and then overflows the
stack later, where it is stored or walked. Chat platforms' updates nest a handful of levels,
so a body nested deeper than MAX_DEPTH is refused before it is parsed at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(body: bytes | str, *, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects nest more than `limit` levels (strings do not count)."""
    raw = body.encode() if isinstance(body, str) else body
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    depth = 0
    for b in brackets:
        depth += 1 if b in b"[{" else -1
        if depth > limit:
            return True
    return False


def not_json(name: str) -> Any:
    """NaN and Infinity: Python reads them, JSON (and PostgreSQL's json type) does not."""
    raise ValueError(f"{name} is not JSON")


def loads(body: bytes | str, *, limit: int = MAX_DEPTH) -> Any:
    """json.loads, or ValueError for what is not JSON, NaN / Infinity, or nested too deep."""
    if too_deep(body, limit=limit):
        raise ValueError(f"nested more than {limit} levels deep")
    try:
        return json.loads(body, parse_constant=not_json)
    except RecursionError:  # cannot happen after the check; a stack is not ours to spend
        raise ValueError("nested too deep") from None
