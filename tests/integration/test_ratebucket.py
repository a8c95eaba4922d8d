"""The shared rate buckets: one contract, three stores (in-process, PostgreSQL, Redis)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from core.db import make_engine, migrate
from core.ratebucket import (
    MemoryRateStore,
    PostgresRateStore,
    RateStore,
    RedisRateStore,
    shared_store,
    token_key,
)

REDIS_URL = os.environ.get("LINZHANG_TEST_REDIS", "redis://127.0.0.1:6379/15")
Factory = Callable[[], RateStore]  # a second handle on the same store (another process's)


def redis_or_skip() -> str:
    """The test Redis URL, or a skip saying why there is none."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis tests did not run: no server at {REDIS_URL} ({exc})")
    return REDIS_URL


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres),
                        "redis"])
def stores(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """A factory of handles on one store: each call is what another process would hold."""
    if request.param == "memory":
        shared = MemoryRateStore()
        yield lambda: shared
    elif request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        engines = [make_engine(url)]
        migrate(engines[0])

        def pg() -> RateStore:
            engines.append(make_engine(url))
            return PostgresRateStore(engines[-1])

        yield pg
        for e in engines:
            e.dispose()
    else:
        url = redis_or_skip()
        prefix = f"linzhang:test:{uuid.uuid4().hex[:8]}:"
        made: list[RedisRateStore] = []

        def rd() -> RateStore:
            made.append(RedisRateStore(url, prefix=prefix))
            return made[-1]

        yield rd
        keys = made[0].client.keys(prefix + "*") if made else []
        if keys:
            made[0].client.delete(*keys)
        for r in made:
            r.close()


KEY = token_key("123456:secret", "global")


def test_the_key_names_the_token_without_keeping_it() -> None:
    assert "secret" not in KEY and KEY.endswith(":global") and len(KEY.split(":")[0]) == 16
    assert token_key("123456:other", "global") != KEY


def test_a_burst_goes_at_once_then_one_slot_per_interval(stores: Factory) -> None:
    store = stores()
    waits = [store.reserve(key=KEY, rate=10, burst=3, now=1000.0) for _ in range(6)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3], abs=1e-6)


def test_the_bucket_refills_with_time_but_never_beyond_the_burst(stores: Factory) -> None:
    store = stores()
    for _ in range(5):
        store.reserve(key=KEY, rate=10, burst=2, now=1000.0)
    # Slots booked up to 1000.3: at 1000.35 the next one is 1000.4 (0.05 away), then free.
    assert store.reserve(key=KEY, rate=10, burst=2, now=1000.35) == pytest.approx(0.05)
    assert store.reserve(key=KEY, rate=10, burst=2, now=1000.6) == pytest.approx(0.0, abs=1e-6)
    # A long quiet spell: only `burst` slots are free at once, not everything saved up.
    waits = [store.reserve(key=KEY, rate=10, burst=2, now=2000.0) for _ in range(3)]
    assert waits == pytest.approx([0, 0, 0.1], abs=1e-6)


def test_buckets_are_independent(stores: Factory) -> None:
    store = stores()
    assert store.reserve(key=KEY, rate=1, now=50.0) == 0
    assert store.reserve(key=KEY, rate=1, now=50.0) == pytest.approx(1.0)
    assert store.reserve(key=token_key("123456:secret", "chat:42"), rate=1, now=50.0) == 0
    assert store.reserve(key=token_key("999:other", "global"), rate=1, now=50.0) == 0


def test_concurrent_handles_never_book_the_same_slot(stores: Factory) -> None:
    """Eight handles (eight processes' worth) reserving at once: every slot exactly once."""
    handles = [stores() for _ in range(8)]
    waits: list[float] = []
    lock = threading.Lock()

    def take(h: RateStore) -> None:
        got = [h.reserve(key=KEY, rate=100, burst=1, now=500.0) for _ in range(25)]
        with lock:
            waits.extend(got)

    threads = [threading.Thread(target=take, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots = sorted(round(w * 100) for w in waits)
    assert slots == list(range(200))


def test_without_now_the_store_uses_its_own_clock(stores: Factory) -> None:
    store = stores()
    first = store.reserve(key=KEY, rate=2, burst=1)
    second = store.reserve(key=KEY, rate=2, burst=1)
    assert first == pytest.approx(0.0, abs=0.05)
    assert 0.3 < second <= 0.5


def test_a_nonsense_rate_is_refused(stores: Factory) -> None:
    with pytest.raises(ValueError):
        stores().reserve(key=KEY, rate=0)
    with pytest.raises(ValueError):
        stores().reserve(key=KEY, rate=1, burst=0)


def test_the_deployment_store_follows_the_settings(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    assert shared_store(redis_url=None, engine=engine) is None
    store = shared_store(redis_url=REDIS_URL, engine=engine)
    assert isinstance(store, RedisRateStore)
    store.close()
    engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_without_redis_the_store_is_the_database(pg_url: str) -> None:
    engine = make_engine(pg_url)
    assert isinstance(shared_store(redis_url=None, engine=engine), PostgresRateStore)
    engine.dispose()
