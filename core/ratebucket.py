"""Rate limits shared by every process of a deployment: one bucket per (bot token, limit).

A platform limits a bot token, not a process: with several workers sending with one token,
each process's own limiter would let through N times the platform's rate. A `RateStore` keeps
the buckets where every worker sees them:

- `MemoryRateStore`: in this process (SQLite, one process; tests);
- `PostgresRateStore`: a row per (token hash, bucket) in `rate_bucket`, reserved with one
  atomic `UPDATE … RETURNING` (the row lock serialises concurrent reservations);
- `RedisRateStore`: a key per bucket, reserved by a Lua script (atomic in Redis).

The algorithm is GCRA (a token bucket written as one timestamp, the "theoretical arrival
time"): `reserve` always books the next free slot and answers how long the caller must wait
before using it, so a caller makes one round trip per message and never polls. Time is the
store's own clock (PostgreSQL's `clock_timestamp()`, Redis's `TIME`) so that processes on
different machines agree; tests pass `now` explicitly.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel


class RateBucket(SQLModel, table=True):
    """One shared bucket: the next free slot ("theoretical arrival time", epoch seconds)."""

    __tablename__ = "rate_bucket"
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    bucket: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    tat: float = Field(sa_column=sa.Column(sa.Float(precision=53), nullable=False))


class RateStore(Protocol):
    def reserve(self, *, key: str, rate: float, burst: int = 1,
                now: float | None = None) -> float:
        """Book one slot in `key`'s bucket (`rate` per second, `burst` at once); seconds to
        wait before using it (0: now)."""
        ...


def token_key(token: str, bucket: str) -> str:
    """A bucket key that names the token without storing it: `<sha256 prefix>:<bucket>`."""
    return f"{hashlib.sha256(token.encode()).hexdigest()[:16]}:{bucket}"


def _check(rate: float, burst: int) -> tuple[float, float]:
    if rate <= 0 or burst < 1:
        raise ValueError(f"a rate bucket needs rate > 0 and burst >= 1 (got {rate}, {burst})")
    interval = 1.0 / rate
    return interval, (burst - 1) * interval


class MemoryRateStore:
    """Buckets in this process (the single-process default)."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, *, key: str, rate: float, burst: int = 1,
                now: float | None = None) -> float:
        """Book one slot; seconds to wait before using it."""
        interval, tau = _check(rate, burst)
        at = time.time() if now is None else now
        with self._lock:
            start = max(self._tat.get(key, at), at)
            self._tat[key] = start + interval
        return max(0.0, start - tau - at)


_PG_ENSURE = sa.text(
    "INSERT INTO rate_bucket (token_hash, bucket, tat) VALUES (:t, :b, 0)"
    " ON CONFLICT (token_hash, bucket) DO NOTHING")
# One statement: read the clock once (`n`), move the bucket's arrival time on, say the wait.
_PG_RESERVE = sa.text(
    "UPDATE rate_bucket AS r SET tat = GREATEST(r.tat, n.now) + :interval"
    " FROM (SELECT COALESCE(CAST(:now AS double precision),"
    "       EXTRACT(EPOCH FROM clock_timestamp())::double precision) AS now) AS n"
    " WHERE r.token_hash = :t AND r.bucket = :b"
    " RETURNING GREATEST(0, r.tat - :interval - :tau - n.now)")


class PostgresRateStore:
    """Buckets as rows of `rate_bucket` (migration 0008_workers) on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("PostgresRateStore needs a PostgreSQL engine")
        self.engine = engine
        self._known: set[str] = set()

    def reserve(self, *, key: str, rate: float, burst: int = 1,
                now: float | None = None) -> float:
        """Book one slot; seconds to wait before using it."""
        interval, tau = _check(rate, burst)
        token_hash, _, bucket = key.partition(":")
        args = {"t": token_hash, "b": bucket, "interval": interval, "tau": tau, "now": now}
        with self.engine.begin() as conn:
            if key not in self._known:
                conn.execute(_PG_ENSURE, args)
            wait = conn.execute(_PG_RESERVE, args).scalar_one()
        self._known.add(key)
        return float(wait)


_LUA_RESERVE = """
local interval, tau = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ttl = math.ceil((tat + interval - now + tau) * 1000) + 60000
redis.call('SET', KEYS[1], string.format('%.6f', tat + interval), 'PX', ttl)
local wait = tat - tau - now
if wait < 0 then wait = 0 end
return string.format('%.6f', wait)
"""


class RedisRateStore:
    """Buckets as Redis keys (`linzhang:rate:<key>`), reserved by a Lua script."""

    def __init__(self, url: str, *, prefix: str = "linzhang:rate:") -> None:
        import redis

        self.client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self._script = self.client.register_script(_LUA_RESERVE)

    def reserve(self, *, key: str, rate: float, burst: int = 1,
                now: float | None = None) -> float:
        """Book one slot; seconds to wait before using it."""
        interval, tau = _check(rate, burst)
        args = [repr(interval), repr(tau), "" if now is None else repr(now)]
        return float(self._script(keys=[self.prefix + key], args=args))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def shared_store(*, redis_url: str | None, engine: Engine) -> RateStore | None:
    """The deployment's store: Redis when REDIS_URL is set, else PostgreSQL, else None
    (SQLite runs one process, whose own limiter is already the whole deployment's)."""
    if redis_url:
        return RedisRateStore(redis_url)
    if engine.dialect.name == "postgresql":
        return PostgresRateStore(engine)
    return None
