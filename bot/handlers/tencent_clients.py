"""wechatpy clients pointed at `WECHAT_API_BASE` / `WECOM_API_BASE`, sharing one access token.

wechatpy keeps the token in a `session` storage and refreshes it through
`fetch_access_token`, with the token URL written into the library; here the token lives in
core.tokens (the database, shared by every worker), and refreshing goes through its lease so
that only one process asks the platform at a time. wechatpy is synchronous: call these from
a worker thread (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.engine import Engine
from wechatpy import WeChatClient
from wechatpy.enterprise import WeChatClient as WeComClientBase
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from core import tokens
from core.clock import Clock
from core.settings import Settings


class TokenSession(SessionStorage):
    """wechatpy's session storage over core.tokens (only the access token goes through it)."""

    def __init__(self, engine: Engine, clock: Clock, prefix: str) -> None:
        self.engine, self.clock, self.prefix = engine, clock, prefix

    def get(self, key: str, default: Any = None) -> Any:
        return tokens.cached(self.engine, key=f"{self.prefix}:{key}", now=self.clock.now()) \
            or default

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        tokens.store(self.engine, key=f"{self.prefix}:{key}", value=str(value),
                     expires_in=int(ttl or 7200), now=self.clock.now())

    def delete(self, key: str) -> None:
        tokens.invalidate(self.engine, key=f"{self.prefix}:{key}")


class SharedToken:
    """The token parts common to both clients (mixed in before the wechatpy class)."""

    engine: Engine
    clock: Clock
    token_prefix: str
    token_url: str
    token_params: dict[str, str]
    access_token_key: str
    _http: Any

    def _remote_token(self) -> tuple[str, int]:
        res = self._http.get(self.token_url, params=self.token_params, timeout=10)
        res.raise_for_status()
        data = res.json()
        if data.get("errcode"):
            raise WeChatClientException(data["errcode"], data.get("errmsg"), client=self)
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def _token(self, stale: str | None = None) -> str:
        return tokens.token(self.engine, key=f"{self.token_prefix}:{self.access_token_key}",
                            fetch=self._remote_token, clock=self.clock, stale=stale,
                            wait=time.sleep)

    @property
    def access_token(self) -> str:
        return self._token()

    def fetch_access_token(self) -> dict[str, Any]:
        # wechatpy calls this when the platform refused the token: refresh unless another
        # process already did.
        stale = tokens.cached(self.engine, key=f"{self.token_prefix}:{self.access_token_key}",
                              now=self.clock.now())
        return {"access_token": self._token(stale=stale)}


class OAClient(SharedToken, WeChatClient):
    """The Official Account's API client."""

    def __init__(self, *, settings: Settings, engine: Engine, clock: Clock) -> None:
        assert settings.wechat_app_id and settings.wechat_app_secret
        base = settings.wechat_api_base.rstrip("/")
        self.API_BASE_URL = f"{base}/cgi-bin/"
        self.engine, self.clock, self.token_prefix = engine, clock, "wechat"
        self.token_url = f"{base}/cgi-bin/token"
        secret = settings.wechat_app_secret.get_secret_value()
        self.token_params = {"grant_type": "client_credential", "appid": settings.wechat_app_id,
                             "secret": secret}
        super().__init__(settings.wechat_app_id, secret,
                         session=TokenSession(engine, clock, "wechat"), timeout=15)

    def download(self, media_id: str) -> bytes:
        """A temporary media file's bytes (an error comes back as JSON instead)."""
        res = self.media.download(media_id)
        if isinstance(res, dict):
            raise WeChatClientException(res.get("errcode"), res.get("errmsg"), client=self)
        return bytes(res.content)


class WeComClient(SharedToken, WeComClientBase):
    """The self-built WeCom app's API client."""

    def __init__(self, *, settings: Settings, engine: Engine, clock: Clock) -> None:
        assert settings.wecom_corp_id and settings.wecom_secret
        base = settings.wecom_api_base.rstrip("/")
        self.API_BASE_URL = f"{base}/cgi-bin/"
        self.engine, self.clock, self.token_prefix = engine, clock, "wecom"
        self.token_url = f"{base}/cgi-bin/gettoken"
        secret = settings.wecom_secret.get_secret_value()
        self.token_params = {"corpid": settings.wecom_corp_id, "corpsecret": secret}
        self.agent_id = int(settings.wecom_agent_id or 0)
        super().__init__(settings.wecom_corp_id, secret,
                         session=TokenSession(engine, clock, "wecom"), timeout=15)

    def download(self, media_id: str) -> bytes:
        """A temporary media file's bytes (an error comes back as JSON instead)."""
        res = self.media.download(media_id)
        if isinstance(res, dict):
            raise WeChatClientException(res.get("errcode"), res.get("errmsg"), client=self)
        return bytes(res.content)
