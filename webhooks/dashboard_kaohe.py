"""The 考核 pages: a month's 签收率, 按时办结率, 满意率, 回访率, 重办率 and 超期件数 of a
subtree, its tiers, the rankings of towns, villages and departments, the 邻长 scorecard, and
the year's 最美邻长 shortlist; each as XLSX. Read from the rollups (core/kaohe/read.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.flows.texts import TEXTS, t
from core.cases.policy import CasePolicy
from core.container import Container
from core.db import session_scope, write_session
from core.errors import DomainError, InvalidInput
from core.hierarchy.queries import NodeRef
from core.kaohe import read
from core.kaohe.measures import Kaohe
from core.notices import survey
from webhooks.dashboard_auth import SignedIn, check_csrf, e
from webhooks.dashboard_views import _crumb_html, _qs, crumbs, page, pct, role_zh
from webhooks.dashboard_xlsx import pct_cell, xlsx
from webhooks.http_errors import as_http

ON_PAGE = 30  # rows of a ranking shown on the page; the XLSX holds them all
MEASURES = ("签收率", "按时办结率", "满意率", "回访率", "重办率", "超期件数")
SCORE_NOTE = "得分=按时办结率40+签收率30+满意率20+(1−重办率)10"


def _month(c: Container, month: str | None) -> str:
    """The month asked for (this month by default), checked: a bad one is a 400."""
    chosen = month or c.clock.now().astimezone(c.tz).strftime("%Y-%m")
    try:
        read.month_span(chosen)
    except InvalidInput as exc:
        raise as_http(exc, 400) from None
    return chosen


def _year(c: Container, year: str | None) -> int:
    try:
        y = int(year) if year else c.clock.now().astimezone(c.tz).year
        read.year_span(y)
    except ValueError:
        raise as_http(InvalidInput("kaohe_bad_year", year=year), 400) from None
    except InvalidInput as exc:
        raise as_http(exc, 400) from None
    return y


def _td(label: str, value: object, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<td data-label="{label}"{klass}>{value}</td>'


def _cells(k: Kaohe) -> str:
    return (f'{_td("收到", k.received, "num")}{_td("签收率", pct(k.accept_rate), "num")}'
            f'{_td("按时办结率", pct(k.on_time_close_rate), "num")}'
            f'{_td("满意率", pct(k.satisfied_rate), "num")}'
            f'{_td("回访率", pct(k.visit_rate), "num")}{_td("重办率", pct(k.redo_rate), "num")}'
            f'{_td("超期件数", k.overdue, "num")}{_td("得分", f"<b>{k.score}</b>", "num")}')


_HEAD = "".join(f"<th>{h}</th>" for h in ("收到", *MEASURES, "得分"))


def _ranking_table(cls: str, first: str, rows: list[read.Row], link: Any,
                   extra: Any = None) -> str:
    """A ranking; `extra(row)` adds the 测评 cell (the 邻长 scorecard)."""
    body = "".join(f'<tr>{_td("名次", r.rank)}{_td(first, link(r))}{_cells(r.k)}'
                   f'{extra(r) if extra else ""}</tr>' for r in rows[:ON_PAGE])
    more = (f'<p class="muted">共 {len(rows)} 个，页面显示前 {ON_PAGE} 个；完整名单请导出。</p>'
            if len(rows) > ON_PAGE else "")
    head = _HEAD + ("<th>测评</th>" if extra else "")
    return (f'<table class="{cls} cards"><thead><tr><th>名次</th><th>{first}</th>{head}</tr>'
            f'</thead><tbody>{body or _EMPTY}</tbody></table>{more}')


def _survey_cell(rep: read.MonthReport, flagged: set[int]) -> Any:
    def cell(r: read.Row) -> str:
        x = rep.survey.get(r.unit.id)
        shown = "—" if x is None else f"{x.mean:.2f}（{x.answers}人）"
        warn = ' <b class="warn">需调整</b>' if r.unit.id in flagged else ""
        return _td("测评", shown + warn, "num")
    return cell


def _survey_section(c: Container, rep: read.MonthReport, csrf: str, month: str,
                    msg: str | None) -> str:
    """满意度测评: start one for this subtree, and the 邻长 flagged 需调整 this month."""
    s = c.settings
    at = rep.scope
    flagged = "".join(
        f'<tr>{_td("邻长", e(r.unit.name))}{_td("村(社区)", e(r.unit.place))}'
        f'{_td("测评均分", f"{rep.survey[r.unit.id].mean:.2f}", "num")}'
        f'{_td("答卷数", rep.survey[r.unit.id].answers, "num")}</tr>' for r in rep.adjust)
    note = f'<p class="error">{e(msg)}</p>' if msg else ""
    none = '<tr><td colspan="4" class="empty">本月没有需调整的邻长</td></tr>'
    return f"""<section class="card" id="survey"><h2>满意度测评 <small>本月发起的测评；均分低于
{s.survey_adjust_below:g}分且不少于{s.survey_adjust_min_answers}人作答的邻长标为需调整</small>
</h2>{note}<form class="filters" method="post" action="/dashboard/kaohe/survey">
<input type="hidden" name="csrf" value="{e(csrf)}">
<input type="hidden" name="month" value="{e(month)}">
<label>范围编码<input name="node_code" value="{e(at.code)}" required></label>
<label>说明（可不填）<input name="text" maxlength="500"
placeholder="满意度测评：您对本邻邻长的工作满意吗？"></label>
<button>向居民发起测评</button></form>
<p class="muted">每位有聊天账号的居民收到一条消息和1–5分五个按钮；再按一次即改分，不重复计数。</p>
<table class="kadjust cards"><thead><tr><th>邻长</th><th>村(社区)</th><th>测评均分</th>
<th>答卷数</th></tr></thead><tbody>{flagged or none}
</tbody></table></section>"""


_EMPTY = '<tr><td colspan="10" class="empty">没有达到样本量的单位</td></tr>'


def _few(rows: list[read.Row]) -> str:
    if not rows:
        return ""
    names = "、".join(e(r.unit.name) for r in rows[:30] if r.unit.name)
    if not names:
        return f'<p class="muted">样本不足未排名：{len(rows)} 人</p>'
    return f'<p class="muted">样本不足未排名：{names}{"等" if len(rows) > 30 else ""}</p>'


def kaohe_body(c: Container, rep: read.MonthReport, path: list[NodeRef], month: str,
               csrf: str = "", msg: str | None = None) -> str:
    """The 考核 page's HTML below the frame."""
    at = rep.scope
    t = rep.total
    q = _qs(node=at.code, month=month)
    fresh = ('<p class="muted">考核按月汇总，尚未汇总</p>' if rep.as_of is None else
             f'<p class="muted">考核按月汇总，数据截至 '
             f'{rep.as_of.astimezone(c.tz):%m-%d %H:%M}</p>')
    kpis = "".join(f'<div><b id="k-{k}">{v}</b>{label}</div>' for k, v, label in (
        ("accept", pct(t.accept_rate), "签收率"), ("ontime", pct(t.on_time_close_rate),
                                                   "按时办结率"),
        ("satisfied", pct(t.satisfied_rate), "满意率"), ("visit", pct(t.visit_rate), "回访率"),
        ("redo", pct(t.redo_rate), "重办率"), ("overdue", t.overdue, "超期件数"),
        ("score", t.score, "得分")))
    tiers = "".join(f'<tr data-role="{e(role)}">{_td("层级", e(role_zh(role) or "未分派"))}'
                    f'{_cells(k)}</tr>' for role, k in rep.tiers) or \
        '<tr><td colspan="9" class="empty">本月没有工单</td></tr>'

    def node_link(r: read.Row) -> str:
        return f'<a href="/dashboard/kaohe?{_qs(node=r.unit.code, month=month)}">' \
               f'{e(r.unit.name)}</a>'

    def plain(r: read.Row) -> str:
        return e(r.unit.name)

    def leader(r: read.Row) -> str:
        return f'{e(r.unit.name)} <small class="muted">{e(r.unit.place)}</small>'

    min_cases = c.settings.dashboard_min_cases
    sections = []
    for title, cls, rk, link in (("乡镇(街道)排名", "towns", rep.towns, node_link),
                                 ("村(社区)排名", "villages", rep.villages, node_link),
                                 ("职能部门排名", "depts", rep.departments, plain)):
        if rk.ranked or rk.too_few:
            sections.append(f'<section class="card"><h2>{title} <small>{SCORE_NOTE}；少于'
                            f'{min_cases}件不参与排名</small></h2>'
                            f'{_ranking_table(cls, "单位", rk.ranked, link)}{_few(rk.too_few)}'
                            f'</section>')
    return f"""{_crumb_html(path, "/dashboard/kaohe", month=month)}<h1>考核 · {e(at.name)}</h1>
<form class="filters" method="get"><input type="hidden" name="node" value="{e(at.code)}">
<label>月份<input type="month" name="month" value="{e(month)}"></label>
<button>查看</button> <a class="btn" href="/dashboard/kaohe/export.xlsx?{q}">导出 Excel</a>
<a class="btn" href="/dashboard/kaohe/shortlist?{_qs(node=at.code, year=month[:4])}">最美邻长</a>
</form>{fresh}<div class="kpis">{kpis}</div>
<section class="card"><h2>各层级 <small>按工单首先分派到的层级</small></h2>
<table class="ktiers cards"><thead><tr><th>层级</th>{_HEAD}</tr></thead><tbody>{tiers}
</tbody></table></section>
{"".join(sections)}
<section class="card"><h2>邻长考核 <small>工单记在首先分派到的邻长名下；{SCORE_NOTE}；
少于{min_cases}件不参与排名</small></h2>
{_ranking_table("kleaders", "邻长", rep.leaders.ranked, leader,
                _survey_cell(rep, {r.unit.id for r in rep.adjust}))}{_few(rep.leaders.too_few)}
</section>{_survey_section(c, rep, csrf, month, msg)}"""


