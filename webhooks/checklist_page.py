"""The HTML of a 邻长's checklist page: large type and tap targets for a phone held at the
door, the households not yet recorded first, no script needed (webhooks/checklist.py)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.flows.campaign import shown_title
from core.campaigns.marking import NOTE_MAX, Item
from core.campaigns.model import NEWCOMER, Campaign
from core.clock import as_utc

e = html.escape

HEAD = ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="same-origin"><meta name="robots" content="noindex">'
        '<title>{title}</title><link rel="stylesheet" href="/checklist/static/checklist.css">'
        '</head><body><main>')
TAIL = "</main></body></html>"


@dataclass(frozen=True)
class View:
    """What one rendering of the page shows."""

    token: str
    form: str
    campaign: Campaign
    items: list[Item]
    places: list[str]
    tz: ZoneInfo
    closed: bool
    flash: str = ""  # the id of the household just recorded
    error: str = ""


def error_page(message: str) -> str:
    """A refused link: the sentence and what to do, nothing else."""
    return (HEAD.format(title="无法打开清单") + '<h1>无法打开清单</h1>'
            f'<p class="error" role="alert">{e(message)}</p>' + TAIL)


def _hidden(v: View, item: Item) -> str:
    return (f'<input type="hidden" name="form" value="{e(v.form)}">'
            f'<input type="hidden" name="item" value="{item.id}">')


def _forms(v: View, item: Item) -> str:
    outcomes = v.campaign.outcomes
    buttons = "".join(
        f'<button class="outcome" name="outcome" value="{k}">{e(o)}</button>'
        for k, o in enumerate(outcomes) if o != NEWCOMER)
    note = e(item.note or "")
    out = (f'<form method="post" action="/checklist/{e(v.token)}/mark" class="mark">'
           f'{_hidden(v, item)}<div class="outcomes">{buttons}</div>'
           f'<label class="note">备注（可不填，点结果时一起保存）'
           f'<textarea name="note" rows="2" maxlength="{NOTE_MAX}">{note}</textarea></label>'
           '</form>')
    if NEWCOMER in outcomes:
        out += (f'<details class="newcomer"><summary>{e(NEWCOMER)}</summary>'
                f'<form method="post" action="/checklist/{e(v.token)}/newcomer">'
                f'{_hidden(v, item)}'
                '<label>姓名<input name="name" maxlength="100" required autocomplete="off">'
                '</label><label>手机号<input name="phone" inputmode="numeric" maxlength="20" '
                'autocomplete="off"></label><p class="hint">提交后由组长确认，再加入名册。</p>'
                '<button class="submit">提交新增人员</button></form></details>')
    return out


def _household(v: View, item: Item) -> str:
    done = item.outcome is not None
    now = (f'<p class="now done">当前：{e(v.campaign.outcomes[item.outcome])}</p>'
           if item.outcome is not None else '<p class="now">未登记</p>')
    note = f'<p class="noted">备注：{e(item.note)}</p>' if item.note else ""
    forms = "" if v.closed else _forms(v, item)
    if done and forms:
        forms = f'<details class="change"><summary>修改结果</summary>{forms}</details>'
    return (f'<section class="hh{" done" if done else ""}" id="h{item.id}">'
            f'<h3>{e(item.address)}</h3>{now}{note}{forms}</section>')


def _flash(v: View) -> str:
    if v.error:
        return f'<p class="error" id="flash" role="alert">{e(v.error)}</p>'
    item = next((i for i in v.items if str(i.id) == v.flash and i.outcome is not None), None)
    if item is None or item.outcome is None:
        return ""
    outcome = v.campaign.outcomes[item.outcome]
    more = "，等组长确认后加入名册" if outcome == NEWCOMER else ""
    return (f'<p class="flash" id="flash" role="status">已保存：{e(item.address)} — '
            f'{e(outcome)}{more}</p>')


def list_page(v: View) -> str:
    """The whole checklist: progress, then the households not yet recorded, then the rest."""
    c = v.campaign
    title = shown_title("zh", c)
    todo = [i for i in v.items if i.outcome is None]
    done = [i for i in v.items if i.outcome is not None]
    deadline = as_utc(c.deadline_at).astimezone(v.tz).strftime("%m月%d日 %H:%M")
    total = len(v.items)
    head = (f'<header><h1>{e(title)}</h1>'
            f'<p class="meta">{e("、".join(v.places))} · 截止 {deadline}</p>'
            f'<p class="progress">已登记 <strong>{len(done)}/{total}</strong> 户</p>'
            f'<progress max="{max(total, 1)}" value="{len(done)}">{len(done)}/{total}</progress>'
            '</header>')
    if c.instructions:
        head += f'<p class="instructions">{e(c.instructions)}</p>'
    if v.closed:
        head += '<p class="closed" role="status">这次摸排已经结束，清单只能查看，不能再登记。</p>'
    body = _flash(v)
    if not v.items:
        body += '<p class="empty">您在这次摸排里没有要登记的住户。</p>'
    if todo:
        body += (f'<h2 id="todo">未登记（{len(todo)}户）</h2>'
                 + "".join(_household(v, i) for i in todo))
    elif v.items:
        body += '<p class="all-done">全部住户都已登记，谢谢您！</p>'
    if done:
        body += (f'<h2 id="done">已登记（{len(done)}户）</h2>'
                 + "".join(_household(v, i) for i in done))
    return HEAD.format(title=e(f"摸排清单 · {title}")) + head + body + TAIL
