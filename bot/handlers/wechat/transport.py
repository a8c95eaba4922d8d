"""The Official Account's transport for the one dispatcher: customer-service messages inside
WeChat's window, template messages outside it (for the notices that have a
`WECHAT_TEMPLATE_*`), the menu.

Buttons become a customer-service message menu (msgmenu): a tap comes back as a text message
with `bizmsgmenuid`, which parse.py turns into a Press. Press acknowledgements (toasts) and
card edits have no OA equivalent and are marked sent without a call.

The customer-service quota, as WeChat documents it ("客服消息下发规则",
developers.weixin.qq.com/doc/offiaccount/Customer_Service/Customer_Service_Messages.html):
a message of the user allows 5 customer-service messages within 48 hours; a tap on a click
menu, following the account or scanning a code allows 3 within 1 minute (and opens no 48-hour
quota); quotas do not add up, a newer one replaces the count (45047 past it, 45015 when none
is open). So the queue is planned for what matters: a notice that the case moved on
(`HOP_KINDS`) is folded into a later one for the same case when one waits, and leaves the
last `RESERVED` messages of the quota to answers and "fixed?" questions (it is then dropped:
the answer that follows says more, and /my shows where the case is). An answer or a question
that meets 45047 goes as a template message, as outside the window (45015).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from wechatpy.exceptions import APILimitedException, WeChatClientException

from bot.dispatcher.rows import Row
from bot.dispatcher.transport import Done, Gone, Later, Outcome, Retry, Work
from bot.handlers.button_keys import encode
from bot.handlers.buttons import press_arg
from bot.handlers.tencent_clients import OAClient
from core import deliveries
from core.clock import Clock
from core.db import write_session
from core.settings import Settings
from core.wecom_limits import last_event, last_seen

log = logging.getLogger(__name__)
PLATFORM = "wechat"
WINDOW = timedelta(hours=48)  # the quota a user's message opens: CS_QUOTA messages
CS_QUOTA = 5
EVENT_WINDOW = timedelta(minutes=1)  # the quota a menu tap, follow or scan opens
EVENT_QUOTA = 3
OUT_OF_WINDOW = 45015  # "response out of time limit": no quota is open
OUT_OF_COUNT = 45047  # "out of response count limit": the open quota is spent
RESERVED = 2  # of the quota, kept for answers and "fixed?" questions
# Notices that a case moved on (accepted, a hop up the tree, a whistle, a new holder): the
# answer that follows says more, so they never take the quota's last messages from it.
HOP_KINDS = frozenset({"progress", "accepted", "escalated", "whistled", "reassigned", "hop"})
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
    if kind in ("notice", "notice_reping"):  # a notice down the tree (core/notices)
        return settings.wechat_template_notice
    return None


def credit(*, now: datetime, message_at: datetime | None, message_used: int,
           event_at: datetime | None, event_used: int) -> int | None:
    """Customer-service messages WeChat still allows into one chat; None: no quota is open
    (the window is closed). Quotas do not add up: the larger open one counts."""
    open_ = []
    if message_at is not None and message_at + WINDOW > now:
        open_.append(CS_QUOTA - message_used)
    if event_at is not None and event_at + EVENT_WINDOW > now:
        open_.append(EVENT_QUOTA - event_used)
    return max(open_) if open_ else None


class OutsideWindow(Exception):
    """No customer-service quota is open for the chat (WeChat would answer 45015)."""


class WeChatTransport:
    """The Official Account behind the dispatcher's Transport protocol (wechatpy is
    synchronous: one delivery at a time, in a worker thread)."""

    platform = PLATFORM
    parallel = 1
    counts_rows = True

    def __init__(self, *, engine: Engine, settings: Settings, clock: Clock,
                 client: OAClient | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.client = client or OAClient(settings=settings, engine=engine, clock=clock)

    def create_menu(self) -> None:
        """Create (replace) the account menu: 我要反映, 我的诉求, 帮助."""
        self.client.menu.create(MENU)

    async def deliver(self, work: Work) -> Outcome:
        return await asyncio.to_thread(self.deliver_now, work)

    def credits(self, chats: list[str], now: datetime) -> dict[str, int | None]:
        """What each chat's open quota still allows (None: none is open; a chat we never
        heard from is left out: WeChat judges)."""
        out: dict[str, int | None] = {}
        with write_session(self.engine) as s:
            for chat in chats:
                msg = last_seen(s, platform=PLATFORM, external_id=chat)
                ev = last_event(s, platform=PLATFORM, external_id=chat)
                if msg is None and ev is None:
                    continue
                used = {at: deliveries.sent_since(s, platform=PLATFORM, chat_id=chat,
                                                  since=at, part_type="custom")
                        for at in (msg, ev) if at is not None}
                out[chat] = credit(now=now, message_at=msg, message_used=used.get(msg, 0)
                                   if msg else 0, event_at=ev,
                                   event_used=used.get(ev, 0) if ev else 0)
        return out

    def deliver_now(self, work: Work) -> Outcome:
        """Deliver one row (sync)."""
        row = work.row
        if row.kind == "wechat_menu":
            self.create_menu()
            return Done()
        if row.options.get("answer_press") or row.kind == deliveries.CARD_UPDATE:
            return Done()
        hop = row.kind in HOP_KINDS
        dests = [d.chat_id for d in work.dests]
        done = {c for c, _ in work.done}
        if not dests:
            return Gone("no reachable WeChat account")
        if hop and row.person_id is not None and row.case_id is not None:
            with write_session(self.engine) as s:
                if deliveries.newer_pending(s, row_id=row.id, person_id=row.person_id,
                                            case_id=row.case_id, kinds=HOP_KINDS):
                    return Done()  # a later notice for the same case says where it is now
        now = self.clock.now()
        left = self.credits([d for d in dests if d not in done], now)
        lost: list[str] = []  # chats that said their person is gone
        for openid in dests:
            if openid in done:
                continue
            have = left.get(openid)
            if hop and have is not None and have <= RESERVED:
                log.info("row %s: hop notice dropped, the OA quota is kept for answers", row.id)
                continue
            try:
                # WeChat is the judge of the quota (45015, 45047); a window we know closed
                # saves a call. A stranger has no identity to remember: the reply follows
                # their message.
                if openid in left and have is None:
                    raise OutsideWindow
                msg_id, how = self._custom(openid, row), "custom"
            except (OutsideWindow, WeChatClientException) as exc:
                if isinstance(exc, APILimitedException):
                    return Later(now + timedelta(minutes=1), "WeChat API frequency limit",
                                 throttled=True)
                code = getattr(exc, "errcode", None)
                if code in GONE:
                    lost.append(openid)
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
            work.ledger.record(row, chat_id=openid, message_id=msg_id, part_type=how,
                               is_card=False)
            work.stats.messages += 1
        if len(lost) == len(dests):
            return Gone("every chat of the person is gone", lost=tuple(lost))
        return Done(lost=tuple(lost))

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
                "keyword1": {"value": f"工单#{row.case_id}" if row.case_id
                             else "通知" if row.kind.startswith("notice") else "—"},
                "remark": {"value": "回复本公众号任意消息即可继续沟通。"}}
        res = self.client.message.send_template(openid, template, data)
        return str((res or {}).get("msgid", "template"))
