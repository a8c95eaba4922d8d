"""What the bot says, Chinese first, English on request (/lang en).

One table per language for the case loop (texts_zh.py, texts_en.py), and one module per
further area (`texts_<area>.py`, each with a `ZH` and an `EN` dict, side by side), joined
here. A key lives in exactly one module; a clash is an error at start, not a silent overwrite.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from bot.flows import (
    texts_away,
    texts_campaigns,
    texts_dupes,
    texts_en,
    texts_hotline,
    texts_kaohe,
    texts_notices,
    texts_notify,
    texts_open311,
    texts_policies,
    texts_sms,
    texts_zh,
)

# Further areas add their module here: (module with ZH and EN dicts).
AREAS: tuple[ModuleType, ...] = (texts_notify, texts_notices, texts_campaigns,
                                  texts_policies, texts_dupes, texts_away, texts_open311,
                                  texts_kaohe, texts_hotline, texts_sms)


def _join(lang: str, base: dict[str, str]) -> dict[str, str]:
    table = dict(base)
    for area in AREAS:
        part: dict[str, str] = getattr(area, lang.upper())
        clash = table.keys() & part.keys()
        if clash:
            raise RuntimeError(f"text keys defined twice ({area.__name__}): {sorted(clash)}")
        table.update(part)
    return table


TEXTS: dict[str, dict[str, str]] = {"zh": _join("zh", texts_zh.ZH),
                                    "en": _join("en", texts_en.EN)}


def t(lang: str | None, key: str, **fields: Any) -> str:
    table = TEXTS.get(lang or "zh", TEXTS["zh"])
    template = table.get(key) or TEXTS["zh"][key]
    return template.format(**fields) if fields else template
