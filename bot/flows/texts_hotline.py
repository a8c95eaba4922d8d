"""Texts of the hotline console (webhooks/dashboard_hotline.py, core/hotline.py): its errors
and the receipt an operator reads out to a caller who has no chat."""

from __future__ import annotations

ZH: dict[str, str] = {
    "hotline_phone_invalid": "请输入11位手机号（可带 +86、空格或横线）。",
    "hotline_words_required": "请填写来电人反映的问题，再提交。",
    "hotline_caller_outside": ("来电人住在您的辖区以外，不能在这里代为登记，"
                               "请转给其所在街道或12345。"),
    "hotline_place_required": ("这个号码没有登记住址：请先选择问题发生的邻"
                               "（输入网格编码或按地址查找），或选本辖区办公室。"),
    "hotline_place_outside": "“{name}”不在您的辖区内，请选择辖区内的地点。",
    "hotline_read_aloud": "您反映的问题已登记，编号{case}号，已转给{holder}，{when}前会答复您。",
    "hotline_read_aloud_added": ("您反映的情况已补充到{case}号工单，{holder}会一并处理，"
                                 "{when}前会答复您。"),
}

EN: dict[str, str] = {
    "hotline_phone_invalid": "Enter an 11-digit mobile number (+86, spaces or dashes are fine).",
    "hotline_words_required": "Write down what the caller reports before filing.",
    "hotline_caller_outside": ("The caller lives outside your area: it cannot be filed here; "
                               "pass it to their town or to 12345."),
    "hotline_place_required": ("This number has no registered household: choose the 邻 where "
                               "it happens (a grid code or an address search), or your own "
                               "office."),
    "hotline_place_outside": "\u201c{name}\u201d is outside your area: choose a place inside it.",
    "hotline_read_aloud": ("Your report is filed as case number {case} and went to {holder}; "
                           "you will get an answer by {when}."),
    "hotline_read_aloud_added": ("What you said was added to case number {case}; {holder} "
                                 "handles it and answers you by {when}."),
}
