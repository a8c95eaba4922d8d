"""/healthz tells a load balancer when the database is gone or the deadline sweep stalled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sqlmodel import Session

from bot.dispatch import process
from bot.flows.types import Inbound
from core.cases.sweep import run_sweep
from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def test_health_fails_while_the_sweep_is_behind(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    with Session(engine) as s, s.begin():
        from core.hierarchy.services import link_identity

        link_identity(s, person_id=resident.person_id, platform="telegram", external_id="77",
                      now=clock.now(), proof="contact")
    # A sweep interval of an hour: the scheduler will not sweep during this test.
    settings = Settings(_env_file=None, database_url=url, sweep_interval="1h",  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "m"))
    process(engine, inbound=Inbound(platform="telegram", update_id="1", chat_id="77",
                                    sender_id="77", received_at=clock.now(), text="路灯不亮"),
            payload={}, clock=clock, settings=settings)
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container)) as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        clock.advance(timedelta(hours=5))
        r = httpx.get(f"{base}/healthz")
        assert r.status_code == 503 and r.json()["status"] == "behind"
        run_sweep(engine, clock=clock, batch=100)
        assert httpx.get(f"{base}/healthz").status_code == 200
