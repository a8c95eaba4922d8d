"""Duplicates and "me too": the offer to a resident, its answers, and the leader's hint."""

from __future__ import annotations

ZH: dict[str, str] = {
    "dupe_ask": "已收到，工单#{case}。附近已有人反映过类似问题，是不是这件事？",
    "dupe_choice": "#{case} {summary}（{n}人反映）",
    "dupe_none_button": "不是，新问题",
    "dupe_joined": "好的，已把您的反映并入工单#{case}（现{n}人反映），处理进展会告诉您。",
    "dupe_kept": "好的，按新问题办理，工单#{case}。",
    "dupe_not_yours": "这不是您的反映，不能替别人选择。",
    "dupe_not_offered": "工单#{case}不在您附近，不能并入。您的反映照常办理。",
    "dupe_report_moved_on": "工单#{case}已在办理，不再合并，照常办理。",
    "dupe_target_ended": "工单#{case}已结束，您的反映按新问题办理：工单#{own}。",
    "n_supporters": "（{n}人反映）",
    "n_maybe_dupe": "可能重复：{cases}",
    "n_btn_merge_into": "合并到#{case}",
    "merged_done": "已把工单#{case}合并。",
    "n_verb_merged_in": "并入了一件重复反映",
}

EN: dict[str, str] = {
    "dupe_ask": ("Received, case #{case}. Neighbours reported something similar nearby. "
                 "Is it this one?"),
    "dupe_choice": "#{case} {summary} ({n} reported)",
    "dupe_none_button": "No, a new problem",
    "dupe_joined": ("Thank you: your report is added to case #{case} ({n} reports now); "
                    "you will hear of its progress."),
    "dupe_kept": "Fine, it is handled as a new problem: case #{case}.",
    "dupe_not_yours": "This is not your report; you cannot choose for somebody else.",
    "dupe_not_offered": ("Case #{case} is not near you and cannot be joined. Your report is "
                         "handled as usual."),
    "dupe_report_moved_on": "Case #{case} is already being handled; it stays as it is.",
    "dupe_target_ended": ("Case #{case} has been finished; your report is handled as a new "
                          "problem: case #{own}."),
    "n_supporters": " ({n} reported)",
    "n_maybe_dupe": "Possible duplicate: {cases}",
    "n_btn_merge_into": "Merge into #{case}",
    "merged_done": "Case #{case} merged.",
    "n_verb_merged_in": "took in a duplicate report",
}
