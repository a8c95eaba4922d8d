"""The SVG charts escape every label and draw what they are given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from core.cases.stats import CategoryCount
from core.reports import WeekRow
from webhooks.dashboard_charts import category_svg, tier_bars, trend_svg

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<img src=x onerror="window.__x=1">垃圾&"清运"'


def test_a_category_name_like_markup_stays_text() -> None:
    svg = category_svg([CategoryCount(EVIL, 3, 1), CategoryCount(None, 1, 0)])
    root = ElementTree.fromstring(svg)
    assert not list(root.iter("img")) and "<img" not in svg
    assert [g.get("data-name") for g in root.iter(f"{SVG}g")] == [EVIL, "未分类"]
    assert [(r.get("class"), r.get("data-value")) for r in root.iter(f"{SVG}rect")
            if r.get("data-value")] == [("received", "3"), ("closed", "1"),
                                       ("received", "1"), ("closed", "0")]


def test_the_trend_has_an_axis_and_bars_in_proportion() -> None:
    monday = datetime(2026, 3, 1, 16, tzinfo=UTC)
    weeks = [WeekRow(monday, 8, 4, 1), WeekRow(monday + timedelta(weeks=1), 4, 0, 0)]
    root = ElementTree.fromstring(trend_svg(weeks, ZoneInfo("Asia/Shanghai")))
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks[0] == "0" and ticks[-1] == "10"  # a round top above the busiest week
    received = [float(r.get("height") or 0) for r in root.iter(f"{SVG}rect")
                if r.get("class") == "received"]
    assert received[0] == 2 * received[1] > 0
    days = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "day"]
    assert days == ["03-02", "03-09"]


def test_tier_bars_split_the_total() -> None:
    root = ElementTree.fromstring(tier_bars(2, 1, 1))
    widths = {r.get("class"): float(r.get("width") or 0) for r in root.iter(f"{SVG}rect")}
    assert widths == {"on_time": 50.0, "late": 25.0, "missed": 25.0}
    assert tier_bars(0, 0, 0) == ""
