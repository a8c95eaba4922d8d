"""Button payloads in Telegram's 64-byte callback_data: `<action>:<case>:<version>[:<arg>]`."""

from __future__ import annotations

from bot.flows.types import Button, Press

LIMIT = 64
# Short codes keep the payload well inside 64 bytes whatever the case number.
CODES = {
    "accept": "ac", "reply": "rp", "resolve": "rs", "escalate": "es", "ask_more": "am",
    "whistle": "wh", "confirm": "cf", "not_fixed": "nf", "rate": "rt", "new_case": "nc",
    "category": "ct", "reject": "rj", "merge": "mg", "lang": "lg", "cancel": "cx",
    "more": "mo", "page": "pg", "add": "ad", "bind_yes": "by", "bind_no": "bn",
    # Notices: 收到, and the steps of /notice.
    "notice_ok": "no", "notice_node": "nn", "notice_aud": "na", "notice_cf": "nq",
    "notice_dl": "nd", "notice_go": "ng", "notice_x": "nx",
    # campaigns (bot/flows/campaign.py): the id field carries the campaign, item or newcomer
    "cmp_list": "cl", "cmp_item": "ci", "cmp_mark": "cm", "cmp_note": "cn", "cmp_add": "ca",
    "cmp_ok": "co", "cmp_no": "cr",
    "verify_ok": "vo", "send_back": "sb",
    # "是不是这件事？": a candidate (arg: its case), or 不是，新问题
    "dupe_pick": "dp", "dupe_none": "dn",
    # 常用答复 (bot/flows/leader.py): the answer's number on the card, and 按此发送
    "canned": "cd", "canned_send": "cs",
    # 满意度测评 (bot/flows/survey.py): the survey in the id field, the score as the argument
    "survey_rate": "sv",
}
ACTIONS = {v: k for k, v in CODES.items()}


class CallbackError(ValueError):
    """A payload we did not make (old client, forged, truncated)."""


def encode(button: Button) -> str:
    code = CODES.get(button.action)
    if code is None:
        raise CallbackError(f"no short code for action {button.action!r}")
    data = f"{code}:{button.case_id}:{button.version}"
    if button.arg is not None:
        if ":" in button.arg:
            raise CallbackError("a button argument may not contain ':'")
        data += f":{button.arg}"
    if len(data.encode()) > LIMIT:
        raise CallbackError(f"callback data over {LIMIT} bytes: {data!r}")
    return data


def decode(data: str, *, query_id: str | None = None, message_id: str | None = None) -> Press:
    if not data or len(data.encode()) > LIMIT:
        raise CallbackError("empty or oversized callback data")
    parts = data.split(":")
    if len(parts) not in (3, 4) or parts[0] not in ACTIONS:
        raise CallbackError(f"unknown callback data {data!r}")
    try:
        case_id, version = int(parts[1]), int(parts[2])
    except ValueError:
        raise CallbackError(f"malformed callback data {data!r}") from None
    if not (0 <= case_id < 2**31 and 0 <= version < 2**31):  # INTEGER columns
        raise CallbackError(f"malformed callback data {data!r}")
    return Press(action=ACTIONS[parts[0]], case_id=case_id, version=version,
                 arg=parts[3] if len(parts) == 4 else None, query_id=query_id,
                 message_id=message_id)
