"""Texts of the Open311 GeoReport v2 server: its errors' descriptions and service notices."""

from __future__ import annotations

ZH: dict[str, str] = {
    # Keys (linzhang open311 key …)
    "open311_name_invalid": "客户端名称不能为空，且不超过{most}个字。",
    "open311_name_taken": "已有名为“{name}”的客户端。",
    "open311_client_unknown": "没有名为“{name}”的有效客户端。",
    "open311_key_missing": "缺少 api_key，无法受理。",
    "open311_key_invalid": "api_key 无效，无法受理。",
    "open311_key_revoked": "api_key 已被吊销，无法受理。",
    "open311_outside_scope": "jurisdiction_id 不在本 api_key 的管辖范围内。",
    # Requests
    "open311_service_code_missing": "缺少 service_code。",
    "open311_service_unknown": "没有编号为 {code} 的服务类别。",
    "open311_bad_number": "{field} 不是有效的坐标。",
    "open311_lat_long_pair": "lat 和 long 须同时提供。",
    "open311_field_too_long": "{field} 太长，最多{most}个字符。",
    "open311_bad_date": "{field} 不是带时区的 ISO 8601 时间（例如 2010-01-01T00:00:00Z）。",
    "open311_dates_reversed": "end_date 早于 start_date。",
    "open311_span_too_long": "start_date 到 end_date 不能超过{days}天。",
    "open311_bad_status": "未知状态 {status}（可选 open、closed）。",
    "open311_request_unknown": "没有编号为 {id} 的诉求。",
    "open311_token_unknown": "没有令牌 {token}。",
    "open311_bad_format": "不支持的格式 {format}（可选 json、xml）。",
    "open311_bad_body": "无法读取请求内容。",
    "open311_failed": "诉求未能受理：{reason}",
    # Service notices (service_notice of POST requests)
    "open311_notice_routed": "已转{node}的{role}办理，将在时限内答复。",
    "open311_notice_office": ("按所给{given}未能确定所属的邻，已转{office}办理，"
                              "由其分派。"),
    "open311_notice_no_place": "未提供位置，已转{office}办理，由其分派。",
    "open311_given_coordinates": "坐标",
    "open311_given_address": "地址",
    # Status webhooks (linzhang open311 hook …) and their alerts to the root admins
    "open311_hook_url_invalid": ("webhook 地址须以 http:// 或 https:// 开头并带主机名"
                                 "（最多{most}个字符）。"),
    "open311_hook_unknown": "客户端“{name}”没有 webhook。",
    "open311_hook_dead": ("【警报】{name} 的状态 webhook 一天内未能送达（{url}：{error}），"
                          "该条更新已放弃；请检查对方系统。"),
    "open311_hook_gone": ("【警报】{name} 的状态 webhook 已停用：对方回答 410 Gone（{url}）。"
                          "恢复请重新运行 linzhang open311 hook set。"),
    "n_card_from_system": "\n来自{name}（系统转办）：答复将由该系统读取后转告居民。",
}

EN: dict[str, str] = {
    "open311_name_invalid": "A client name must not be empty, at most {most} characters.",
    "open311_name_taken": "There is already a client named \"{name}\".",
    "open311_client_unknown": "No active client is named \"{name}\".",
    "open311_key_missing": "api_key missing -- can't proceed.",
    "open311_key_invalid": "Invalid api_key received -- can't proceed.",
    "open311_key_revoked": "This api_key was revoked -- can't proceed.",
    "open311_outside_scope": "jurisdiction_id lies outside this api_key's scope.",
    "open311_service_code_missing": "service_code missing.",
    "open311_service_unknown": "No service has the code {code}.",
    "open311_bad_number": "{field} is not a valid coordinate.",
    "open311_lat_long_pair": "lat and long must be sent together.",
    "open311_field_too_long": "{field} is too long: {most} characters at most.",
    "open311_bad_date": ("{field} is not an ISO 8601 time with a time zone "
                         "(e.g. 2010-01-01T00:00:00Z)."),
    "open311_dates_reversed": "end_date is before start_date.",
    "open311_span_too_long": "start_date to end_date may not span more than {days} days.",
    "open311_bad_status": "Unknown status {status} (open or closed).",
    "open311_request_unknown": "No service request has the id {id}.",
    "open311_token_unknown": "No token {token}.",
    "open311_bad_format": "Unsupported format {format} (json or xml).",
    "open311_bad_body": "The request body could not be read.",
    "open311_failed": "The request could not be filed: {reason}",
    "open311_notice_routed": "Passed to the {role} of {node}, who answers within the time limit.",
    "open311_notice_office": ("The {given} given did not place it in a neighbourhood: filed to "
                              "{office}, who will assign it."),
    "open311_notice_no_place": "No location given: filed to {office}, who will assign it.",
    "open311_given_coordinates": "coordinates",
    "open311_given_address": "address",
    "open311_hook_url_invalid": ("A webhook URL must start with http:// or https:// and name a "
                                 "host (at most {most} characters)."),
    "open311_hook_unknown": "The client \"{name}\" has no webhook.",
    "open311_hook_dead": ("ALERT: the status webhook of {name} could not deliver for a day "
                          "({url}: {error}); that update was given up. Check their system."),
    "open311_hook_gone": ("ALERT: the status webhook of {name} is disabled: it answered 410 "
                          "Gone ({url}). Run linzhang open311 hook set to resume."),
    "n_card_from_system": ("\nFiled by {name} (a client system): it reads the answers back "
                           "and passes them on to the resident."),
}