def _row(rank: int | None, unit: read.Unit, k: Kaohe, *extra: Any) -> list[Any]:
    return [rank, *extra, unit.name, k.received, k.merged, pct_cell(k.accept_rate),
            pct_cell(k.on_time_close_rate), pct_cell(k.satisfied_rate), pct_cell(k.visit_rate),
            pct_cell(k.redo_rate), k.overdue,
            None if k.mean_rating is None else round(k.mean_rating, 2), k.score]


_XHEAD = ["收到", "合并", *MEASURES, "平均满意度", "得分"]


def kaohe_sheets(rep: read.MonthReport, month: str) -> list[tuple[str, list[list[Any]]]]:
    t = rep.total
    summary: list[list[Any]] = [["指标", "数值"], ["范围", rep.scope.name], ["月份", month],
                                ["收到", t.received], ["合并", t.merged],
                                ["签收率", pct_cell(t.accept_rate)],
                                ["按时办结率", pct_cell(t.on_time_close_rate)],
                                ["满意率", pct_cell(t.satisfied_rate)],
                                ["回访率", pct_cell(t.visit_rate)],
                                ["重办率", pct_cell(t.redo_rate)], ["超期件数", t.overdue],
                                ["得分", t.score]]
    tiers = [["层级", *_XHEAD]] + [_row(None, read.Unit("tier", 0, role_zh(r) or "未分派"), k)[1:]
                                  for r, k in rep.tiers]
    sheets: list[tuple[str, list[list[Any]]]] = [("概况", summary), ("各层级", tiers)]
    for title, rk in (("乡镇排名", rep.towns), ("村社区排名", rep.villages),
                      ("部门排名", rep.departments)):
        if rk.ranked or rk.too_few:
            sheets.append((title, [["名次", "编码", "单位", *_XHEAD]] + [
                _row(r.rank, r.unit, r.k, r.unit.code) for r in rk.ranked + rk.too_few]))
    flagged = {r.unit.id for r in rep.adjust}

    def tested(pid: int) -> list[Any]:
        x = rep.survey.get(pid)
        return [None if x is None else round(x.mean, 2), None if x is None else x.answers,
                "需调整" if pid in flagged else ""]

    seen = {r.unit.id for r in rep.leaders.ranked + rep.leaders.too_few}
    sheets.append(("邻长考核", [["名次", "乡镇(街道)", "村(社区)", "邻长", *_XHEAD, "测评均分",
                                 "测评人数", "测评结论"]] + [
        _row(r.rank, r.unit, r.k, r.unit.town.name if r.unit.town else "", r.unit.place)
        + tested(r.unit.id)
        for r in rep.leaders.ranked + rep.leaders.too_few + [
            x for x in rep.adjust if x.unit.id not in seen]]))
    return sheets


