"""The dashboard's read-only page of category policies and routing rules (类别与直派规则):
what the categories and routing files say, as the deadline engine and the router read them."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlmodel import select

from core.cases.route_rules import all_rules
from core.container import Container
from core.db import session_scope
from core.hierarchy.model import Category, Role
from webhooks.dashboard_auth import SignedIn, e
from webhooks.dashboard_views import page, role_zh

UNIT_ZH = {"m": "分钟", "h": "小时", "d": "天", "wh": "个工作小时", "wd": "个工作日"}


def limit_zh(text: str | None, default: str) -> str:
    """`2wd` → 2个工作日: the page speaks to officials, not in the file's units."""
    if not text:
        return f'<span class="muted">{e(default)}</span>'
    from core.cases.worktime import parse_limit

    lim = parse_limit(text)
    return e(f"{lim.text().removesuffix(lim.unit)}{UNIT_ZH[lim.unit]}")


def route_zh(route_to: str | None) -> str:
    if not route_to:
        return ""
    if route_to in Role.__members__:
        return e(role_zh(route_to))
    return e(f"部门 {route_to}")


def router(c: Container) -> APIRouter:
    r = APIRouter()

    @r.get("/dashboard/policies", response_class=HTMLResponse, include_in_schema=False)
    def policies_page(v: SignedIn) -> HTMLResponse:
        with session_scope(c.engine) as s:
            cats = list(s.exec(select(Category).order_by(sa.text("id"))))
            rules = all_rules(s)
        reply = f"默认 {int(c.settings.reply_deadline.total_seconds() // 3600)}小时"
        handle = f"默认 {int(c.settings.handle_deadline.total_seconds() // 3600)}小时"
        cat_rows = "".join(
            f"<tr><td>{e(k.name)}</td><td>{e(k.parent_name or '')}</td>"
            f"<td>{limit_zh(k.answer_limit, reply)}</td><td>{limit_zh(k.handle_limit, handle)}"
            f"</td><td>{'是' if k.verify else ''}</td><td>{e(k.department_suffix or '')}</td>"
            f"<td>{route_zh(k.route_to)}</td></tr>" for k in cats)
        rule_rows = "".join(
            f"<tr><td>{e(x.rule_id)}</td><td>{e(x.category)}</td><td>{route_zh(x.route_to)}</td>"
            f"<td>{e(x.within_code or '全部')}</td><td>{e(x.hours or '全天')}</td>"
            f"<td>{e('、'.join(role_zh(i) for i in x.inform))}</td></tr>"
            for x in rules) or '<tr><td colspan="6">没有直派规则：各类别的工单先到邻长。</td></tr>'
        body = f"""<h1>类别与直派规则</h1>
<p class="muted">只读：由管理员在控制台导入 categories 与 routing 文件修改。工作日按国务院节假日安排
（含调休）与本地设置计算，工作时间 {e(c.settings.work_hours)}。</p>
<section class="card"><h2>类别</h2><table class="policies"><tr><th>类别</th><th>上级类别</th>
<th>答复时限</th><th>办结时限</th><th>需核查</th><th>责任部门</th><th>直派</th></tr>{cat_rows}
</table></section>
<section class="card"><h2>直派规则（自上而下，先匹配者生效）</h2><table class="rules"><tr>
<th>规则编号</th><th>类别</th><th>直派</th><th>范围</th><th>时段</th><th>知会</th></tr>{rule_rows}
</table></section>"""
        return page(c, v, "类别与直派规则", body, active="policies")

    return r
