"""Server-rendered SVG charts for the figures page: the weekly trend, cases by category and
the inline bars of the tier table.

Inline <svg> is markup, not style, so the Content-Security-Policy lets it through; every
size and colour is a presentation attribute (x, height, fill), never a `style=`. Every label
is escaped. Each bar carries its value in `data-value` and as visible text, so what the chart
says can be checked against the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from html import escape

from core.cases.stats import CategoryCount
from core.reports import WeekRow

BLUE, GREEN, RED, GREY, INK, MUTED = "#6f9ee8", "#2e9d5b", "#d93a34", "#e3e7ec", "#1f2933", \
    "#6b7785"
SERIES = (("received", "收到", BLUE), ("closed", "已办结", GREEN),
          ("overdue_replies", "答复超时", RED))


def _t(x: object) -> str:
    return escape(str(x), quote=True)


def _nice_top(peak: int) -> int:
    """A round axis maximum at or above `peak` (1, 2, 5 × 10ⁿ)."""
    if peak <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= peak:
                return m * step
        step *= 10


def _ticks(top: int) -> list[int]:
    if top <= 4:
        return list(range(top + 1))
    return [round(top * i / 4) for i in range(5)]


def trend_svg(weeks: Sequence[WeekRow], tz: tzinfo) -> str:
    """Received, closed and late-replied cases per week as grouped bars with a value axis."""
    n = max(len(weeks), 1)
    # As wide as the weeks need: a short range is not blown up to the page's width.
    width, height, left, bottom, top_pad = max(360, min(760, 56 * n + 60)), 240, 40, 40, 22
    plot_h = height - bottom - top_pad
    slot = (width - left - 10) / n
    bar = max(3.0, min(18.0, (slot - 6) / 3))
    top = _nice_top(max([max(w.received, w.closed, w.overdue_replies) for w in weeks] + [0]))
    parts = [f'<svg class="chart trend" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" '
             f'aria-label="每周趋势" xmlns="http://www.w3.org/2000/svg">']
    for v in _ticks(top):
        y = top_pad + plot_h - v / top * plot_h
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{GREY}" stroke-width="1"/>'
                     f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="{MUTED}">{v}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top_pad}" y2="{top_pad + plot_h}" '
                 f'stroke="{MUTED}" stroke-width="1"/>')
    show_values = slot >= 36
    for i, w in enumerate(weeks):
        x0 = left + i * slot + (slot - 3 * bar - 4) / 2
        label = w.start.astimezone(tz).strftime("%m-%d")
        parts.append(f'<g class="week" data-week="{_t(w.start.astimezone(tz).date())}">')
        for j, (key, name, colour) in enumerate(SERIES):
            value = int(getattr(w, key))
            h = value / top * plot_h
            x = x0 + j * (bar + 2)
            y = top_pad + plot_h - h
            parts.append(
                f'<rect class="{key}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}" data-value="{value}">'
                f'<title>{_t(label)} {name} {value}</title></rect>')
            if show_values and value:
                parts.append(f'<text class="val" x="{x + bar / 2:.1f}" y="{y - 3:.1f}" '
                             f'text-anchor="middle" font-size="10" fill="{INK}">{value}</text>')
        parts.append(f'<text class="day" x="{left + i * slot + slot / 2:.1f}" '
                     f'y="{top_pad + plot_h + 16}" text-anchor="middle" font-size="11" '
                     f'fill="{MUTED}">{_t(label)}</text></g>')
    lx = left
    for _key, name, colour in SERIES:
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{lx + 14}" y="{height - 5}" font-size="12" '
                     f'fill="{INK}">{name}</text>')
        lx += 80
    parts.append(f'<text x="{left - 6}" y="{top_pad - 8}" text-anchor="end" font-size="11" '
                 f'fill="{MUTED}">件</text></svg>')
    return "".join(parts)


def category_svg(rows: Sequence[CategoryCount], most: int = 12) -> str:
    """Received cases per category as horizontal bars, the closed share darker inside."""
    shown = list(rows[:most])
    if not shown:
        return '<p class="empty">这段时间没有工单</p>'
    width, row_h, label_w, pad = 420, 28, 100, 8
    height = pad * 2 + row_h * len(shown) + 18
    top = _nice_top(max(r.received for r in shown))
    plot_w = width - label_w - 100
    parts = [f'<svg class="chart cats" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" '
             f'aria-label="按类别" xmlns="http://www.w3.org/2000/svg">']
    for i, r in enumerate(shown):
        y = pad + i * row_h
        name = r.name or "未分类"
        w_all = r.received / top * plot_w
        w_closed = r.closed / top * plot_w
        parts.append(
            f'<g class="cat" data-name="{_t(name)}">'
            f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end" font-size="13" '
            f'fill="{INK}">{_t(name[:10])}</text>'
            f'<rect class="received" x="{label_w}" y="{y + 4}" width="{w_all:.1f}" '
            f'height="{row_h - 8}" fill="{BLUE}" data-value="{r.received}">'
            f'<title>{_t(name)} 收到 {r.received}</title></rect>'
            f'<rect class="closed" x="{label_w}" y="{y + 4}" width="{w_closed:.1f}" '
            f'height="{row_h - 8}" fill="{GREEN}" data-value="{r.closed}">'
            f'<title>{_t(name)} 已办结 {r.closed}</title></rect>'
            f'<text class="val" x="{label_w + w_all + 6:.1f}" y="{y + 18}" font-size="12" '
            f'fill="{INK}">{r.received}（办结{r.closed}）</text></g>')
    parts.append(f'<text x="{label_w}" y="{height - 4}" font-size="11" fill="{MUTED}">'
                 f'蓝：收到　绿：其中已办结</text></svg>')
    return "".join(parts)


def rate_bar(rate: float | None, *, colour: str = GREEN) -> str:
    """A small inline bar for a share (0–1), for a table cell; empty when there is none."""
    if rate is None:
        return ""
    w = max(0.0, min(1.0, rate)) * 100
    return (f'<svg class="inline-bar" viewBox="0 0 100 10" preserveAspectRatio="none" '
            f'width="100" height="10" role="img" aria-label="{rate * 100:.1f}%" '
            f'xmlns="http://www.w3.org/2000/svg">'
            f'<rect x="0" y="0" width="100" height="10" fill="{GREY}"/>'
            f'<rect class="rate" x="0" y="0" width="{w:.1f}" height="10" fill="{colour}" '
            f'data-value="{rate:.4f}"/></svg>')


def tier_bars(on_time: int, late: int, missed: int) -> str:
    """One stacked bar: on time (green), late (orange), missed (red), out of the total."""
    total = on_time + late + missed
    if not total:
        return ""
    parts = ['<svg class="inline-bar tier" viewBox="0 0 100 12" preserveAspectRatio="none" '
             'width="120" height="12" role="img" xmlns="http://www.w3.org/2000/svg">']
    x = 0.0
    for key, n, colour in (("on_time", on_time, GREEN), ("late", late, "#ec7a1c"),
                           ("missed", missed, RED)):
        w = n / total * 100
        parts.append(f'<rect class="{key}" x="{x:.2f}" y="0" width="{w:.2f}" height="12" '
                     f'fill="{colour}" data-value="{n}"/>')
        x += w
    return "".join(parts) + "</svg>"
