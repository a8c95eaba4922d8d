"""The web chat's colours meet WCAG AA (4.5:1 for text): every rule of chat.css that sets a
text colour, a background or both, read against what it sits on."""

from __future__ import annotations

import re
from pathlib import Path

CSS = Path(__file__).resolve().parents[2] / "webhooks" / "webchat_static" / "chat.css"
RULE = re.compile(r"([^{}]+)\{([^}]*)\}")
HEX = r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b"
BODY_TEXT, PAGE, BUBBLE = "#111", "#f3f4f6", "#fff"


def _rgb(h: str) -> tuple[float, ...]:
    h = h.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))


def luminance(h: str) -> float:
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in _rgb(h))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def rules() -> list[tuple[str, str | None, str | None]]:
    out = []
    for selector, body in RULE.findall(re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.S)):
        fg = re.search(r"(?<![-\w])color:\s*" + HEX, body)
        bg = re.search(r"background(?:-color)?:\s*" + HEX, body)
        if fg or bg:
            out.append((selector.strip(), f"#{fg.group(1)}" if fg else None,
                        f"#{bg.group(1)}" if bg else None))
    return out


def test_ratio_is_computed_right() -> None:
    assert round(ratio("#000", "#fff"), 1) == 21.0
    assert round(ratio("#777", "#fff"), 2) == 4.48  # the classic just-too-light grey


def test_every_colour_pair_of_the_chat_is_aa() -> None:
    bad = []
    for selector, fg, bg in rules():
        # A colour alone sits on a bubble or the page (both checked); a background alone
        # carries the body's text colour.
        pairs = [(fg, bg)] if fg and bg else (
            [(fg, BUBBLE), (fg, PAGE), (fg, "#dcfce7")] if fg else [(BODY_TEXT, bg)])
        for f, b in pairs:
            assert f is not None and b is not None
            if ratio(f, b) < 4.5:
                bad.append((selector, f, b, round(ratio(f, b), 2)))
    assert bad == []
    assert len(rules()) >= 15  # the rules were read at all
