"""Texts of 考核 (the monthly measures) and 满意度测评 (the survey of 邻长)."""

from __future__ import annotations

ZH: dict[str, str] = {
    "kaohe_bad_month": "月份应写成 YYYY-MM（如 2026-03），“{month}”不是有效的月份。",
    "kaohe_bad_year": "年份应在 2000 至 2100 之间，“{year}”不是有效的年份。",
    # 满意度测评
    "survey_default_text": "满意度测评：您对本邻邻长的工作满意吗？",
    "survey_ask": "\n请为您所在邻的邻长打分：1分很不满意，5分很满意。改主意了可以再按一次。",
    "survey_btn_1": "1分", "survey_btn_2": "2分", "survey_btn_3": "3分", "survey_btn_4": "4分",
    "survey_btn_5": "5分",
    "survey_thanks": "已记录：{score}分。谢谢您的评价！",
    "survey_changed": "已改为{score}分。",
    "survey_same": "您已打过{score}分，无需再按。",
    "survey_unknown": "这项测评不存在",
    "survey_score_bad": "请按1到5分的按钮打分",
    "survey_not_yours": "这项测评是请本邻居民为邻长打分的，您不在这次测评的居民名单中，谢谢关心",
    "survey_closed": "这项测评已结束",
    "survey_no_leader": "您所在的邻暂时没有邻长，这次不用打分",
}

EN: dict[str, str] = {
    "kaohe_bad_month": "A month is written YYYY-MM (e.g. 2026-03); “{month}” is not a month.",
    "kaohe_bad_year": "A year must lie between 2000 and 2100; “{year}” does not.",
    "survey_default_text": "Satisfaction survey: are you satisfied with your 邻长's work?",
    "survey_ask": ("\nPlease rate your neighbourhood's 邻长: 1 very dissatisfied, 5 very "
                   "satisfied. Changed your mind? Press again."),
    "survey_btn_1": "1", "survey_btn_2": "2", "survey_btn_3": "3", "survey_btn_4": "4",
    "survey_btn_5": "5",
    "survey_thanks": "Recorded: {score}. Thank you!",
    "survey_changed": "Changed to {score}.",
    "survey_same": "You already gave {score}; nothing to change.",
    "survey_unknown": "this survey does not exist",
    "survey_score_bad": "please press one of the buttons 1 to 5",
    "survey_not_yours": ("this survey asks the residents of a neighbourhood about their 邻长, "
                         "and you are not among them; thank you all the same"),
    "survey_closed": "this survey has ended",
    "survey_no_leader": "your neighbourhood has no 邻长 at present: nothing to rate",
}
