"""The words of the stalled-sweep alerts that core/ops.py sends to the root admins."""

from __future__ import annotations

from bot.flows.texts import t


class StallAlerts:
    """core.ops.StallTexts in the reader's language."""

    def stalled(self, *, lang: str, minutes: int) -> str:
        return t(lang, "ops_stalled", n=minutes)

    def recovered(self, *, lang: str, minutes: int) -> str:
        return t(lang, "ops_recovered", n=minutes)
