"""GET /metrics over real HTTP: this process's counters, and gauges read from the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session
from telegram.error import RetryAfter

from bot.dispatch import process, record_unparsed
from bot.dispatcher.loop import Done, Later, Outcome, Stats, Work
from bot.dispatcher.once import pass_once
from bot.flows.types import Inbound
from bot.handlers.telegram.api import TelegramApi
from core import deliveries, outbox
from core.cases.lists import CASES, overdue_clause
from core.clock import FakeClock
from core.container import build_container
from core.counters import Counters
from core.ops import sweep_lag
from core.outbox import Draft, enqueue_many
from core.settings import Settings
from tests.fakes.telegram_api import FakeTelegram
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base: str) -> Samples:
    r = httpx.get(f"{base}/metrics", timeout=30)  # a loaded CI machine: not httpx's 5 s
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def inbound(update_id: str, text: str) -> Inbound:
    return Inbound(platform="telegram", update_id=update_id, chat_id="77", sender_id="77",
                   received_at=FakeClock().now(), text=text)


def test_metrics_count_updates_sends_and_429s_and_read_the_database(
        engine: Engine, clock: FakeClock, tmp_path: Path) -> None:
    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    with Session(engine) as s, s.begin():
        from core.hierarchy.services import link_identity

        link_identity(s, person_id=resident.person_id, platform="telegram", external_id="77",
                      now=clock.now(), proof="contact")
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None,
                            database_url=engine.url.render_as_string(hide_password=False),
                            telegram_bot_token=tg.token, telegram_api_base=tg.base_url,
                            media_dir=str(tmp_path / "m"))
        c = build_container(settings, clock=clock, engine=engine)
        # Updates as the platform routes hand them over: a report, its retry, one not understood.
        for _ in range(2):
            process(engine, inbound=inbound("1", "路灯不亮"), payload={}, clock=clock,
                    settings=settings, counters=c.counters)
        record_unparsed(engine, platform="telegram", update_id="2", payload={}, now=clock.now(),
                        error="ignored: not a message we act on", counters=c.counters)

        async def calls() -> None:
            async with TelegramApi(token=tg.token, base=tg.base_url, counters=c.counters) as api:
                await api.send_text(77, "一")
                await api.send_text(78, "二")
                tg.storm(30)
                with pytest.raises(RetryAfter):
                    await api.send_text(77, "三")

        asyncio.run(calls())
        clock.advance(timedelta(hours=5))  # past the 4 h reply deadline: overdue, sweep behind
        with serve(create_app(settings, container=c, run_jobs=False)) as base:
            got = scrape(base)

    with Session(engine) as s:
        pending_tg = deliveries.pending_for_platform(s, platform="telegram")
        pending_all = outbox.pending_count(s)
        lag = sweep_lag(s, now=clock.now()).total_seconds()
        overdue = s.execute(sa.select(sa.func.count()).select_from(CASES)
                            .where(overdue_clause(clock.now()))).scalar_one()
    assert got[("linzhang_updates_total", (("platform", "telegram"), ("result", "handled")))] == 1
    assert got[("linzhang_updates_total", (("platform", "telegram"), ("result", "duplicate")))] == 1
    assert got[("linzhang_updates_total", (("platform", "telegram"), ("result", "ignored")))] == 1
    assert got[("linzhang_messages_sent_total", (("platform", "telegram"),))] == 2
    assert got[("linzhang_rate_limited_total", (("platform", "telegram"),))] == 1
    assert got[("linzhang_messages_sent_total", (("platform", "web"),))] == 0
    assert got[("linzhang_database_up", ())] == 1
    assert pending_tg > 0 and overdue == 1 and lag > 3600
    assert got[("linzhang_outbox_pending", (("platform", "telegram"),))] == pending_tg
    assert got[("linzhang_outbox_pending", (("platform", "all"),))] == pending_all
    assert got[("linzhang_sweep_lag_seconds", ())] == lag
    assert got[("linzhang_cases_overdue", ())] == overdue
    assert got[("linzhang_sweep_stalled", ())] == 0
    assert ("process_cpu_seconds_total", ()) in got  # the standard process figures too


class ScriptedDeliverer:
    """A WeChat sender double: answers each row with the next scripted outcome."""

    platform = "wechat"

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes

    counts_rows = True

    async def deliver(self, work: Work) -> Outcome:
        return self.outcomes.pop(0)


def test_wechat_rows_sent_and_frequency_limits_are_counted(engine: Engine,
                                                           clock: FakeClock) -> None:
    with Session(engine) as s, s.begin():
        enqueue_many(s, drafts=[Draft(text=f"m{i}", kind="test", dedupe_key=f"k{i}",
                                      platform="wechat", address=f"o{i}") for i in range(3)],
                     now=clock.now())
    later = clock.now() + timedelta(minutes=1)
    counters = Counters()
    sender = ScriptedDeliverer([Done(), Later(later, "WeChat API frequency limit", throttled=True),
                                Later(later, "our own budget")])
    claimed = asyncio.run(pass_once(engine, sender=sender, clock=clock, stats=Stats(),
                                    counters=counters))
    assert claimed == 3
    _, sent, throttled = counters.snapshot()
    assert sent == {"wechat": 1} and throttled == {"wechat": 1}


def test_a_scrape_without_the_database_says_so(tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(_env_file=None, media_dir=str(tmp_path / "m"),
                        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    c = build_container(settings, clock=clock)
    c.counters.update_in("web")
    with serve(create_app(settings, container=c, run_jobs=False), lifespan="off") as base:
        got = scrape(base)
    assert got[("linzhang_database_up", ())] == 0
    assert got[("linzhang_updates_total", (("platform", "web"), ("result", "handled")))] == 1
    assert ("linzhang_outbox_pending", (("platform", "all"),)) not in got
