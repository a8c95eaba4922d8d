"""The stalled-sweep alert: one message to the root admins per episode, a note when it clears."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatch import process
from bot.flows.types import Inbound
from core.cases.sweep import earliest_due, run_sweep
from core.clock import FakeClock
from core.container import build_container
from core.ops import Watch, watch_sweep
from core.outbox import OUT
from core.scheduler import STALL_JOB_ID, StallWatch, build_scheduler
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

INTERVAL = timedelta(minutes=1)


def _settings(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(_env_file=None,
                    database_url=engine.url.render_as_string(hide_password=False),
                    sweep_interval="1m", media_dir=str(tmp_path / "m"))


def _city_with_a_case(engine: Engine, clock: FakeClock, settings: Settings) -> None:
    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    with Session(engine) as s, s.begin():
        from core.hierarchy.services import link_identity

        link_identity(s, person_id=resident.person_id, platform="telegram", external_id="77",
                      now=clock.now(), proof="contact")
    process(engine, inbound=Inbound(platform="telegram", update_id="1", chat_id="77",
                                    sender_id="77", received_at=clock.now(), text="路灯不亮"),
            payload={}, clock=clock, settings=settings)


def _alerts(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(OUT.c.person_id, OUT.c.text)
                            .where(OUT.c.kind == "ops_alert").order_by(OUT.c.id)).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def _due(engine: Engine) -> datetime:
    with Session(engine) as s:
        due = earliest_due(s)
    assert due is not None
    return due


def test_one_alert_per_episode_and_a_recovery_note(engine: Engine, clock: FakeClock,
                                                   tmp_path: Path) -> None:
    settings = _settings(engine, tmp_path)
    _city_with_a_case(engine, clock, settings)
    admin = holder_of(engine, "admin", "341602")  # the root node's admin
    town_admin = holder_of(engine, "admin", "341602001")
    assert watch_sweep(engine, clock=clock, interval=INTERVAL).state is Watch.ok

    # Due, but within two intervals (and the grace): a sweep may simply not have run yet.
    clock.set(_due(engine) + 2 * INTERVAL)
    assert watch_sweep(engine, clock=clock, interval=INTERVAL).state is Watch.ok
    assert _alerts(engine) == []

    clock.advance(timedelta(minutes=5))
    got = watch_sweep(engine, clock=clock, interval=INTERVAL)
    assert got.state is Watch.alerted and got.lag == timedelta(minutes=7)
    alerts = _alerts(engine)
    assert [pid for pid, _ in alerts] == [admin.person_id]  # not the town's admin
    assert town_admin.person_id != admin.person_id
    assert alerts[0][1].startswith(
        "【警报】期限检查已停滞：最早到期的事项已超时 7 分钟未处理，请检查服务。")

    # Every check while the episode lasts stays quiet.
    for _ in range(3):
        clock.advance(INTERVAL)
        assert watch_sweep(engine, clock=clock, interval=INTERVAL).state is Watch.stalled
    assert len(_alerts(engine)) == 1

    run_sweep(engine, clock=clock, batch=100)
    got = watch_sweep(engine, clock=clock, interval=INTERVAL)
    assert got.state is Watch.recovered
    alerts = _alerts(engine)
    assert len(alerts) == 2 and alerts[1][0] == admin.person_id
    assert alerts[1][1].startswith("【恢复】期限检查已恢复（停滞约 10 分钟）")
    assert watch_sweep(engine, clock=clock, interval=INTERVAL).state is Watch.ok
    assert len(_alerts(engine)) == 2

    # A later stall is a new episode: alerted again, once.
    clock.set(_due(engine) + 10 * INTERVAL)
    assert watch_sweep(engine, clock=clock, interval=INTERVAL).state is Watch.alerted
    assert watch_sweep(engine, clock=clock, interval=INTERVAL).state is Watch.stalled
    assert len(_alerts(engine)) == 3


def test_the_watch_is_its_own_job_and_healthz_shows_the_episode(
        engine: Engine, clock: FakeClock, tmp_path: Path) -> None:
    settings = _settings(engine, tmp_path)
    _city_with_a_case(engine, clock, settings)
    scheduler = build_scheduler(engine=engine, clock=clock, settings=settings)
    job = scheduler.get_job(STALL_JOB_ID)
    assert job is not None and isinstance(job.func, StallWatch)
    assert job.trigger.interval == settings.stall_check_interval

    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container, run_jobs=False)) as base:
        assert "stalled_since" not in httpx.get(f"{base}/healthz").json()
        clock.set(_due(engine) + 10 * INTERVAL)
        job.func()  # what the scheduler runs every stall_check_interval
        body = httpx.get(f"{base}/healthz").json()
        assert body["stalled_since"] == _due(engine).isoformat()
        assert body["sweep_lag_seconds"] == 600.0
        assert len(_alerts(engine)) == 1


def test_an_english_speaking_root_admin_is_alerted_in_english(engine: Engine, clock: FakeClock,
                                                              tmp_path: Path) -> None:
    _city_with_a_case(engine, clock, _settings(engine, tmp_path))
    admin = holder_of(engine, "admin", "341602")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE person SET language = 'en' WHERE id = :p"),
                     {"p": admin.person_id})
    clock.set(_due(engine) + 7 * INTERVAL)
    assert watch_sweep(engine, clock=clock, interval=INTERVAL).state is Watch.alerted
    assert _alerts(engine) == [(admin.person_id, (
        "ALERT: the deadline sweep has stalled: the earliest due case is 7 min overdue. "
        "Please check the service."))]
