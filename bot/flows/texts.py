"""What the bot says, Chinese first, English on request (/lang en)."""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "how_to_join": ("您好！我是邻长制服务助手。请点下方“分享手机号”按钮，"
                        "或扫描您所在楼栋邻长张贴的二维码加入。\n"
                        "您刚才发的内容已保存，加入后会自动转给您的邻长，不会丢失。"),
        "share_phone": "📱 分享手机号",
        "kept_pending": "已保存您的反映。加入后将立即转给您的邻长。",
        "phone_not_found": ("没有找到手机号 {phone} 的登记信息。请扫描邻长张贴的二维码加入，"
                            "或联系您的邻长登记。您发的内容已保存。"),
        "welcome_resident": ("欢迎，{name}！您已加入{home}。\n"
                             "有任何问题，直接发文字、照片、语音或位置给我，"
                             "我会马上转给您的邻长，4小时内答复。\n发 /my 查看您反映的问题。"),
        "welcome_leader": ("欢迎，{name}（{roles}）。\n新工单会发到这里；点工单下方按钮受理、"
                           "答复或转上级，也可以直接“回复”工单消息答复居民。\n"
                           "/cases 待办  /overdue 超时  /help 帮助"),
        "pending_routed": "您加入前反映的 {n} 条内容已转给邻长。",
        "added": "已补充到工单#{case}。如果这是另一个问题，请点下方按钮单独立案。",
        "new_case_button": "这是新问题",
        "split_done": "已单独立案。",
        "ask_category": "为了更快转给对的人，请选一个类别（可跳过）：",
        "category_set": "已记录类别：{category}",
        "emergency": ("⚠️ 如有火情、燃气泄漏、打架或有人受伤，请立即拨打 "
                      "119（火警）/ 110（报警）/ 120（急救）！"),
        "my_none": "您还没有反映过问题。直接发文字、照片或语音给我即可。",
        "my_header": "您反映的问题：",
        "no_cases": "目前没有待办工单。",
        "cases_header": "待办工单（{scope}）：",
        "overdue_header": "超时工单（{scope}）：",
        "prompt_reply": "请输入给居民的答复（文字、图片或语音），发 /cancel 取消：",
        "prompt_escalate": "请说明转上级的原因（例如：解决不了，需要上级协调），发 /cancel 取消：",
        "prompt_ask_more": "请输入需要居民补充的内容，发 /cancel 取消：",
        "prompt_add": "请发送要补充的文字、照片或语音，发 /cancel 取消：",
        "prompt_reject": "请说明驳回原因，发 /cancel 取消：",
        "cancelled": "已取消。",
        "prompt_closed": "这一步没有完成，已退出输入；您接下来发的消息会照常处理。",
        "prompt_closed_words": ("这一步没有完成，已退出输入。您写的内容没有发出，"
                                "需要时可复制重发：\n{words}"),
        "add_refiled": "{reason}。您刚才发的内容已作为新的反映记下，不会丢失。",
        "done": "已完成。",
        "accepted": "已受理工单#{case}。",
        "replied": "已把答复转给居民（工单#{case}）。",
        "resolved": "工单#{case}已标记为已解决，等待居民确认。可回复工单消息补发整改后照片。",
        "escalated": "工单#{case}已转上级。",
        "whistled": "工单#{case}已吹哨转交职能部门。",
        "pick_whistle_category": "吹哨前请选择问题类别：",
        "asked_more": "已请居民补充（工单#{case}）。",
        "rated": "感谢您的评价！工单#{case}已办结。",
        "reopened": "已反馈未解决，工单#{case}已重新交给承办人处理。",
        "not_a_case_reply": "请“回复”某条工单消息来答复，或发 /cases 查看待办。",
        "leader_free_text": ("如需答复居民，请“回复”对应的工单消息；发 /cases 查看待办。"
                             "如果您自己要反映问题，请先加入所在的邻。"),
        "stale": "{detail}",
        "denied": "抱歉，{detail}",
        "invalid": "抱歉，{detail}",
        "not_found": "抱歉，{detail}",
        "conflict": "{detail}",
        "busy": "抱歉，系统暂时繁忙，您的消息已保存，我们会尽快处理。",
        "unknown_command": "不认识的命令 /{command}。发 /help 查看可用命令。",
        "admin_only": "抱歉，/{command} 只有管理员可以使用。",
        "leaders_only": "抱歉，/{command} 只有邻长及以上人员可以使用。",
        "usage": "用法：{usage}",
        "lang_set": "已切换为中文。",
        "slow_down": "您发得太快了，请稍等一分钟再发。已收到的内容都已保存。",
        "group_only_admin_bind": "只有该网格的管理员可以绑定群。",
        "bound": "本群已绑定到 {node}（{tier}）。工单卡片会同步到这里。",
        "unbound": "本群已解除绑定。",
        "invite": ("{node} 的邀请链接：\n{link}\n请打印二维码张贴在楼道，居民扫码即可加入。"
                   "\n二维码海报：{poster}"),
        "help_resident": ("直接发文字、照片、语音、视频或位置即可反映问题。\n"
                          "/my 我的问题  /lang en English  /help 帮助"),
        "help_leader": ("/cases 待办工单  /overdue 超时工单  /invite 本邻邀请码  /revoke 作废邀请\n"
                        "回复工单消息即可答复居民；按钮：受理、已解决、转上级、请居民补充、吹哨。"),
        "help_admin": ("/stats [编码] 统计  /overdue [编码] 超时  /case <编号> 工单记录\n"
                       "/find <姓名|手机号|编码>  /assign <手机号> <角色> <编码>\n"
                       "/bind <编码>（在群里）  /unbind  /import（发送表格文件）  /export\n"
                       "/invite <手机号> 为本辖区干部生成个人邀请（链接、二维码、“绑定 邀请码”）"
                       "  /revoke <邀请码> 作废邀请"),
        "import_send_file": "请把 nodes/members/categories 的 CSV 或 XLSX 文件作为附件发给我。",
        "import_ok": "导入成功：{summary}",
        "import_failed": "导入失败，数据库未做任何改动。问题行：\n{errors}",
        "export_ready": "导出完成：{nodes} 个网格，{members} 条人员记录。",
        "export_masked": ("手机号和住址已部分隐藏（村/社区及以下导出的人员名单），"
                          "此文件不能再导入。"),
        "export_private_only": "/export 的名单含个人信息，请在与我的私聊中使用。",
        "phone_typed": ("收到您发的手机号。如果这是登记在册的居民号码，我们会请您所在的邻长确认"
                        "是您本人，确认后马上通知您，您之前发的内容也会一并转过去。\n"
                        "邻长、组长、片长、书记、部门和管理员请使用管理员发给您的个人邀请"
                        "（链接、二维码，或在这里发送“绑定 邀请码”）。"),
        "bind_ask": "{name}（{home}）想绑定{platform}，是本人吗？",
        "bind_yes": "是",
        "bind_no": "不是",
        "bind_done_yes": "已确认，{name}的账号已绑定。谢谢！",
        "bind_done_no": "已记录：不是{name}本人，没有绑定。谢谢！",
        "bind_refused": ("您的邻长没有确认这个手机号是您本人的，暂时没有绑定。"
                         "如有疑问，请直接联系您的邻长。"),
        "bind_code_malformed": "邀请码格式不对，请按“绑定 ABCD-2345”的格式发送（8位字母和数字）。",
        "leader_needs_invite": ("您的账号是凭手机号绑定的，只能以居民身份使用。"
                                "干部和管理员的账号请用管理员发给您的个人邀请绑定"
                                "（链接、二维码或“绑定 邀请码”）。"),
        "login_needs_proof": ("抱歉，这个聊天账号不能用来登录管理后台：它是凭手机号或"
                              "邀请海报绑定的，无法证明是您本人。请向您的管理员索取个人邀请（链接、二维码或"
                              "“绑定 邀请码”），绑定后再发 /login。"),
        "person_invite": ("{name}（{roles}）的个人邀请，{days}天内有效，只能使用一次，"
                          "请只发给本人：\n"
                          "· 微信公众号或企业微信里发送：绑定 {code}\n"
                          "· Telegram：{telegram}\n· 网页聊天：{web}\n· 二维码：{qr}\n"
                          "如需作废，发送 /revoke {code}"),
        "invite_revoked": "邀请 {code} 已作废。",
    },
    "en": {
        "how_to_join": ("Hello! Please tap “Share my phone number” below, or scan the QR poster "
                        "your neighbor leader put up. What you sent is kept and reaches your "
                        "neighbor leader as soon as you join."),
        "share_phone": "📱 Share my phone number",
        "kept_pending": "Saved. It goes to your neighbor leader as soon as you join.",
        "phone_not_found": ("No record for {phone}. Please scan your neighbor leader's QR poster "
                            "or ask them to register you. What you sent is kept."),
        "welcome_resident": ("Welcome, {name}! You joined {home}. Send text, photos, voice or a "
                             "location any time; your neighbor leader answers within 4 hours. "
                             "/my lists your reports."),
        "welcome_leader": ("Welcome, {name} ({roles}). New cases arrive here; use the buttons or "
                           "reply to a case message to answer. /cases /overdue /help"),
        "pending_routed": "{n} message(s) you sent before joining went to your neighbor leader.",
        "added": "Added to case #{case}. If this is a different problem, tap below.",
        "new_case_button": "This is a new problem",
        "split_done": "Filed as a separate case.",
        "ask_category": "To reach the right people faster, pick a category (optional):",
        "category_set": "Category noted: {category}",
        "emergency": ("⚠️ Fire, gas leak, a fight or someone hurt? Call 119 (fire) / 110 "
                      "(police) / 120 (ambulance) now!"),
        "my_none": "You have not reported anything yet. Just send me text, a photo or voice.",
        "my_header": "Your reports:",
        "no_cases": "Nothing waiting.",
        "cases_header": "Open cases ({scope}):",
        "overdue_header": "Overdue cases ({scope}):",
        "prompt_reply": "Type your answer to the resident (text, photo or voice); /cancel to stop:",
        "prompt_escalate": "Why does it go up a tier? /cancel to stop:",
        "prompt_ask_more": "What should the resident add? /cancel to stop:",
        "prompt_add": "Send the text, photo or voice to add; /cancel to stop:",
        "prompt_reject": "Why is it rejected? /cancel to stop:",
        "cancelled": "Cancelled.",
        "prompt_closed": "That step did not go through; the prompt is closed, and your next "
                         "message is handled as usual.",
        "prompt_closed_words": ("That step did not go through; the prompt is closed. What you "
                                "wrote was not sent; copy it if you need it:\n{words}"),
        "add_refiled": "{reason}. What you just sent is kept as a new report.",
        "done": "Done.",
        "accepted": "Case #{case} accepted.",
        "replied": "Your answer went to the resident (case #{case}).",
        "resolved": "Case #{case} marked resolved; waiting for the resident to confirm.",
        "escalated": "Case #{case} went up a tier.",
        "whistled": "Case #{case} was handed to the department.",
        "pick_whistle_category": "Pick the category before whistling:",
        "asked_more": "Asked the resident for more (case #{case}).",
        "rated": "Thank you! Case #{case} is closed.",
        "reopened": "Noted as not fixed; case #{case} is back with its holder.",
        "not_a_case_reply": "Reply to a case message to answer it, or send /cases.",
        "leader_free_text": "To answer a resident, reply to the case message; /cases lists them.",
        "stale": "{detail}",
        "denied": "Sorry, {detail}",
        "invalid": "Sorry, {detail}",
        "not_found": "Sorry, {detail}",
        "conflict": "{detail}",
        "busy": "Sorry, we are busy; your message is saved and will be handled.",
        "unknown_command": "Unknown command /{command}. /help lists what I understand.",
        "admin_only": "Sorry, /{command} is for admins.",
        "leaders_only": "Sorry, /{command} is for neighbor leaders and above.",
        "usage": "Usage: {usage}",
        "lang_set": "Switched to English.",
        "slow_down": "You are sending very fast; please wait a minute. Everything so far is kept.",
        "group_only_admin_bind": "Only an admin of that node may bind a chat.",
        "bound": "This chat is now bound to {node} ({tier}); case cards will appear here.",
        "unbound": "This chat is no longer bound.",
        "invite": "Invite link for {node}:\n{link}\nQR poster: {poster}",
        "help_resident": "Send text, photos, voice, video or a location to report. /my /lang zh",
        "help_leader": "/cases /overdue /invite — reply to a case message to answer it.",
        "help_admin": ("/stats [code] /overdue [code] /case <id> /find <name|phone|code> "
                       "/assign <phone> <role> <code> /bind <code> /unbind /import /export "
                       "/invite <phone> (a personal invite) /revoke <code>"),
        "import_send_file": "Send me the nodes/members/categories CSV or XLSX files.",
        "import_ok": "Imported: {summary}",
        "import_failed": "Import rejected, nothing changed. Bad rows:\n{errors}",
        "export_ready": "Exported {nodes} nodes and {members} member rows.",
        "export_masked": ("Phones and addresses are partly hidden (a roster exported below town"
                          " level); this file cannot be imported."),
        "export_private_only": "/export holds personal data: use it in a private chat with me.",
        "phone_typed": ("Got your number. If it is a registered resident's, we ask their "
                        "neighbor leader to confirm it is you and tell you at once. Leaders and "
                        "admins: please use the personal invite your admin sent you."),
        "bind_ask": "{name} ({home}) wants to bind a {platform} account. Is it really them?",
        "bind_yes": "Yes",
        "bind_no": "No",
        "bind_done_yes": "Confirmed: {name}'s account is bound. Thank you!",
        "bind_done_no": "Noted: not {name}; nothing was bound. Thank you!",
        "bind_refused": "Your neighbor leader did not confirm this number is yours; not bound.",
        "bind_code_malformed": "Please send the invite as “bind ABCD-2345” (8 letters/digits).",
        "leader_needs_invite": ("This account was bound by a typed phone number and acts as a "
                                "resident only. Leaders and admins bind with their admin's "
                                "personal invite."),
        "login_needs_proof": ("Sorry, this chat account cannot sign in to the dashboard: it was "
                              "bound by a phone number or a poster. Ask your admin for a "
                              "personal invite, then send /login again."),
        "person_invite": ("Personal invite for {name} ({roles}), valid {days} days, once:\n"
                          "· WeChat/WeCom: send “bind {code}”\n· Telegram: {telegram}\n"
                          "· Web: {web}\n· QR: {qr}\nTo cancel: /revoke {code}"),
        "invite_revoked": "Invite {code} cancelled.",
    },
}


def t(lang: str | None, key: str, **fields: Any) -> str:
    table = TEXTS.get(lang or "zh", TEXTS["zh"])
    template = table.get(key) or TEXTS["zh"][key]
    return template.format(**fields) if fields else template
