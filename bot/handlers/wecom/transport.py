"""WeCom's transport for the one dispatcher: case cards as interactive template cards, text
to leaders, posts to tier group chats (appchat), and the clicked card's update after a press.

WeCom drops messages beyond 30 a minute / 1,000 an hour per member per app without an error,
so every message to a member first takes a slot in core.wecom_limits (shared by all workers,
reserved before the call so that two workers can never overspend it); a spent budget puts
the row off until a slot frees. Messages pass `enable_duplicate_check`, so a row re-sent
after a crash within half an hour is not shown twice.

A card's `task_id` must be unique on the WeCom app for ever, across deployments and retries:
it is `<deployment tag>-c<case>-r<row>-a<attempt>-<n>` (the tag is random, made once per
database: core.deliveries.deployment_tag), so a second deployment on the same app, or a retry
after a lost answer, never reuses one. The `response_code` that `message/send` answers for a
button card is kept with its delivery: a `card_update` row spends it (once, within 72 h) to
bring that copy of the card up to date (`message/update_template_card`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from wechatpy.exceptions import APILimitedException, WeChatClientException

from bot.dispatcher.rows import Row
from bot.dispatcher.transport import Done, Gone, Later, Outcome, Retry, Work
from bot.handlers.button_keys import encode
from bot.handlers.buttons import press_arg
from bot.handlers.wecom.client import WeComClient
from core import deliveries
from core.clock import Clock, as_utc
from core.db import write_session
from core.media.store import MediaStore
from core.settings import Settings
from core.wecom_limits import next_slot, record_send

log = logging.getLogger(__name__)
PLATFORM = "wecom"
GONE = {60111, 81013}  # no such member; none of the recipients can be reached
DUPLICATE_CHECK = 1800  # seconds
STYLE = {"accept": 1, "resolve": 1, "escalate": 2, "whistle": 3, "ask_more": 4}
# WeCom's template_card limits (developer.work.weixin.qq.com/document/path/90236):
# main_title.title 26 characters, main_title.desc 30, sub_title_text 112, a button's text
# 10, 6 buttons, task_id 128 bytes of letters, digits and "_-@"; a response_code is good
# for one update, within 72 hours.
TITLE_LIMIT, DESC_LIMIT, SUB_TITLE_LIMIT, BUTTON_LIMIT, BUTTONS = 26, 30, 112, 10, 6
TASK_ID_LIMIT = 128
# A horizontal_content_list line: its keyname 5 characters, its value 26.
KEYNAME_LIMIT, LINK_TEXT_LIMIT = 5, 26
CODE_LIFETIME = timedelta(hours=72)
TASK_ID_TAKEN = 42014
HINT = "回复“#工单号 内容”即可答复居民。"


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def card(row: Row, *, task_id: str) -> dict[str, Any]:
    """A button_interaction template card for a case message, within WeCom's limits; a row
    with a `link_url` (a checklist's web page) gets it as a link line and as the card's tap."""
    head = row.text.partition("\n")[0]
    body = row.text.strip()
    out: dict[str, Any] = {
        "card_type": "button_interaction",
        "source": {"desc": "邻长制"},
        "main_title": {"title": clip(f"工单#{row.case_id}" if row.case_id else head,
                                     TITLE_LIMIT),
                       "desc": clip(head, DESC_LIMIT)},
        "sub_title_text": clip(body, SUB_TITLE_LIMIT - len(HINT) - 1) + "\n" + HINT,
        "task_id": task_id[:TASK_ID_LIMIT],
        "button_list": [{"text": clip(a["label"], BUTTON_LIMIT),
                         "style": STYLE.get(a["action"], 1),
                         "key": encode(a["action"], a["case_id"], a["version"], press_arg(a))}
                        for a in row.actions[:BUTTONS]],
    }
    url = row.options.get("link_url")
    if url:
        out["horizontal_content_list"] = [{
            "type": 1, "keyname": clip(str(row.options.get("link_title") or "网页"), KEYNAME_LIMIT),
            "value": clip(str(row.options.get("link_text") or url), LINK_TEXT_LIMIT),
            "url": str(url)}]
        out["card_action"] = {"type": 1, "url": str(url)}
    return out


class WeComTransport:
    """The WeCom app behind the dispatcher's Transport protocol (wechatpy is synchronous:
    one delivery at a time, in a worker thread)."""

    platform = PLATFORM
    parallel = 1
    counts_rows = True

    def __init__(self, *, engine: Engine, settings: Settings, clock: Clock,
                 client: WeComClient | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self._tag: str | None = None
        self.client = client or WeComClient(settings=settings, engine=engine, clock=clock)
        self.store = MediaStore.from_settings(settings)

    def _send(self, userid: str, msgtype: str, body: dict[str, Any]) -> dict[str, Any]:
        data = {"touser": userid, "msgtype": msgtype, "agentid": self.client.agent_id,
                msgtype: body, "enable_duplicate_check": 1,
                "duplicate_check_interval": DUPLICATE_CHECK}
        return dict(self.client.post("message/send", data=data))

    async def deliver(self, work: Work) -> Outcome:
        return await asyncio.to_thread(self.deliver_now, work)

    def deliver_now(self, work: Work) -> Outcome:
        """Deliver one row (sync)."""
        row = work.row
        code = row.options.get("answer_press")
        if code:
            return self._update_card(row, str(code))
        if row.kind == deliveries.CARD_UPDATE:
            return self._update_copies(work)
        if self._tag is None:
            with write_session(self.engine) as s:
                self._tag = deliveries.deployment_tag(s, now=self.clock.now())
        dests = [d.chat_id for d in work.dests]
        done = {c for c, _ in work.done}
        personal = any(d.identity for d in work.dests)
        if not dests:
            return Gone("no reachable WeCom account or chat")
        if row.chat_binding_id is not None:
            return self._appchat(work, dests[0], done)
        now = self.clock.now()
        lost: list[str] = []  # chats that said their person is gone
        for n, userid in enumerate(dests):
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
                code = None
                if row.actions:
                    c = card(row, task_id=self._task_id(row, n))
                    msg_id, is_card = c["task_id"], True
                    try:
                        res = self._send(userid, "template_card", c)
                    except WeChatClientException as exc:
                        if exc.errcode != TASK_ID_TAKEN:
                            raise
                        # Our own id (the tag is this deployment's): an attempt whose outcome
                        # was never recorded got through. It is delivered.
                        res = {}
                    code = res.get("response_code") or None
                else:
                    res = self._send(userid, "text", {"content": row.text})
                    msg_id, is_card = str(res.get("msgid", "")), False
            except APILimitedException:
                return Later(now + timedelta(minutes=1), "WeCom API frequency limit",
                             throttled=True)
            except WeChatClientException as exc:
                if exc.errcode in GONE and personal:
                    lost.append(userid)
                    continue
                return Retry(f"WeCom {exc.errcode}: {exc.errmsg}")
            work.ledger.record(row, chat_id=userid, message_id=msg_id or f"r{row.id}",
                               is_card=is_card, response_code=code)
            work.stats.messages += 1
        if len(lost) == len(dests):
            return Gone("every chat of the person is gone", lost=tuple(lost))
        return Done(lost=tuple(lost))

    def _task_id(self, row: Row, n: int) -> str:
        """Unique on the app: this deployment's tag, the case, the row, the attempt, the copy."""
        return f"{self._tag}-c{row.case_id or 0}-r{row.id}-a{row.attempts + 1}-{n}"

    def _update_copies(self, work: Work) -> Outcome:
        """Bring every WeCom copy of the case's card up to date whose code is still good."""
        row = work.row
        if self._tag is None:
            with write_session(self.engine) as s:
                self._tag = deliveries.deployment_tag(s, now=self.clock.now())
        now = self.clock.now()
        for n, c in enumerate(work.cards):
            if not c.response_code or c.sent_at is None or \
                    as_utc(c.sent_at) + CODE_LIFETIME <= now:
                continue
            fresh = card(row, task_id=f"{self._task_id(row, n)}-u")
            try:
                self.client.post("message/update_template_card", data={
                    "userids": [c.chat_id], "agentid": self.client.agent_id,
                    "response_code": c.response_code, "template_card": fresh})
                work.stats.edits += 1
            except WeChatClientException as exc:
                log.info("card %s of case %s not updated (%s): %s", c.chat_id, row.case_id,
                         exc.errcode, exc.errmsg)
            work.ledger.spend_code(c.delivery_id)  # good once
        return Done()

    def _appchat(self, work: Work, chat_id: str, done: set[str]) -> Outcome:
        row = work.row
        if chat_id in done:
            return Done()
        text = row.text
        if row.case_id and f"#{row.case_id}" not in text:
            text = f"工单#{row.case_id}\n{text}"
        try:
            self.client.appchat.send_text(chat_id, text)
        except WeChatClientException as exc:
            return Retry(f"WeCom appchat {exc.errcode}: {exc.errmsg}")
        work.ledger.record(row, chat_id=chat_id, message_id=f"r{row.id}", is_card=False)
        work.stats.messages += 1
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
