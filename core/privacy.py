"""Who may see a phone number or an address: masking rules for group chats and exports.

A 邻长 going to a household needs its address, and an admin who keeps the roster needs whole
phone numbers; a tier group chat (several people, some of them not on the case) and a roster
exported for a village need neither. These are pure functions over strings; the callers decide
where they apply (core/cases/ops.to_chats, the chat flows, core/hierarchy/exporter).

Rules:
- mobile numbers (1[3-9] and 9 more digits, optionally +86 / 0086 / 86 in front, spaces or dashes
  between the 3-4-4 groups): `138****5678`;
- landlines (0 + 2-3 digit area code, 7-8 digits; parentheses, dash or space allowed):
  the area code stays, the local number keeps its last 4 digits: `0558-***4567`;
- 18-digit 居民身份证 numbers (with a plausible birth date): `341602********123X`;
- house numbers in free text (`12号3单元502`, `3号楼`): `**号***`;
- a whole address field: the street or village part stays, the rest is hidden
  (`幸福路12号3单元502` -> `幸福路**号***`).
A number inside a longer run of digits (a case id, a grid code, an ID number) is never taken for
a phone number: every pattern needs a non-digit (or the text's edge) on both sides. Full-width
digits (０-９) and separators count like ASCII ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PLACEHOLDER = "（已匿名化）"
MASK_MARK = "*"
# Admins at these levels keep the roster (they import it), so their exports carry whole phone
# numbers and addresses; an admin lower down gets a masked roster.
FULL_ROSTER_LEVELS = frozenset({"district", "town"})

# Full-width digits, plus, minus, parentheses and the ideographic space, to their ASCII twins:
# one character for one, so positions found in the folded text hold in the original.
_FOLD = str.maketrans({
    **{chr(0xFF10 + d): str(d) for d in range(10)},
    "＋": "+", "－": "-", "—": "-", "–": "-", "（": "(", "）": ")", "\u3000": " ",
})

_SEP = r"[ \-]?"
_MOBILE = re.compile(
    rf"(?<!\d)(?:(?:\+|00)?86{_SEP})?(1[3-9]\d){_SEP}(\d{{4}}){_SEP}(\d{{4}})(?!\d)"
)
# Letters count as part of a token here too, so an invite code or a file id is left alone.
_LANDLINE = re.compile(
    r"(?<![0-9A-Za-z])(\(0\d{2,3}\)|0\d{2,3})([ \-]?)(\d{7,8})(?![0-9A-Za-z])"
)
_ID_CARD = re.compile(r"(?<!\d)(\d{6})((?:18|19|20)\d{2})(\d{2})(\d{2})(\d{3}[\dXx])(?![\dA-Za-z])")
# A house number: a unit that only a building has (栋, 单元, 室 …), or several parts in a row
# (12号3单元502). A lone "3号" is a date as often as a house, so it is left alone.
_UNIT = r"(?:号楼|号院|号|栋|幢|座|单元|层|楼|室|户)"
_HOUSE = re.compile(
    rf"(?<!\d)\d+[ \-]?{_UNIT}(?:[ \-]?\d+[ \-]?{_UNIT})*(?:[ \-]?\d+)?"
)
_STRONG_UNIT = re.compile(r"号楼|号院|栋|幢|单元|室")
_DIGITS = re.compile(r"\d+")


def _fold(text: str) -> str:
    return text.translate(_FOLD)


def mask_phone(number: str) -> str:
    """One phone number, mobile or landline, with its middle hidden; '' stays ''."""
    folded = _fold(number.strip())
    if not folded:
        return number
    digits = re.sub(r"\D", "", folded)
    m = _MOBILE.fullmatch(folded) or _MOBILE.fullmatch(digits)
    if m:
        return f"{m.group(1)}****{m.group(3)}"
    if len(digits) <= 4:
        return MASK_MARK * len(digits)
    # Anything else (a landline, a malformed cell): the first 3 and last 4 digits at most.
    keep = min(3, len(digits) - 4)
    return digits[:keep] + MASK_MARK * (len(digits) - keep - 4) + digits[-4:]


def sees_full_roster(level: str) -> bool:
    """Whether an admin of a node at `level` exports whole phone numbers and addresses."""
    return str(level) in FULL_ROSTER_LEVELS


def is_masked(value: str | None) -> bool:
    """Whether a cell was masked by us (a masked export read back in)."""
    return bool(value) and MASK_MARK in str(value)


def _mobile(m: re.Match[str]) -> str:
    return f"{m.group(1)}****{m.group(3)}"


def _landline(m: re.Match[str]) -> str:
    local = m.group(3)
    return f"{m.group(1)}{m.group(2)}{MASK_MARK * (len(local) - 4)}{local[-4:]}"


def _id_card(m: re.Match[str]) -> str:
    month, day = int(m.group(3)), int(m.group(4))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)  # not an ID number: some other long number, left whole
    return f"{m.group(1)}{MASK_MARK * 8}{m.group(5)[-4:]}"


def _house(m: re.Match[str]) -> str:
    found = m.group(0)
    parts = len(re.findall(_UNIT, found))
    if parts < 2 and not _STRONG_UNIT.search(found):
        return found  # "3号", "5楼": too little to be a household
    unit = re.search(_UNIT, found)
    assert unit is not None
    return f"{MASK_MARK * 2}{unit.group(0)}{MASK_MARK * 3}"


_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (_ID_CARD, _id_card), (_MOBILE, _mobile), (_LANDLINE, _landline), (_HOUSE, _house),
]


def mask_text(text: str) -> str:
    """Free text as a group chat may show it: phone, ID and house numbers hidden."""
    if not text:
        return text
    folded = _fold(text)
    spans: list[tuple[int, int, str]] = []
    for pattern, replace in _RULES:
        for m in pattern.finditer(folded):
            if any(m.start() < end and start < m.end() for start, end, _ in spans):
                continue  # already covered by an earlier rule
            new = replace(m)
            if new != m.group(0):
                spans.append((m.start(), m.end(), new))
    if not spans:
        return text
    out, pos = [], 0
    for start, end, new in sorted(spans):
        out += [text[pos:start], new]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask_address(address: str | None) -> str | None:
    """An address with only its street or village part left: 幸福路12号3单元502 -> 幸福路**号***."""
    if not address or not address.strip():
        return address
    folded = _fold(address)
    first = _DIGITS.search(folded)
    if first is None:
        # No numbers to hide: keep the first half (the street), hide the rest.
        keep = max(1, min(len(address) // 2, 8))
        return address[:keep] + MASK_MARK * 3
    unit = re.match(_UNIT, folded[first.end():])
    tail = folded[first.end() + (unit.end() if unit else 0):]
    return (address[:first.start()] + MASK_MARK * 2 + (unit.group(0) if unit else "")
            + (MASK_MARK * 3 if tail.strip() else ""))


_RUN_END = re.compile(r"[0-9０-９][0-9０-９ \-－]*$")
_RUN_START = re.compile(r"[0-9０-９ \-－]")


def clip(text: str, limit: int, *, tail: str = "…") -> str:
    """`text` cut to `limit` characters, never through a number: half a phone number would
    no longer look like one to mask_text, yet still give most of it away."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    run = _RUN_END.search(cut)
    if run is not None and _RUN_START.match(text[limit]):
        cut = cut[:run.start()]
    return cut.rstrip() + tail


def anonymised(text: str | None) -> str | None:
    """What purge leaves of a stored text: the placeholder, or None for no text."""
    return None if text is None else PLACEHOLDER
