"""Texts of stand-ins (/away, /back) and canned replies (常用答复)."""

from __future__ import annotations

ZH: dict[str, str] = {
    # /away and /back
    "away_usage": ("用法：/away 3d（请假3天）或 /away 12-05（请假到12月5日），可在后面加代办人的"
                   "手机号或姓名；管理员替别人登记：/away 手机号 3d。回来了发 /back。"),
    "away_set": ("已登记：{who}请假至{until}。期间新工单由{role}{stand_in}代办；"
                 "手上的{n}件工单已交给{stand_in}。提前回来发 /back。"),
    "away_back": "{who}已回来，{stand_in}代办的{n}件工单已交还。",
    "away_status": "{who}正在请假，至{until}，由{stand_in}代办。回来了发 /back。",
    "away_days_range": "请假最长{most}天，请重新输入，例如 /away 3d。",
    "away_until_malformed": "没看懂“{text}”。请写天数（如 3d）或日期（如 12-05）。",
    "away_date_past": "{day}已经过去了，请写今天或以后的日期。",
    "away_not_a_leader": "{name}没有邻长、组长、片长或书记职务，不需要登记请假。",
    "away_outside_scope": "{name}不在您管理的范围内，不能替他登记请假。",
    "away_already": "已在请假中（至{until}），如需改动请先发 /back。",
    "away_stand_in_unknown": "找不到代办人“{text}”，请写手机号或本村干部的姓名。",
    "away_stand_in_ambiguous": "叫“{text}”的有好几位，请改用手机号。",
    "away_stand_in_self": "代办人不能是自己。",
    "away_stand_in_outside": "{name}不在本辖区的干部中，不能代办。请选本组/本片的干部或上级。",
    "away_stand_in_away": "{name}自己也在请假，不能代办。请另选一位。",
    "away_nobody_above": "{name}上面没有可以代办的人，请在命令后写明代办人。",
    "away_not_away": "现在没有请假登记。",
    # Cards and notices
    "n_card_covering": "\n（代{name}办理，{name}请假中）",
    "n_intro_covering": "代办工单",
    "n_intro_back": "交还工单",
    "n_moved_to_stand_in": "{title}在您请假期间由{role}{name}代办。",
    "n_moved_back": "{title}已交还{role}{name}（请假结束）。",
    # 常用答复
    "canned_prompt": ("将发给居民的答复：\n「{text}」\n直接点【按此发送】；想改，就直接回一句话代替"
                      "（发 /cancel 取消）。"),
    "canned_btn_send": "按此发送",
    "canned_gone": "这条常用答复已不存在，请重新点工单上的按钮。",
}

EN: dict[str, str] = {
    "away_usage": ("Usage: /away 3d (away 3 days) or /away 12-05 (away until 5 December), "
                   "optionally followed by the stand-in's phone or name; an admin for someone "
                   "else: /away <phone> 3d. Back again: /back."),
    "away_set": ("Recorded: {who} is away until {until}. New cases go to {role} {stand_in}; "
                 "the {n} open case(s) went to {stand_in}. Back early: /back."),
    "away_back": "{who} is back; {stand_in} handed back {n} case(s).",
    "away_status": "{who} is away until {until}; {stand_in} stands in. Back again: /back.",
    "away_days_range": "At most {most} days away; try e.g. /away 3d.",
    "away_until_malformed": "Could not read “{text}”. Write days (3d) or a date (12-05).",
    "away_date_past": "{day} is in the past; give today or a later date.",
    "away_not_a_leader": "{name} holds no leader post; no absence to record.",
    "away_outside_scope": "{name} is outside the area you administer.",
    "away_already": "Already away (until {until}); send /back first to change it.",
    "away_stand_in_unknown": "No stand-in “{text}” found; give a phone number or a name.",
    "away_stand_in_ambiguous": "Several people are called “{text}”; use the phone number.",
    "away_stand_in_self": "You cannot stand in for yourself.",
    "away_stand_in_outside": ("{name} is not a leader of this area and cannot stand in; "
                              "choose a leader of your group or area, or above."),
    "away_stand_in_away": "{name} is away too and cannot stand in; choose someone else.",
    "away_nobody_above": "Nobody above {name} can stand in; name a stand-in.",
    "away_not_away": "No absence is recorded now.",
    "n_card_covering": "\n(Standing in for {name}, who is away)",
    "n_intro_covering": "Standing in",
    "n_intro_back": "Handed back",
    "n_moved_to_stand_in": "{title} is with {role} {name} while you are away.",
    "n_moved_back": "{title} is back with {role} {name} (absence over).",
    "canned_prompt": ("The answer to send to the resident:\n“{text}”\nPress [Send as is], or "
                      "type your own words instead (/cancel to stop)."),
    "canned_btn_send": "Send as is",
    "canned_gone": "That ready answer no longer exists; press a button on the case again.",
}