def shortlist_body(c: Container, sl: read.Shortlist, at: NodeRef, path: list[NodeRef]) -> str:
    blocks = []
    for town, rows in sl.towns:
        trs = "".join(f'<tr>{_td("名次", i)}{_td("邻长", e(r.unit.name))}'
                      f'{_td("村(社区)", e(r.unit.place))}{_cells(r.k)}</tr>'
                      for i, r in enumerate(rows, 1))
        blocks.append(f'<section class="card"><h2>{e(town.name)}</h2><table class="shortlist '
                      f'cards"><thead><tr><th>名次</th><th>邻长</th><th>村(社区)</th>{_HEAD}'
                      f'</tr></thead><tbody>{trs}</tbody></table></section>')
    q = _qs(node=at.code, year=sl.year)
    return f"""{_crumb_html(path, "/dashboard/kaohe/shortlist", year=sl.year)}
<h1>{sl.year}年度最美邻长候选 · {e(at.name)}</h1>
<form class="filters" method="get"><input type="hidden" name="node" value="{e(at.code)}">
<label>年份<input type="number" name="year" min="2000" max="2100" value="{sl.year}"></label>
<button>查看</button> <a class="btn" href="/dashboard/kaohe/shortlist.xlsx?{q}">导出 Excel</a>
</form><p class="muted">每个乡镇(街道)按全年{SCORE_NOTE}排前几名；全年少于{sl.min_cases}件的邻长
不参与评选。</p>
{"".join(blocks) or '<section class="card"><p class="empty">没有达到样本量的邻长</p></section>'}"""


