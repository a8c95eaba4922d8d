"""GET /metrics: Prometheus text format, one registry per app (built by create_app).

Two kinds of figures:
- event counters of this process (core/counters.py: updates in, messages sent, 429s). With
  several workers each exposes its own and Prometheus sums them, e.g.
  `sum(rate(linzhang_messages_sent_total[1m])) by (platform)` is sends per second;
- gauges read from the shared database at scrape time (outbox depth, sweep lag, overdue
  cases), so every worker reports the same, right, figure: take `max`, not `sum`, of them;
- `linzhang_media_store_up`, a probe write into MEDIA_DIR at scrape time (take `min`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlmodel import Session

from core.cases.lists import CASES, overdue_clause
from core.container import Container
from core.heartbeats import Channel

log = logging.getLogger(__name__)


def platforms(c: Container) -> list[str]:
    """The platforms this deployment serves (the web chat always)."""
    s = c.settings
    on = [("telegram", s.telegram_bot_token), ("wechat", s.wechat_app_secret),
          ("wecom", s.wecom_secret)]
    return [name for name, secret in on if secret is not None] + ["web"]


class LinzhangCollector(Collector):
    """Reads the counters and queries the database each time Prometheus scrapes."""

    def __init__(self, c: Container) -> None:
        self.c = c

    def collect(self) -> Iterable[Metric]:
        yield from self._counters()
        yield from self._database()
        yield from self._media()

    def _media(self) -> Iterable[Metric]:
        from core.media.store import MediaStore

        # A real write into MEDIA_DIR at scrape time (as /healthz): 0 from the moment the disk
        # is read-only or full, 1 again as soon as it takes files.
        ok = MediaStore.from_settings(self.c.settings).probe() is None
        yield GaugeMetricFamily("linzhang_media_store_up", "1 when the media store can take a "
                                "file (a probe write into MEDIA_DIR), 0 while degraded",
                                value=int(ok))

    def _counters(self) -> Iterable[Metric]:
        updates, sent, throttled = self.c.counters.snapshot()
        u = CounterMetricFamily("linzhang_updates", "Updates received from chat platforms "
                                "(this process)", labels=["platform", "result"])
        for (platform, result), n in sorted(updates.items()):
            u.add_metric([platform, result], n)
        yield u
        s = CounterMetricFamily("linzhang_messages_sent", "Messages the platforms accepted "
                                "(this process); rate() is sends per second", labels=["platform"])
        t = CounterMetricFamily("linzhang_rate_limited", "Too-many-requests answers received "
                                "(Telegram 429, WeChat/WeCom 45009; this process)",
                                labels=["platform"])
        for platform in platforms(self.c):
            s.add_metric([platform], sent.get(platform, 0))
            t.add_metric([platform], throttled.get(platform, 0))
        yield s
        yield t

    def _database(self) -> Iterable[Metric]:
        from core import deliveries, outbox
        from core.heartbeats import channels
        from core.ops import stalled_since, sweep_lag

        up = GaugeMetricFamily("linzhang_database_up", "1 when the database answered the scrape")
        try:
            now = self.c.clock.now()
            with Session(self.c.engine) as session:
                depth = {p: deliveries.pending_for_platform(session, platform=p)
                         for p in platforms(self.c)}
                total = outbox.pending_count(session)
                lag = sweep_lag(session, now=now).total_seconds()
                overdue = int(session.execute(
                    sa.select(sa.func.count()).select_from(CASES).where(overdue_clause(now))
                ).scalar_one())
                stalled = stalled_since(session) is not None
                chans = channels(session, platforms=[p for p in platforms(self.c) if p != "web"],
                                 now=now, silence=self.c.settings.channel_silence)
        except sa.exc.SQLAlchemyError as exc:
            log.error("metrics: database unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        d = GaugeMetricFamily("linzhang_outbox_pending", "Outbox messages waiting to be sent "
                              "(a person reachable on two platforms counts on both; 'all' once)",
                              labels=["platform"])
        for platform, n in depth.items():
            d.add_metric([platform], n)
        d.add_metric(["all"], total)
        yield d
        yield GaugeMetricFamily("linzhang_sweep_lag_seconds", "How long the earliest due case "
                                "has waited past its due time (as /healthz)", value=lag)
        yield GaugeMetricFamily("linzhang_cases_overdue", "Unfinished cases that missed a "
                                "deadline or are past their running one", value=overdue)
        yield GaugeMetricFamily("linzhang_sweep_stalled", "1 while a stalled-sweep alert "
                                "episode is open", value=int(stalled))
        yield from _channel_gauges(chans)


def _channel_gauges(chans: list[Channel]) -> Iterable[Metric]:
    """Heartbeats (core/heartbeats.py), shared by every worker: take `max`."""
    rx = GaugeMetricFamily("linzhang_channel_last_receive_timestamp_seconds", "When the "
                           "platform last gave us an update (any worker; absent: never)",
                           labels=["platform"])
    tx = GaugeMetricFamily("linzhang_channel_last_send_timestamp_seconds", "When the platform "
                           "last took a message (any worker; absent: never)", labels=["platform"])
    silent = GaugeMetricFamily("linzhang_channel_silent", "1 while a silent-channel alert "
                               "episode is open (nothing sent while messages wait)",
                               labels=["platform"])
    for ch in chans:
        if ch.last_receive is not None:
            rx.add_metric([ch.platform], ch.last_receive.timestamp())
        if ch.last_send is not None:
            tx.add_metric([ch.platform], ch.last_send.timestamp())
        silent.add_metric([ch.platform], int(ch.silent_since is not None))
    yield rx
    yield tx
    yield silent


def build_registry(c: Container) -> CollectorRegistry:
    """A fresh registry for one app (nothing global: two apps in one process stay apart)."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    registry.register(LinzhangCollector(c))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def router(c: Container) -> APIRouter:
    r = APIRouter()
    registry = build_registry(c)

    @r.get("/metrics", tags=["operations"], include_in_schema=False)
    def metrics() -> Response:
        """Prometheus text format (scrape from the private network; see README, Deploying)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return r
