"""Two senders (two engines, two limiters: two processes' worth) drain one PostgreSQL outbox
to the fake Bot API: with the token's rate shared they stay within 30/s together, with no
429; without it, each keeps 30/s on its own and together they are told 429. Real time, so
`scripts/test` runs them alone, after the rest (marker `realtime`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.dispatcher.transport import Stats as SenderStats
from bot.handlers.telegram.api import TelegramApi
from bot.handlers.telegram.transport import telegram_dispatcher
from core.clock import SystemClock
from core.db import make_engine, migrate, session_scope
from core.outbox import Draft, enqueue_many
from core.ratebucket import PostgresRateStore, RateStore, RedisRateStore, token_key
from core.settings import Settings
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.test_ratebucket import redis_or_skip
from tests.integration.test_telegram_sender import count_in_window

pytestmark = [pytest.mark.postgres, pytest.mark.realtime, pytest.mark.timeout(120)]


@pytest.fixture
def engines(pg_url: str) -> Iterator[list[Engine]]:
    made = [make_engine(pg_url), make_engine(pg_url)]
    migrate(made[0])
    yield made
    for e in made:
        e.dispose()


def fill(engine: Engine, n: int) -> None:
    """`n` rows, each into its own private chat (a broadcast): only the global limit binds."""
    drafts = [Draft(text=f"通知 {k}", kind="broadcast", dedupe_key=f"b{k}", platform="telegram",
                    address=str(700000 + k)) for k in range(n)]
    with session_scope(engine) as s:
        enqueue_many(s, drafts=drafts, now=SystemClock().now())


def two_senders(engines: list[Engine], tg: FakeTelegram, tmp_path: Path,
                store: Callable[[Engine], RateStore] | None) -> tuple[float, list[SenderStats]]:
    st = Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]

    async def one(engine: Engine) -> SenderStats:
        async with TelegramApi(token=tg.token, base=tg.base_url) as api:
            if store is not None:
                api.limiter.share(store(engine), key=token_key(tg.token, "global"))
            sender = telegram_dispatcher(engine=engine, api=api, settings=st, clock=SystemClock(),
                                    batch=20, idle=0.05)
            return await sender.drain(max_seconds=60)

    async def both() -> list[SenderStats]:
        return list(await asyncio.gather(*(one(e) for e in engines)))

    start = time.monotonic()
    stats = asyncio.run(both())
    return time.monotonic() - start, stats


def stores(kind: str) -> Callable[[Engine], RateStore]:
    if kind == "postgres":
        return PostgresRateStore
    url = redis_or_skip()
    prefix = f"linzhang:test:{time.time_ns()}:"
    return lambda _engine: RedisRateStore(url, prefix=prefix)


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_two_senders_sharing_the_token_rate_stay_within_30_per_second(
        kind: str, engines: list[Engine], tmp_path: Path) -> None:
    n = 150
    fill(engines[0], n)
    with FakeTelegram() as tg:
        elapsed, stats = two_senders(engines, tg, tmp_path, stores(kind))
        sent = tg.sent
        assert tg.too_many == []
        assert tg.errors == []
    assert len(sent) == n and {m.chat_id for m in sent} == {700000 + k for k in range(n)}
    assert all(s.messages > 0 for s in stats), "both senders took part"
    assert sum(s.too_many for s in stats) == 0
    assert count_in_window([m.at for m in sent], 1.0) <= 30
    # Close to the bound, not far below it (25/s booked: 5/6 of 30 leaves room for jitter).
    assert n / elapsed > 15, f"{n} messages took {elapsed:.1f} s"


def test_without_the_shared_rate_two_senders_are_told_429(
        engines: list[Engine], tmp_path: Path) -> None:
    """The control: each limiter alone keeps 30/s; together they send up to 60/s."""
    fill(engines[0], 120)
    with FakeTelegram() as tg:
        two_senders(engines, tg, tmp_path, None)
        assert len(tg.too_many) > 0
        assert len(tg.sent) == 120  # 429s are deferred and retried: nothing is lost
