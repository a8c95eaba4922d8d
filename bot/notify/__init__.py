"""Case events → who hears of them → outbox rows (see rules.py for the table)."""

from __future__ import annotations

from core.cases import events
from core.notices import events as notice_events


def install() -> None:
    """Subscribe the rollups, the notifier and the status webhooks to case events; the
    composition roots call this (webhooks/app.py, the CLI, the test fixtures). Idempotent."""
    from bot.notify import campaigns
    from bot.notify.notices import notify_notices
    from bot.notify.notifier import notify
    from bot.notify.ops_texts import ChannelAlerts, HookAlerts, StallAlerts
    from core import heartbeats, ops
    from core.campaigns import events as campaign_events
    from core.open311 import hooks
    from core.rollup.refresh import on_events

    events.subscribe("rollup", on_events)
    events.subscribe("notify", notify)
    events.subscribe("open311_hooks", hooks.on_events)
    notice_events.subscribe("notify", notify_notices)
    campaign_events.subscribe("notify", campaigns.notify)
    ops.use_texts(StallAlerts())
    heartbeats.use_texts(ChannelAlerts())
    hooks.use_texts(HookAlerts())


__all__ = ["install"]
