"""The figures page (统计): key figures, the weekly trend, cases by category, the tiers'
first answers, the 考核 ranking and the 邻长 ratings. Charts are inline SVG
(webhooks/dashboard_charts.py); every table turns into cards on a phone (`table.cards`)."""

from __future__ import annotations

from datetime import datetime

from core.cases import stats
from core.container import Container
from core.hierarchy.model import Level
from core.hierarchy.queries import NodeRef
from core.hierarchy.tree import LEVEL_LABEL_ZH
from core.reports import RankRow, WeekRow
from core.sms import MonthFigures
from webhooks.dashboard_auth import e
from webhooks.dashboard_charts import category_svg, rate_bar, tier_bars, trend_svg
from webhooks.dashboard_views import _crumb_html, _qs, pct, role_zh, span, tier_roles


def _td(label: str, value: object, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<td data-label="{label}"{klass}>{value}</td>'


def _tiers(f: stats.Figures) -> str:
    rows = []
    for role in tier_roles(f):
        tr = f.on_time_first_reply.get(role, stats.TierRate(0, 0))
        rows.append(
            f'<tr data-role="{e(role)}">{_td("层级", e(role_zh(role)))}'
            f'{_td("按时率", f"{pct(tr.rate)} {rate_bar(tr.rate)}", "num")}'
            f'{_td("按时/超时/未答", f"{tr.on_time} / {tr.late} / {tr.missed}", "num")}'
            f'{_td("构成", tier_bars(tr.on_time, tr.late, tr.missed))}'
            f'{_td("上报", f.escalations.get(role, 0), "num")}</tr>')
    return "".join(rows) or '<tr><td colspan="5" class="empty">—</td></tr>'


def _link(node: NodeRef) -> str:
    return f'<a href="/dashboard/figures?{_qs(node=node.code)}">{e(node.name)}</a>'


def _ranking(ranked: list[RankRow]) -> str:
    return "".join(
        f'<tr>{_td("名次", i)}'
        f'{_td("单位", _link(x.node))}'
        f'{_td("收到", x.received, "num")}'
        f'{_td("办结率", f"{pct(x.resolution_rate)} {rate_bar(x.resolution_rate)}", "num")}'
        f'{_td("按时答复", pct(x.on_time_rate), "num")}'
        f'{_td("满意度", f"{x.mean_rating:.2f}" if x.mean_rating is not None else "—", "num")}'
        f'{_td("得分", f"<b>{x.score}</b>", "num")}</tr>'
        for i, x in enumerate(ranked, 1)
    ) or '<tr><td colspan="7" class="empty">没有达到样本量的单位</td></tr>'


def figures_body(c: Container, *, f: stats.Figures, rolled: bool, as_of: datetime | None,
                 weeks: list[WeekRow], cats: list[stats.CategoryCount], level: Level,
                 ranked: list[RankRow], too_few: list[RankRow], at: NodeRef,
                 path: list[NodeRef], sms: MonthFigures | None = None) -> str:
    """The figures page's HTML below the frame (`sms`: this month's SMS, at the root)."""
    tz = c.tz
    fresh = ("" if not rolled else '<p class="muted">镇、区县的统计按日汇总，尚未汇总</p>'
             if as_of is None else f'<p class="muted">镇、区县的统计按日汇总，数据截至 '
             f'{as_of.astimezone(tz):%m-%d %H:%M}</p>')
    start_day = f.start.astimezone(tz).date()
    end_day = f.end.astimezone(tz).date()
    q = _qs(node=at.code, start=start_day.isoformat(), end=end_day.isoformat())
    few = ("、".join(e(x.node.name) for x in too_few[:30]) + ("等" if len(too_few) > 30 else ""))
    leaders = "".join(f'<tr>{_td("邻长", e(x.name))}{_td("评价数", x.rated, "num")}'
                      f'{_td("平均", f"{x.mean:.2f}", "num")}</tr>'
                      for x in f.rating_by_neighbor_leader[:20])
    rating = f"{f.mean_rating:.2f}" if f.mean_rating is not None else "—"
    return f"""{_crumb_html(path, "/dashboard/figures")}<h1>统计 · {e(at.name)}</h1>
<form class="filters" method="get"><input type="hidden" name="node" value="{e(at.code)}">
<label>从<input type="date" name="start" value="{start_day}"></label>
<label>到(不含)<input type="date" name="end" value="{end_day}"></label>
<button>查看</button> <a class="btn" href="/dashboard/export/figures.xlsx?{q}">导出 Excel</a></form>
{fresh}<div class="kpis"><div><b id="k-received">{f.received}</b>收到</div>
<div><b id="k-closed">{f.closed}</b>办结</div>
<div><b id="k-rate">{pct(f.resolution_rate)}</b>办结率</div>
<div><b>{span(f.median_first_reply_s)}</b>答复用时(中位)</div>
<div><b>{span(f.median_close_s)}</b>办结用时(中位)</div>
<div><b id="k-rating">{rating}</b>平均满意度</div></div>
<section class="card"><h2>每周趋势 <small>周一至周日，按提交时间</small>
<a class="btn small" href="/dashboard/export/weekly.xlsx?{q}">导出</a></h2>
<div class="chart-wrap">{trend_svg(weeks, tz)}</div></section>
<div class="cols"><section class="card"><h2>各层级首次答复 <small>各按本层级自己的期限：
绿 按时 · 橙 超时答复 · 红 未答复(超时转上级)</small></h2>
<table class="tiers cards"><thead><tr><th>层级</th><th>按时率</th><th>按时/超时/未答</th>
<th>构成</th><th>上报</th></tr></thead><tbody>{_tiers(f)}</tbody></table></section>
<section class="card"><h2>按类别</h2><div class="chart-wrap">{category_svg(cats)}</div></section>
</div>
<section class="card"><h2>{LEVEL_LABEL_ZH[level]}考核排名 <small>得分=办结率50+按时答复30+满意度20；
少于{c.settings.dashboard_min_cases}件不参与排名</small>
<a class="btn small" href="/dashboard/export/ranking.xlsx?{q}">导出</a></h2>
<table class="ranking cards"><thead><tr><th>名次</th><th>单位</th><th>收到</th><th>办结率</th>
<th>按时答复</th><th>满意度</th><th>得分</th></tr></thead><tbody>{_ranking(ranked)}</tbody></table>
{f'<p class="muted">样本不足未排名：{few}</p>' if few else ""}
<p class="muted">签收率、按时办结率、重办率等按月考核见<a href="/dashboard/kaohe">考核</a>页。
</p>
</section>
<section class="card"><h2>邻长满意度 <small>评价记在办结这件工单的邻长名下</small></h2>
<table class="leaders cards"><thead><tr><th>邻长</th><th>评价数</th><th>平均</th></tr></thead>
<tbody>{leaders or '<tr><td colspan="3" class="empty">—</td></tr>'}</tbody></table></section>
{_sms(sms, c.settings.sms_cost_fen)}"""


def _sms(sms: MonthFigures | None, cost_fen: int) -> str:
    if sms is None:
        return ""
    return (f'<section class="card" id="sms-month"><h2>本月短信 <small>每条{cost_fen / 100:.2f}元'
            f'</small></h2><div class="kpis"><div><b id="k-sms-sent">{sms.sent}</b>已发送</div>'
            f'<div><b id="k-sms-spent">{sms.spent_fen / 100:.2f}</b>花费(元)</div></div>'
            '</section>')
