"""Telegram's background work for the composition root: its transport (run by the one
dispatcher, bot/dispatcher/runtime.py), file fetcher, polling, menus."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import sqlalchemy as sa

from bot.dispatcher.runtime import Platform, Task
from bot.handlers.telegram.api import TelegramApi
from bot.handlers.telegram.inbound import handle_body
from bot.media_fetch import run_fetcher
from core.container import Container

log = logging.getLogger(__name__)

RESIDENT_MENU = [("start", "加入 / 开始"), ("my", "我反映的问题"), ("mylz", "我的邻长"),
                 ("help", "帮助"), ("lang", "中文 / English")]
LEADER_MENU = [("cases", "待办工单"), ("overdue", "超时工单"), ("invite", "本邻邀请码"),
               ("my", "我反映的问题"), ("help", "帮助")]
ADMIN_MENU = [("stats", "统计"), ("overdue", "超时工单"), ("case", "工单记录"),
              ("find", "查找人员"), ("assign", "任命"), ("import", "导入表格"),
              ("export", "导出表格"), ("help", "帮助")]
GROUP_ADMIN_MENU = [("bind", "绑定本群到网格"), ("unbind", "解除绑定"), ("cases", "待办工单")]
MAX_PERSONAL_MENUS = 2000  # admins and leaders with Telegram; beyond that, the default menu


async def set_menus(api: TelegramApi, c: Container) -> None:
    """Menus per scope: residents by default, leaders and admins in their own chats.
    A convenience only: every command checks role and subtree on the server."""
    await api.set_commands(RESIDENT_MENU)
    await api.set_commands(GROUP_ADMIN_MENU, scope="all_chat_administrators")

    def people() -> list[tuple[str, bool]]:
        with c.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT i.external_id, MAX(CASE WHEN x.role = 'admin' THEN 1 ELSE 0 END)"
                " FROM chat_identity i JOIN post x ON x.person_id = i.person_id"
                " WHERE i.platform = 'telegram' AND i.unreachable = :no AND x.role <> 'resident'"
                " GROUP BY i.external_id ORDER BY 2 DESC LIMIT :n"),
                {"no": False, "n": MAX_PERSONAL_MENUS}).all()
        return [(str(r[0]), bool(r[1])) for r in rows]

    for chat_id, is_admin in await asyncio.to_thread(people):
        try:
            await api.set_commands(ADMIN_MENU if is_admin else LEADER_MENU, scope="chat",
                                   chat_id=chat_id)
        except Exception as exc:  # a chat the bot cannot reach: its menu is not worth a crash
            log.info("menu for %s not set: %s", chat_id, exc)


async def poll(api: TelegramApi, c: Container, stop: asyncio.Event) -> None:
    """getUpdates instead of a webhook; every update goes the webhook's way (deduplicated)."""
    await api.delete_webhook()
    offset: int | None = None
    while not stop.is_set():
        try:
            updates = await api.get_updates(offset=offset, timeout=25)
        except Exception as exc:
            log.warning("getUpdates failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)
            continue
        for u in updates:
            await asyncio.to_thread(handle_body, c, json.dumps(u).encode())
            offset = int(u["update_id"]) + 1


def share_rate_limit(api: TelegramApi, c: Container) -> None:
    """With several workers (PostgreSQL, or Redis when REDIS_URL is set), the bot token's
    global rate is booked in a bucket they all share (core/ratebucket.py)."""
    from core.ratebucket import shared_store, token_key

    token = c.settings.telegram_bot_token
    store = shared_store(redis_url=c.settings.redis_url, engine=c.engine)
    if store is not None and token is not None:
        api.limiter.share(store, key=token_key(token.get_secret_value(), "global"))


def telegram_platform(c: Container, *, polling: bool) -> Platform:
    """Telegram's transport for the dispatcher, and its own background work: checking the
    token and setting the menus, fetching files, polling when there is no webhook."""
    from bot.handlers.telegram.transport import StoreMedia, TelegramTransport
    from core.media.store import MediaStore

    api = TelegramApi.from_settings(c.settings, counters=c.counters)
    share_rate_limit(api, c)

    async def download(file_ref: str, size: int | None) -> bytes:
        return await api.download(file_ref, known_size=size)

    async def boot(stop: asyncio.Event) -> None:
        try:
            await api.start()
            if c.leader is None or c.leader.is_leader:  # once per deployment, not per worker
                await set_menus(api, c)
        except Exception as exc:
            log.warning("Telegram setup incomplete: %s", exc)

    async def fetch(stop: asyncio.Event) -> None:
        await run_fetcher(c.engine, platform="telegram", download=download,
                          settings=c.settings, clock=c.clock, stop=stop)

    async def polls(stop: asyncio.Event) -> None:
        await poll(api, c, stop)

    tasks: list[Task] = [boot, fetch, polls] if polling else [boot, fetch]
    return Platform(
        transport=TelegramTransport(api=api, media=StoreMedia(MediaStore.from_settings(
            c.settings))),
        tasks=tasks, close=api.close)
