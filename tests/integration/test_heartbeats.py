"""Channel heartbeats, on both databases: each worker shares when its platforms last received
and sent; a platform that sent nothing for CHANNEL_SILENCE while messages wait alerts the root
admins once, and once more when it sends again; /healthz and /metrics show the times."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatch import process
from bot.flows.types import Inbound
from core import heartbeats
from core.clock import FakeClock
from core.container import build_container
from core.counters import Counters
from core.ops import OPS
from core.outbox import OUT
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

SILENCE = timedelta(minutes=15)


def _settings(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(_env_file=None,  # type: ignore[call-arg]
                    database_url=engine.url.render_as_string(hide_password=False),
                    media_dir=str(tmp_path / "m"), telegram_bot_token=SecretStr("1:x"),
                    channel_silence=SILENCE)


def _report(engine: Engine, clock: FakeClock, settings: Settings, counters: Counters) -> None:
    """A resident writes on Telegram: a beat in, and a receipt waiting to be sent."""
    from core.hierarchy.services import link_identity

    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    with Session(engine) as s, s.begin():
        link_identity(s, person_id=resident.person_id, platform="telegram", external_id="77",
                      now=clock.now(), proof="contact")
    process(engine, inbound=Inbound(platform="telegram", update_id="1", chat_id="77",
                                    sender_id="77", received_at=clock.now(), text="路灯不亮"),
            payload={}, clock=clock, settings=settings, counters=counters)


def _alerts(engine: Engine) -> list[str]:
    return [t for _p, t in _alerted(engine)]


def _alerted(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(int(p), str(t)) for p, t in conn.execute(sa.select(OUT.c.person_id, OUT.c.text)
                                                          .where(OUT.c.kind == "ops_alert")
                                                          .order_by(OUT.c.id))]


def _shared(engine: Engine, key: str) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.select(OPS.c.since).where(OPS.c.key == key)).scalar_one_or_none()


def test_beats_are_shared_and_never_move_back(engine: Engine, clock: FakeClock) -> None:
    mine, theirs = Counters(), Counters()
    mine.beat("in", "telegram", clock.now())
    assert heartbeats.flush(engine, counters=mine, now=clock.now()) == 1
    assert heartbeats.flush(engine, counters=mine, now=clock.now()) == 0  # nothing moved
    later = clock.now() + timedelta(minutes=5)
    theirs.beat("in", "telegram", later)  # another worker saw a later update
    heartbeats.flush(engine, counters=theirs, now=later)
    mine.beat("in", "telegram", clock.now() + timedelta(minutes=1))  # ours is older
    heartbeats.flush(engine, counters=mine, now=later)
    with Session(engine) as s:
        (ch,) = heartbeats.channels(s, platforms=["telegram"], now=later, silence=SILENCE)
    assert ch.last_receive == later and ch.last_send is None


def test_a_silent_channel_alerts_once_and_says_when_it_sends_again(
        engine: Engine, clock: FakeClock, tmp_path: Path) -> None:
    settings = _settings(engine, tmp_path)
    counters = Counters()
    _report(engine, clock, settings, counters)
    watch = dict(engine=engine, clock=clock, counters=counters, platforms=["telegram"],
                 silence=SILENCE)
    assert heartbeats.watch(**watch) == {"telegram": "ok"}  # type: ignore[arg-type]
    assert _shared(engine, "beat_in:telegram") is not None  # the report was a beat in
    # Within the silence nothing is said: a slow minute is not an outage.
    clock.advance(SILENCE - timedelta(minutes=1))
    assert heartbeats.watch(**watch) == {"telegram": "ok"}  # type: ignore[arg-type]
    clock.advance(timedelta(minutes=2))
    assert heartbeats.watch(**watch) == {"telegram": "alerted"}  # type: ignore[arg-type]
    root_admin = holder_of(engine, "admin", "341602").person_id
    ((who, said),) = _alerted(engine)  # the root node's admin, nobody else
    assert who == root_admin
    assert "Telegram" in said and "分钟没有发出任何消息" in said and "1 条" in said, said
    # Still silent: no second alert, from this worker or another.
    clock.advance(timedelta(minutes=5))
    assert heartbeats.watch(**watch) == {"telegram": "silent"}  # type: ignore[arg-type]
    assert heartbeats.watch(engine=engine, clock=clock, counters=Counters(),
                            platforms=["telegram"], silence=SILENCE) == {"telegram": "silent"}
    assert len(_alerts(engine)) == 1
    # Another worker's send is a beat for everyone: the episode ends with one note.
    other = Counters()
    other.beat("out", "telegram", clock.now())
    assert heartbeats.watch(engine=engine, clock=clock, counters=other,
                            platforms=["telegram"], silence=SILENCE) == {"telegram": "recovered"}
    ((_, back),) = _alerted(engine)[1:]
    assert "Telegram已恢复发送" in back, back
    assert heartbeats.watch(**watch) == {"telegram": "ok"}  # type: ignore[arg-type]


def test_nothing_waiting_is_no_outage(engine: Engine, clock: FakeClock) -> None:
    load_demo(engine)
    clock.advance(timedelta(days=1))  # a quiet night: no message sent, none to send
    assert heartbeats.watch(engine=engine, clock=clock, counters=Counters(),
                            platforms=["telegram", "wechat"], silence=SILENCE) == {
        "telegram": "ok", "wechat": "ok"}
    assert _alerts(engine) == []


def test_healthz_and_metrics_show_the_channels(engine: Engine, clock: FakeClock,
                                               tmp_path: Path) -> None:
    settings = _settings(engine, tmp_path)
    c = build_container(settings, clock=clock, engine=engine)
    _report(engine, clock, settings, c.counters)
    heartbeats.flush(engine, counters=c.counters, now=clock.now())
    clock.advance(SILENCE + timedelta(minutes=1))
    heartbeats.watch(engine=engine, clock=clock, counters=c.counters, platforms=["telegram"],
                     silence=SILENCE)
    with serve(create_app(settings, clock=clock, container=c, run_jobs=False)) as url:
        health = httpx.get(f"{url}/healthz", timeout=30)
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert health.status_code == 200  # a silent channel is an alert, not a dead server
    tg = health.json()["channels"]["telegram"]
    assert tg["last_receive"] is not None and tg["last_send"] is None
    assert tg["waiting"] >= 1 and tg["silent_since"] is not None
    assert 'linzhang_channel_silent{platform="telegram"} 1.0' in metrics
    assert 'linzhang_channel_last_receive_timestamp_seconds{platform="telegram"}' in metrics
    assert "web" not in health.json()["channels"]


def test_the_scheduler_job_flushes_and_watches(engine: Engine, clock: FakeClock,
                                               tmp_path: Path) -> None:
    from core.scheduler import CHANNEL_JOB_ID, ChannelWatch, add_channel_watch, build_scheduler
    from webhooks.app import watched_platforms

    settings = _settings(engine, tmp_path)
    assert watched_platforms(settings) == ["telegram"]  # the web chat is ours: not watched
    counters = Counters()
    scheduler = build_scheduler(engine=engine, clock=clock, settings=settings)
    add_channel_watch(scheduler, engine=engine, clock=clock, settings=settings,
                      counters=counters, platforms=watched_platforms(settings))
    job = scheduler.get_job(CHANNEL_JOB_ID)
    assert job is not None and isinstance(job.func, ChannelWatch)
    counters.beat("out", "telegram", clock.now())
    job.func()
    assert _shared(engine, "beat_out:telegram") is not None
