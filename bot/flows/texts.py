"""What the bot says, Chinese first, English on request (/lang en): one table per language
(texts_zh.py, texts_en.py), looked up here."""

from __future__ import annotations

from typing import Any

from bot.flows.texts_en import EN
from bot.flows.texts_zh import ZH

TEXTS: dict[str, dict[str, str]] = {"zh": ZH, "en": EN}


def t(lang: str | None, key: str, **fields: Any) -> str:
    table = TEXTS.get(lang or "zh", TEXTS["zh"])
    template = table.get(key) or TEXTS["zh"][key]
    return template.format(**fields) if fields else template
