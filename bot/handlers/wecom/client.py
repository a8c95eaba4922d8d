"""The WeCom client (see bot/handlers/tencent_clients.py for the shared token)."""

from bot.handlers.tencent_clients import WeComClient

__all__ = ["WeComClient"]
