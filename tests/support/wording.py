"""Domain errors as the people read them: the sentence of the error's key (bot/flows/texts.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.flows.refusals import sentence


@contextmanager
def refusal(kind: type[Exception], match: str, *, lang: str = "zh") -> Iterator[Any]:
    """Like `pytest.raises(kind, match=...)`, matched against the error's sentence in `lang`."""
    with pytest.raises(kind) as info:
        yield info
    said = sentence(info.value, lang)  # type: ignore[arg-type]
    assert re.search(match, said), said
