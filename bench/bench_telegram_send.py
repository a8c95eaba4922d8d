"""The Telegram outbox sender against the fake Bot API, with its real limits and real time.

    python bench/bench_telegram_send.py [--quick] [--messages N] [--group N]

1. Broadcast: N messages (10,000; --quick 1,000) to distinct people, each with a Telegram
   identity, written to the outbox of a fresh SQLite file and drained by the dispatcher over
   `TelegramTransport` over HTTP on 127.0.0.1. Reported: the achieved rate against the 30/s
   cap (target >= 90 %) and the fake's 429 count (target 0).
2. One group: M messages (100; --quick 25) into one bound group chat. Reported: elapsed time
   against the least the 20-a-minute rule allows ((M - 1) // 20 minutes), and 429s (target 0).
3. Baseline in the same run: a naive sender that fires the same broadcast (and the group
   messages) as fast as it can, 50 requests at a time, with no limiter; its 429 count.
4. Sender cost: CPU seconds of this process per message delivered in the broadcast (the fake
   server runs in this process too, so the figure includes its share; compare runs of the
   same script, before and after a change).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAP = 30.0


def _prepare(db: Path, *, people: int, group_messages: int) -> tuple[object, str]:
    """A fresh database with `people` Telegram users and one bound group; returns the engine
    and the group's chat id, with the outbox filled."""
    import sqlalchemy as sa

    from core.db import make_engine, migrate, session_scope
    from core.hierarchy.model import ChatBinding, ChatIdentity, Node, Person
    from core.outbox import Draft, enqueue_many

    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        node = Node(code="B1", level="group", name="一组", path="/")
        s.add(node)
        s.flush()
        node.path = f"/{node.id}/"
        group_chat = "-1001234567890"
        binding = ChatBinding(platform="telegram", chat_id=group_chat, node_id=node.id,
                              tier="group_neighbor")
        s.add(binding)
        s.flush()
        conn = s.connection()
        if people:
            conn.execute(sa.insert(Person.__table__),  # type: ignore[attr-defined]
                         [{"id": i + 1, "name": f"居民{i}", "language": "zh"}
                          for i in range(people)])
            conn.execute(sa.insert(ChatIdentity.__table__),  # type: ignore[attr-defined]
                         [{"person_id": i + 1, "platform": "telegram",
                           "external_id": str(100_000 + i), "unreachable": False}
                          for i in range(people)])
        drafts = [Draft(text=f"【通知】第{i}户：明天上午停水，请提前储水。", kind="broadcast",
                        dedupe_key=f"bc{i}", person_id=i + 1) for i in range(people)]
        drafts += [Draft(text=f"【群通知】{i}", kind="mirror", dedupe_key=f"g{i}",
                         chat_binding_id=binding.id) for i in range(group_messages)]
        enqueue_many(s, drafts=drafts, now=now)
    return engine, group_chat


SHARED = False  # --shared: book the token's and each chat's rate in a shared bucket too


async def _drain(engine: object, base: str, token: str) -> tuple[float, float]:
    from bot.handlers.telegram.api import TelegramApi
    from bot.handlers.telegram.transport import telegram_dispatcher
    from core.settings import Settings

    st = Settings(_env_file=None)  # type: ignore[call-arg]
    async with TelegramApi(token=token, base=base) as api:
        if SHARED:  # what several workers do (PostgreSQL or Redis in production)
            from core.ratebucket import MemoryRateStore, token_key

            api.limiter.share(MemoryRateStore(), key=token_key(token, "global"))
        sender = telegram_dispatcher(engine=engine, api=api, settings=st,  # type: ignore[arg-type]
                                batch=200, max_held=2000, idle=0.05)
        t, cpu = time.perf_counter(), time.process_time()
        await sender.drain()
        return time.perf_counter() - t, time.process_time() - cpu


async def _naive(base: str, token: str, chats: list[str]) -> None:
    from telegram.error import TelegramError

    from bot.handlers.telegram.api import TelegramApi

    async with TelegramApi(token=token, base=base) as api:
        sem = asyncio.Semaphore(50)

        async def one(chat: str, i: int) -> None:
            async with sem:
                with contextlib.suppress(TelegramError):  # a naive sender ignores 429s
                    await api.send_text(chat, f"naive {i}")

        await asyncio.gather(*(one(c, i) for i, c in enumerate(chats)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 messages and 25 into the group")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--group", type=int, default=None)
    ap.add_argument("--shared", action="store_true",
                    help="also book every message in a shared (in-memory) rate bucket")
    args = ap.parse_args()
    global SHARED
    SHARED = args.shared
    n = args.messages or (1000 if args.quick else 10_000)
    m = args.group or (25 if args.quick else 100)
    from tests.fakes.telegram_api import FakeTelegram

    label = "custom" if args.messages or args.group else "quick" if args.quick else "full"
    print(f"run: {label} — broadcast {n:,} messages, "
          f"{m} into one group")
    with tempfile.TemporaryDirectory() as tmp:
        engine, group_chat = _prepare(Path(tmp) / "bench.db", people=n, group_messages=0)
        with FakeTelegram() as tg:
            elapsed, cpu = asyncio.run(_drain(engine, tg.base_url, tg.token))
            sent = len(tg.sent)
            rate = sent / elapsed
            print(f"broadcast: {sent:,} sent in {elapsed:.1f} s = {rate:.2f} msg/s "
                  f"= {rate / CAP:.1%} of the 30/s cap (target >= 90%); "
                  f"429s: {len(tg.too_many)} (target 0)")
            print(f"sender cost: {cpu * 1000 / max(sent, 1):.2f} ms CPU per message "
                  f"({cpu:.1f} s CPU for {sent:,}, the in-process fake included)")
            broadcast_ok = rate / CAP >= 0.9 and not tg.too_many and sent == n

    with tempfile.TemporaryDirectory() as tmp:
        engine, group_chat = _prepare(Path(tmp) / "bench.db", people=0, group_messages=m)
        with FakeTelegram() as tg:
            elapsed, _cpu = asyncio.run(_drain(engine, tg.base_url, tg.token))
            times = sorted(x.at for x in tg.sent_to(group_chat))
            span = times[-1] - times[0]
            floor = 60.0 * ((m - 1) // 20)
            print(f"group: {len(times)} sent, first to last {span:.1f} s (the 20/min rule "
                  f"allows no less than {floor:.0f} s), drain {elapsed:.1f} s; "
                  f"429s: {len(tg.too_many)} (target 0)")
            group_ok = span >= floor and not tg.too_many and len(times) == m

    with FakeTelegram() as tg:
        chats = [str(100_000 + i) for i in range(n)]
        t = time.perf_counter()
        asyncio.run(_naive(tg.base_url, tg.token, chats))
        naive_s = time.perf_counter() - t
        accepted, refused = len(tg.sent), len(tg.too_many)
    with FakeTelegram() as tg:
        asyncio.run(_naive(tg.base_url, tg.token, [group_chat] * m))
        g_accepted, g_refused = len(tg.sent), len(tg.too_many)
    print(f"baseline (naive, 50 at a time, no limiter): broadcast {accepted:,} accepted and "
          f"{refused:,} refused with 429 in {naive_s:.1f} s; group {g_accepted} accepted, "
          f"{g_refused} refused with 429")
    print("result:", "OK" if broadcast_ok and group_ok else "BELOW TARGET")


if __name__ == "__main__":
    main()
