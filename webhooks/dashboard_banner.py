"""The case page's banner after an action, from a fixed set of sentences."""

from __future__ import annotations

from core.errors import DomainError
from webhooks.dashboard_auth import ACTIONS_ZH, e

# The case page's banner after an action: the redirect names one of these keys (a domain
# error's code, or the action done) and the page says the sentence; any other value shows
# nothing, so a crafted link cannot put words of its own on our page.
CASE_ERRORS = {
    "stale_action": "这个工单刚有了新的变化（可能别人已处理），请看下面的最新状态后再操作。",
    "invalid_transition": "工单现在的状态不能做这个操作。",
    "conflict": "操作没有完成：工单现在的情况不允许这样做（已在最高一级的工单不能再转上级，"
                "可以吹哨转职能部门或由管理员改派）。",
    "permission_denied": "您不是这个工单的承办人或其上级，不能做这个操作（已记入处理记录）。",
    "invalid_input": "填写的内容不完整或不对，请检查后再提交（吹哨需要先选定问题类别）。",
    "not_found": "没有找到要操作的工单。",
    "failed": "操作没有完成，请稍后再试。",
}


def error_key(exc: DomainError) -> str:
    """The banner key of a refused action: its own code, else its nearest kind's."""
    for kind in type(exc).__mro__:
        code = getattr(kind, "code", None)
        if code in CASE_ERRORS:
            return str(code)
    return "failed"


def case_banner(*, msg: str | None, ok: str | None) -> str:
    """The banner for a known message key (an error, or an action done); "" for anything else."""
    if msg in CASE_ERRORS:
        return f'<p class="error">{e(CASE_ERRORS[msg])}</p>'
    if not msg and ok in ACTIONS_ZH:
        return f'<p class="ok">{e(ACTIONS_ZH[ok])}：已完成</p>'
    return ""
