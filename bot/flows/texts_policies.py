"""Texts of category policies: working-time deadlines, routing rules and 核查."""

from __future__ import annotations

ZH: dict[str, str] = {
    "n_receipt_by": "已收到您反映的问题，编号{title}。已转{role}{name}，将在{when}前答复您。",
    "category_set_due": "已记录类别：{category}。按此类别的时限，将在{when}前{verb}。",
    "n_routed_info": "【知会】{title}按直派规则{rule}已转{place}{role}{name}处理。",
    "event.routed": "按直派规则分派",
    "event.rerouted": "按直派规则改派",
    "routed_note": "规则{rule}：转{node}",
}

EN: dict[str, str] = {
    "n_receipt_by": ("We received your report, {title}. It went to {role} {name}, who answers "
                     "by {when}."),
    "category_set_due": "Category noted: {category}. Its time limit: {verb} by {when}.",
    "n_routed_info": "[FYI] {title} went by routing rule {rule} to {place} {role} {name}.",
    "event.routed": "routed by rule",
    "event.rerouted": "re-routed by rule",
    "routed_note": "rule {rule}: to {node}",
}
