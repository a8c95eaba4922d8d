"""The words of the operational alerts core/ops.py (a stalled sweep), core/heartbeats.py
(a silent chat platform) and core/open311/hooks.py (a failing status webhook) send to the root
admins."""

from __future__ import annotations

from bot.flows.texts import t


class StallAlerts:
    """core.ops.StallTexts in the reader's language."""

    def stalled(self, *, lang: str, minutes: int) -> str:
        return t(lang, "ops_stalled", n=minutes)

    def recovered(self, *, lang: str, minutes: int) -> str:
        return t(lang, "ops_recovered", n=minutes)


PLATFORM_KEY = {"telegram": "ops_platform_telegram", "wechat": "ops_platform_wechat",
                "wecom": "ops_platform_wecom"}


class ChannelAlerts:
    """core.heartbeats.ChannelTexts in the reader's language."""

    def _name(self, lang: str, platform: str) -> str:
        key = PLATFORM_KEY.get(platform)
        return t(lang, key) if key else platform

    def silent(self, *, lang: str, platform: str, minutes: int, waiting: int) -> str:
        return t(lang, "ops_channel_silent", platform=self._name(lang, platform), n=minutes,
                 waiting=waiting)

    def back(self, *, lang: str, platform: str, minutes: int) -> str:
        return t(lang, "ops_channel_back", platform=self._name(lang, platform), n=minutes)


class HookAlerts:
    """core.open311.hooks.HookTexts in the reader's language."""

    def dead(self, *, lang: str, name: str, url: str, error: str) -> str:
        return t(lang, "open311_hook_dead", name=name, url=url, error=error)

    def gone(self, *, lang: str, name: str, url: str) -> str:
        return t(lang, "open311_hook_gone", name=name, url=url)
