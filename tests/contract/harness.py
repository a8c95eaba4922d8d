"""One harness per transport, so that the same contract tests run against each platform's
fake (tests/fakes/telegram_api.py, tests/fakes/wechat_api.py as the OA and as WeCom, and the
web chat's own store), the way httpx runs one test suite over each of its transports.

Every harness drains the outbox with the same dispatcher (bot/dispatcher/loop.py) over its
platform's transport; a harness knows how to build that transport and how to read, from the
fake, what arrived where; the tests know nothing of any platform.

SMS is not one of them: the contract speaks of a person's chat identities, buttons, card copies
and chats that block the bot, and SMS has none of these (one phone number per person, template
texts only, nothing to edit or block); its rules are tested in tests/integration/test_sms.py
against tests/fakes/sms_api.py through the same dispatcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from bot.dispatcher.loop import Dispatcher
from bot.dispatcher.transport import Transport
from core.media.store import MediaStore
from core.settings import Settings
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.timer import VirtualTime
from tests.fakes.wechat_api import FakeWeChatApi

PLATFORMS = ["telegram", "wechat", "wecom", "web", "webhook"]


async def dispatch(engine: Engine, transport: Transport, vt: VirtualTime,
                   settings: Settings | None) -> None:
    """The one dispatcher, the same for every platform, until nothing due is left (rows put
    off by a platform's limits wait on the virtual clock)."""
    d = Dispatcher(engine=engine, transport=transport, clock=vt, settings=settings,
                   timer=vt, idle=0.5)
    stats = await d.drain(max_seconds=600)
    assert stats.errors == []


class Harness(Protocol):
    platform: str

    def chat(self, n: int) -> str:
        """The n-th chat id of this platform for a person's identity."""
        ...

    def drain(self) -> None:
        """Deliver every due row this transport can take."""
        ...

    def texts_to(self, chat: str) -> list[str]:
        """What arrived in a chat, in order (a card's current text)."""
        ...

    def labels_to(self, chat: str) -> list[str]:
        """The button labels of everything that arrived in a chat."""
        ...

    def leave(self, chat: str) -> None:
        """The chat's person blocked the bot / unfollowed / left (no-op where impossible)."""
        ...

    def updated_copies(self) -> int:
        """How many card copies were brought up to date in place."""
        ...


class TelegramHarness:
    platform = "telegram"

    def __init__(self, engine: Engine, vt: VirtualTime, tmp: Path, fake: FakeTelegram) -> None:
        self.engine, self.vt, self.fake = engine, vt, fake
        self.settings = Settings(_env_file=None,  # type: ignore[call-arg]
                                 media_dir=str(tmp / "media"))

    def chat(self, n: int) -> str:
        return str(5000 + n)

    def drain(self) -> None:
        from bot.handlers.telegram.api import TelegramApi
        from bot.handlers.telegram.transport import StoreMedia, TelegramTransport

        async def go() -> None:
            async with TelegramApi(token=self.fake.token, base=self.fake.base_url,
                                   timer=self.vt) as api:
                self.vt.hold_while(lambda: api.limiter.in_flight > 0)
                transport = TelegramTransport(api=api, media=StoreMedia(
                    MediaStore.from_settings(self.settings)))
                await dispatch(self.engine, transport, self.vt, self.settings)

        asyncio.run(go())
        self.vt.advance(timedelta(seconds=2))  # the next limiter starts afresh

    def texts_to(self, chat: str) -> list[str]:
        return [m.text or "" for m in self.fake.sent_to(chat)]

    def labels_to(self, chat: str) -> list[str]:
        return [b["text"] for m in self.fake.sent_to(chat)
                for row in (m.reply_markup or {}).get("inline_keyboard", []) for b in row]

    def leave(self, chat: str) -> None:
        self.fake.block(chat)

    def updated_copies(self) -> int:
        return len(self.fake.edits)


class WeChatHarness:
    """The OA (`kind="oa"`) or WeCom (`kind="wecom"`), each on its own fake."""

    def __init__(self, engine: Engine, vt: VirtualTime, tmp: Path, fake: FakeWeChatApi
                 ) -> None:
        self.engine, self.vt, self.fake = engine, vt, fake
        self.platform = "wechat" if fake.kind == "oa" else "wecom"
        base = {"_env_file": None, "database_url": str(engine.url),
                "media_dir": str(tmp / "media")}
        if fake.kind == "oa":
            from bot.handlers.wechat.transport import WeChatTransport

            st = Settings(**base, wechat_app_id="wx1",  # type: ignore[arg-type]
                          wechat_app_secret=SecretStr("s"), wechat_api_base=fake.base_url)
            self.transport: Transport = WeChatTransport(engine=engine, settings=st, clock=vt)
        else:
            from bot.handlers.wecom.transport import WeComTransport

            st = Settings(**base, wecom_corp_id="ww1",  # type: ignore[arg-type]
                          wecom_agent_id="1", wecom_secret=SecretStr("s"),
                          wecom_api_base=fake.base_url)
            self.transport = WeComTransport(engine=engine, settings=st, clock=vt)
        self.settings = st

    def chat(self, n: int) -> str:
        chat = f"user{n}"
        self.fake.user_wrote(chat)  # the OA's window opens when they write; WeCom ignores it
        return chat

    def drain(self) -> None:
        asyncio.run(dispatch(self.engine, self.transport, self.vt, self.settings))

    def texts_to(self, chat: str) -> list[str]:
        return [m.text for m in self.fake.sent_to(chat)]

    def labels_to(self, chat: str) -> list[str]:
        out = []
        for m in self.fake.sent_to(chat):
            if m.msgtype == "msgmenu":
                out += [i["content"] for i in m.body["msgmenu"]["list"]]
            if m.msgtype == "template_card":
                out += [b["text"] for b in m.body["template_card"]["button_list"]]
        return out

    def leave(self, chat: str) -> None:
        self.fake.leave(chat)

    def updated_copies(self) -> int:
        return len(self.fake.card_updates)


class WebHarness:
    platform = "web"

    def __init__(self, engine: Engine, vt: VirtualTime) -> None:
        self.engine, self.vt = engine, vt

    def chat(self, n: int) -> str:
        return f"web-{n}"

    def drain(self) -> None:
        from bot.handlers.web.transport import WebTransport

        asyncio.run(dispatch(self.engine, WebTransport(), self.vt, None))

    def _lines(self, chat: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT id, direction, text, actions, edit_of FROM web_message"
                " WHERE chat_id = :c ORDER BY id"), {"c": chat}))

    def texts_to(self, chat: str) -> list[str]:
        lines = self._lines(chat)
        current = {r.id: r.text for r in lines if r.direction == "outbound"}
        for r in lines:
            if r.direction == "edit" and r.edit_of in current:
                current[r.edit_of] = r.text
        return list(current.values())

    def labels_to(self, chat: str) -> list[str]:
        import json

        out = []
        for r in self._lines(chat):
            if r.direction == "outbound":
                acts = json.loads(r.actions) if isinstance(r.actions, str) else r.actions
                out += [a["label"] for a in acts]
        return out

    def leave(self, chat: str) -> None:
        """A web chat cannot block the bot: nothing to do."""

    def updated_copies(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM web_message WHERE direction = 'edit'")).scalar_one())


class WebhookHarness:
    """Client systems' status webhooks: raw rows to a hook, POSTed to a receiver on loopback.
    A hook is no person's chat: the tests of people's chats, buttons and cards do not apply."""

    platform = "webhook"
    people = False

    def __init__(self, engine: Engine, vt: VirtualTime, receiver: Any) -> None:
        self.engine, self.vt, self.receiver = engine, vt, receiver

    def chat(self, n: int) -> str:
        return f"hook-{n}"

    def drain(self) -> None:
        from bot.handlers.webhook.transport import WebhookTransport

        async def go() -> None:
            transport = WebhookTransport(timeout=5)
            try:
                await dispatch(self.engine, transport, self.vt, None)
            finally:
                await transport.close()

        asyncio.run(go())

    def texts_to(self, chat: str) -> list[str]:
        return [p.body.decode() for p in self.receiver.accepted]

    def labels_to(self, chat: str) -> list[str]:
        return []

    def leave(self, chat: str) -> None:
        """A receiver that is gone answers 410 (tests/integration/test_status_hooks.py)."""

    def updated_copies(self) -> int:
        return 0


@contextmanager
def harness(platform: str, engine: Engine, vt: VirtualTime, tmp: Path) -> Iterator[Harness]:
    """The harness for one platform, its fake server running."""
    if platform == "telegram":
        with FakeTelegram(now=vt.monotonic) as fake:
            yield TelegramHarness(engine, vt, tmp, fake)
            assert fake.errors == []
    elif platform in ("wechat", "wecom"):
        with FakeWeChatApi("oa" if platform == "wechat" else "wecom", vt) as wx:
            yield WeChatHarness(engine, vt, tmp, wx)
            assert wx.dropped == []
    elif platform == "webhook":
        from tests.support.hook_receiver import Receiver, receiving

        receiver = Receiver()
        with receiving(receiver):
            yield WebhookHarness(engine, vt, receiver)
    else:
        yield WebHarness(engine, vt)
