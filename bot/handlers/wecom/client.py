"""The WeCom client (see bot/handlers/wechat/client.py for the shared token)."""

from bot.handlers.wechat.client import WeComClient

__all__ = ["WeComClient"]
