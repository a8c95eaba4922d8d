"""Outbox → WeCom: case cards as interactive template cards, text to leaders, posts to tier
group chats (appchat), and the clicked card's update after a button press.

WeCom drops messages beyond 30 a minute / 1,000 an hour per member per app without an error,
so every message to a member first takes a slot in core.wecom_limits (shared by all workers,
reserved before the call so that two workers can never overspend it); a spent budget puts
the row off until a slot frees. Messages pass `enable_duplicate_check`, so a row re-sent
after a crash within half an hour is not shown twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from wechatpy.exceptions import APILimitedException, WeChatClientException

from bot.handlers.button_keys import encode
from bot.handlers.buttons import press_arg
from bot.handlers.wechat.outbox_loop import Done, Later, Outcome, Retry, Row, destinations, gone
from bot.handlers.wecom.client import WeComClient
from core import deliveries
from core.clock import Clock
from core.db import write_session
from core.media.store import MediaStore
from core.settings import Settings
from core.wecom_limits import next_slot, record_send

log = logging.getLogger(__name__)
PLATFORM = "wecom"
GONE = {60111, 81013}  # no such member; none of the recipients can be reached
DUPLICATE_CHECK = 1800  # seconds
STYLE = {"accept": 1, "resolve": 1, "escalate": 2, "whistle": 3, "ask_more": 4}


def card(row: Row) -> dict[str, Any]:
    """A button_interaction template card for a case message (at most 6 buttons)."""
    head = row.text.partition("\n")[0]
    return {
        "card_type": "button_interaction",
        "source": {"desc": "邻长制"},
        "main_title": {"title": f"工单#{row.case_id}" if row.case_id else head[:26],
                       "desc": head[:30]},
        "sub_title_text": row.text[:480] + "\n回复“#工单号 内容”即可答复居民。",
        "task_id": f"case{row.case_id or 0}-r{row.id}",
        "button_list": [{"text": a["label"][:10], "style": STYLE.get(a["action"], 1),
                         "key": encode(a["action"], a["case_id"], a["version"], press_arg(a))}
                        for a in row.actions[:6]],
    }


class WeComSender:
    platform = PLATFORM

    def __init__(self, *, engine: Engine, settings: Settings, clock: Clock,
                 client: WeComClient | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.client = client or WeComClient(settings=settings, engine=engine, clock=clock)
        self.store = MediaStore.from_settings(settings)

    def _send(self, userid: str, msgtype: str, body: dict[str, Any]) -> dict[str, Any]:
        data = {"touser": userid, "msgtype": msgtype, "agentid": self.client.agent_id,
                msgtype: body, "enable_duplicate_check": 1,
                "duplicate_check_interval": DUPLICATE_CHECK}
        return dict(self.client.post("message/send", data=data))

    def deliver(self, row: Row) -> Outcome:
        code = row.options.get("answer_press")
        if code:
            return self._update_card(row, str(code))
        if row.kind == deliveries.CARD_UPDATE:
            # Without a fresh ResponseCode a sent card cannot be changed; the clicked card was
            # updated when its press was acknowledged.
            return Done()
        with write_session(self.engine) as s:
            dests, personal = destinations(s, platform=PLATFORM, row=row)
            done = {c for c, _ in deliveries.delivered_parts(s, outbox_id=row.id)}
        if not dests:
            return Retry("no reachable WeCom account or chat", permanent=True)
        if row.chat_binding_id is not None:
            return self._appchat(row, dests[0], done)
        now = self.clock.now()
        for userid in dests:
            if userid in done:
                continue
            photo = row.options.get("photo")
            needed = 2 if photo else 1
            with write_session(self.engine) as s:
                for _ in range(needed):
                    slot = next_slot(s, platform=PLATFORM, recipient=userid, now=now)
                    if slot is not None:
                        return Later(slot, f"WeCom budget for {userid} spent until {slot}")
                    record_send(s, platform=PLATFORM, recipient=userid, now=now)
            try:
                if photo:
                    data = self.store.open(str(photo))
                    up = self.client.media.upload("image", ("photo.jpg", data))
                    self._send(userid, "image", {"media_id": up["media_id"]})
                if row.actions:
                    c = card(row)
                    self._send(userid, "template_card", c)
                    msg_id, is_card = c["task_id"], True
                else:
                    res = self._send(userid, "text", {"content": row.text})
                    msg_id, is_card = str(res.get("msgid", "")), False
            except APILimitedException:
                return Later(now + timedelta(minutes=1), "WeCom API frequency limit",
                             throttled=True)
            except WeChatClientException as exc:
                if exc.errcode in GONE and personal:
                    gone(self.engine, platform=PLATFORM, chat_id=userid, clock=self.clock,
                         settings=self.settings)
                    continue
                return Retry(f"WeCom {exc.errcode}: {exc.errmsg}")
            with write_session(self.engine) as s:
                deliveries.record_delivery(s, outbox_id=row.id, platform=PLATFORM,
                                           chat_id=userid, message_id=msg_id or f"r{row.id}",
                                           kind=row.kind, now=self.clock.now(),
                                           case_id=row.case_id, is_card=is_card)
        return Done()

    def _appchat(self, row: Row, chat_id: str, done: set[str]) -> Outcome:
        if chat_id in done:
            return Done()
        text = row.text
        if row.case_id and f"#{row.case_id}" not in text:
            text = f"工单#{row.case_id}\n{text}"
        try:
            self.client.appchat.send_text(chat_id, text)
        except WeChatClientException as exc:
            return Retry(f"WeCom appchat {exc.errcode}: {exc.errmsg}")
        with write_session(self.engine) as s:
            deliveries.record_delivery(s, outbox_id=row.id, platform=PLATFORM, chat_id=chat_id,
                                       message_id=f"r{row.id}", kind=row.kind,
                                       now=self.clock.now(), case_id=row.case_id)
        return Done()

    def _update_card(self, row: Row, response_code: str) -> Outcome:
        """Show the press's outcome on the clicked card (its buttons become one grey label)."""
        try:
            self.client.post("message/update_template_card", data={
                "userids": [row.address], "agentid": self.client.agent_id,
                "response_code": response_code, "button": {"replace_name": row.text[:20]}})
        except WeChatClientException as exc:
            # A code is good once, for 72 h: too late to update is not worth a retry.
            log.info("card not updated (%s): %s", exc.errcode, exc.errmsg)
        return Done()


def create_appchat(client: WeComClient, *, chat_id: str, name: str, owner: str,
                   members: list[str]) -> str:
    """Create a tier group chat owned by the app (bind it with /bind or chat_binding)."""
    res = client.appchat.create(chat_id=chat_id, name=name, owner=owner, user_list=members)
    return str(res.get("chatid", chat_id))