def _said(key: str | None) -> str | None:
    """The sentence of a refusal key from the survey form (a notice's or a survey's only)."""
    if not key or not key.startswith(("notice_", "survey_", "person_", "node_")) \
            or key not in TEXTS["zh"]:
        return None
    try:
        return t("zh", key)
    except (KeyError, IndexError):
        return "没能发起测评，请检查范围编码后重试。"


def router(c: Container) -> APIRouter:
    r = APIRouter()
    min_cases = c.settings.dashboard_min_cases

    adjust = read.Adjust(c.settings.survey_adjust_below, c.settings.survey_adjust_min_answers)

    @r.get("/dashboard/kaohe", response_class=HTMLResponse, include_in_schema=False)
    def kaohe_page(v: SignedIn, node: str | None = None, month: str | None = None,
                   msg: str | None = None) -> HTMLResponse:
        chosen = _month(c, month)
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            rep = read.month_report(s, scope=at, month=chosen, min_cases=min_cases, tz=c.tz,
                                    adjust=adjust)
            path = crumbs(s, v, at)
        body = kaohe_body(c, rep, path, chosen, v.csrf, _said(msg))
        return page(c, v, f"考核 · {at.name}", body, active="kaohe")

    @r.post("/dashboard/kaohe/survey", include_in_schema=False)
    def survey_post(v: SignedIn, csrf: str = Form(""), node_code: str = Form(""),
                    text: str = Form(""), month: str = Form("")) -> Response:
        """Start a 满意度测评 for a subtree the official holds; its receipts page follows."""
        check_csrf(v, csrf)
        back = {"node": node_code[:40] or None, "month": month[:7] or None}
        try:
            with write_session(c.engine) as s:
                at = v.node(s, node_code[:40] or None)
                sent = survey.start(s, who=v.who, node=at, now=c.clock.now(),
                                    text=text[:500].strip() or t("zh", "survey_default_text"),
                                    policy=CasePolicy.from_settings(c.settings))
        except DomainError as exc:
            # A key, never the words: a link of someone else's making shows none of theirs.
            return RedirectResponse(f"/dashboard/kaohe?{_qs(**back, msg=exc.key)}#survey",
                                    status_code=303)
        return RedirectResponse(f"/dashboard/notices/{sent.notice_id}", status_code=303)

    @r.get("/dashboard/kaohe/export.xlsx", include_in_schema=False)
    def kaohe_export(v: SignedIn, node: str | None = None, month: str | None = None
                     ) -> Response:
        chosen = _month(c, month)
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            rep = read.month_report(s, scope=at, month=chosen, min_cases=min_cases,
                                    all_leaders=True, tz=c.tz, adjust=adjust)
        resp = xlsx(kaohe_sheets(rep, chosen))
        name = f"kaohe-{at.code}-{chosen}.xlsx"
        resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return resp

    @r.get("/dashboard/kaohe/shortlist", response_class=HTMLResponse, include_in_schema=False)
    def shortlist_page(v: SignedIn, node: str | None = None, year: str | None = None
                       ) -> HTMLResponse:
        y = _year(c, year)
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            sl = read.shortlist(s, scope=at, year=y, min_cases=min_cases)
            path = crumbs(s, v, at)
        return page(c, v, f"最美邻长 · {at.name}", shortlist_body(c, sl, at, path),
                    active="kaohe")

    @r.get("/dashboard/kaohe/shortlist.xlsx", include_in_schema=False)
    def shortlist_export(v: SignedIn, node: str | None = None, year: str | None = None
                         ) -> Response:
        y = _year(c, year)
        with session_scope(c.engine) as s:
            at = v.node(s, node)
            sl = read.shortlist(s, scope=at, year=y, min_cases=min_cases)
        rows: list[list[Any]] = [["名次", "乡镇(街道)", "村(社区)", "邻长", *_XHEAD]]
        for town, picked in sl.towns:
            rows += [_row(i, x.unit, x.k, town.name, x.unit.place)
                     for i, x in enumerate(picked, 1)]
        resp = xlsx([("最美邻长", rows)])
        resp.headers["Content-Disposition"] = f'attachment; filename="zuimei-{at.code}-{y}.xlsx"'
        return resp

    return r
