"""Texts of 考核 (the monthly measures) and 满意度测评 (the survey of 邻长)."""

from __future__ import annotations

ZH: dict[str, str] = {
    "kaohe_bad_month": "月份应写成 YYYY-MM（如 2026-03），“{month}”不是有效的月份。",
    "kaohe_bad_year": "年份应在 2000 至 2100 之间，“{year}”不是有效的年份。",
}

EN: dict[str, str] = {
    "kaohe_bad_month": "A month is written YYYY-MM (e.g. 2026-03); “{month}” is not a month.",
    "kaohe_bad_year": "A year must lie between 2000 and 2100; “{year}” does not.",
}
