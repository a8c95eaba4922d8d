"""Outbox → the Official Account: customer-service messages inside WeChat's 48-hour window,
template messages outside it (for the notices that have a `WECHAT_TEMPLATE_*`), the menu.

Buttons become a customer-service message menu (msgmenu): a tap comes back as a text message
with `bizmsgmenuid`, which parse.py turns into a Press. Press acknowledgements (toasts) and
card edits have no OA equivalent and are marked sent without a call.

The OA allows 5 customer-service messages per message of the user (45047 after that), so the
queue is planned for what matters: a notice that the case moved on (`HOP_KINDS`) is folded
into a later one for the same case when one waits, and leaves the last `RESERVED` messages
of the quota to answers and "fixed?" questions (it is then dropped: the answer that follows
says more, and /my shows where the case is). An answer or a question that meets 45047 goes
as a template message, as outside the window (45015).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from wechatpy.exceptions import APILimitedException, WeChatClientException

from bot.dispatcher.loop import Done, Gone, Later, Outcome, Retry
from bot.dispatcher.reach import gone
from bot.dispatcher.recipients import destinations
from bot.dispatcher.rows import Row
from bot.handlers.button_keys import encode
from bot.handlers.buttons import press_arg
from bot.handlers.tencent_clients import OAClient
from core import deliveries
from core.clock import Clock
from core.db import write_session
from core.settings import Settings
from core.wecom_limits import last_seen

log = logging.getLogger(__name__)
PLATFORM = "wechat"
WINDOW = timedelta(hours=48)
OUT_OF_WINDOW = 45015  # "response out of time limit": the 48-hour window has closed
OUT_OF_COUNT = 45047  # "out of response count limit": 5 messages per message of the user
CS_QUOTA = 5
RESERVED = 2  # of the quota, kept for answers and "fixed?" questions
# Notices that a case moved on (a hop up the tree, a whistle, a new holder).
HOP_KINDS = frozenset({"progress", "escalated", "whistled", "reassigned", "hop"})
GONE = {43004, 40003}  # unsubscribed, or not one of our followers
MENU: dict[str, Any] = {"button": [
    {"type": "click", "name": "我要反映", "key": "report"},
    {"type": "click", "name": "我的诉求", "key": "my"},
    {"type": "click", "name": "帮助", "key": "help"},
]}


def template_for(settings: Settings, kind: str) -> str | None:
    """The template for a notice that may reach a resident outside the window."""
    if kind in ("replied", "progress", "accepted"):
        return settings.wechat_template_answer
    if kind in ("resolved", "confirm_reminder"):
        return settings.wechat_template_confirm
    return None


class OutsideWindow(Exception):
    """The resident has not written to us in the last 48 hours."""


class WeChatSender:
    platform = PLATFORM

    def __init__(self, *, engine: Engine, settings: Settings, clock: Clock,
                 client: OAClient | None = None,
                 configured: frozenset[str] | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.configured = configured
        self.client = client or OAClient(settings=settings, engine=engine, clock=clock)

    def create_menu(self) -> None:
        """Create (replace) the account menu: 我要反映, 我的诉求, 帮助."""
        self.client.menu.create(MENU)

    def deliver(self, row: Row) -> Outcome:
        if row.kind == "wechat_menu":
            self.create_menu()
            return Done()
        if row.options.get("answer_press") or row.kind == deliveries.CARD_UPDATE:
            return Done()
        hop = row.kind in HOP_KINDS
        with write_session(self.engine) as s:
            dests = [d.chat_id for d in destinations(s, platform=PLATFORM, row=row)]
            done = {c for c, _ in deliveries.delivered_parts(s, outbox_id=row.id)}
            seen = {d: last_seen(s, platform=PLATFORM, external_id=d) for d in dests}
            used = {d: deliveries.sent_since(s, platform=PLATFORM, chat_id=d, since=at,
                                             part_type="custom")
                    for d, at in seen.items() if at is not None}
            folded = hop and row.person_id is not None and row.case_id is not None and \
                deliveries.newer_pending(s, row_id=row.id, person_id=row.person_id,
                                         case_id=row.case_id, kinds=HOP_KINDS)
        if not dests:
            return Gone("no reachable WeChat account")
        if folded:
            return Done()  # a later notice for the same case says where it is now
        now = self.clock.now()
        lost = 0  # chats that said their person is gone
        for openid in dests:
            if openid in done:
                continue
            if hop and used.get(openid, 0) >= CS_QUOTA - RESERVED:
                log.info("row %s: hop notice dropped, the OA quota is kept for answers", row.id)
                continue
            try:
                # WeChat is the judge of the window (45015); a window we know closed saves a
                # call. A stranger has no identity to remember: the reply follows their message.
                at = seen.get(openid)
                if at is not None and at + WINDOW <= now:
                    raise OutsideWindow
                msg_id, how = self._custom(openid, row), "custom"
            except (OutsideWindow, WeChatClientException) as exc:
                if isinstance(exc, APILimitedException):
                    return Later(now + timedelta(minutes=1), "WeChat API frequency limit",
                                 throttled=True)
                code = getattr(exc, "errcode", None)
                if code in GONE:
                    gone(self.engine, platform=PLATFORM, chat_id=openid, clock=self.clock,
                         settings=self.settings, configured=self.configured)
                    lost += 1
                    continue
                spent = code == OUT_OF_COUNT
                if not (spent or isinstance(exc, OutsideWindow) or code == OUT_OF_WINDOW):
                    return Retry(f"WeChat {code}: {getattr(exc, 'errmsg', exc)}")
                if spent and hop:
                    continue  # not worth a template: the answer will follow
                template = template_for(self.settings, row.kind)
                if template is None and spent:
                    # The next message of the resident opens a new quota.
                    return Later(now + timedelta(minutes=30),
                                 "45047: the customer-service quota is spent")
                if template is None:
                    return Retry("outside the 48-hour window and no template for "
                                 f"{row.kind!r}", permanent=True)
                msg_id, how = self._template(openid, template, row), "template"
            with write_session(self.engine) as s:
                deliveries.record_delivery(s, outbox_id=row.id, platform=PLATFORM,
                                           chat_id=openid, message_id=msg_id, kind=row.kind,
                                           now=self.clock.now(), part_type=how,
                                           case_id=row.case_id)
        if lost == len(dests):
            return Gone("every chat of the person is gone")
        return Done()

    def _custom(self, openid: str, row: Row) -> str:
        if row.actions:
            menu = {"head_content": row.text, "tail_content": "",
                    "list": [{"id": encode(a["action"], a["case_id"], a["version"],
                                           press_arg(a)), "content": a["label"]}
                             for a in row.actions]}
            res = self.client.message.send_msg_menu(openid, menu)
        else:
            res = self.client.message.send_text(openid, row.text)
        return str((res or {}).get("msgid", "cs"))

    def _template(self, openid: str, template: str, row: Row) -> str:
        data = {"first": {"value": row.text[:200]},
                "keyword1": {"value": f"工单#{row.case_id}" if row.case_id else "—"},
                "remark": {"value": "回复本公众号任意消息即可继续沟通。"}}
        res = self.client.message.send_template(openid, template, data)
        return str((res or {}).get("msgid", "template"))
