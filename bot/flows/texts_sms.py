"""Texts of SMS (bot/handlers/sms): the admins' note when the day's cap is reached. The SMS
themselves are the provider's registered templates: only their parameters come from us."""

from __future__ import annotations

ZH: dict[str, str] = {
    "sms_cap_reached": "今日短信已达上限（{cap}条），其余短信将于明天发送。",
    "sms_urgent_note": "紧急工单#{case}（{category}）：{place}",
}

EN: dict[str, str] = {
    "sms_cap_reached": "Today's SMS cap ({cap}) is reached; the rest go out tomorrow.",
    "sms_urgent_note": "Urgent case #{case} ({category}): {place}",
}
