"""`linzhang wechat-menu` against the fake WeChat server, and the access token that every
worker shares: two refreshes at the same moment ask the platform once (core/tokens.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from bot.handlers.tencent_clients import OAClient, WeComClient
from core.clock import FakeClock
from core.settings import Settings
from linzhang.cli import main
from tests.fakes.wechat_api import FakeWeChatApi
from tests.support.poll import poll


@pytest.fixture
def oa(clock: FakeClock) -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi("oa", clock) as api:
        yield api


def test_wechat_menu_creates_the_account_menu(db_url: str, oa: FakeWeChatApi, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for k, v in {"DATABASE_URL": db_url, "WECHAT_APP_ID": "wx1", "WECHAT_APP_SECRET": "s",
                 "WECHAT_API_BASE": oa.base_url, "MEDIA_DIR": str(tmp_path / "m")}.items():
        monkeypatch.setenv(k, v)
    assert main(["wechat-menu"]) == 0
    assert len(oa.menus) == 1
    buttons = {b["name"]: b["key"] for b in oa.menus[0]["button"]}
    # The keys are the ones parse.py maps to the flows' commands.
    assert buttons["我要反映"] == "report" and buttons["我的诉求"] == "my"
    assert all(b["type"] == "click" for b in oa.menus[0]["button"])


def wait_until(what: Callable[[], bool], timeout: float = 5.0) -> None:
    poll(what, timeout=timeout, what="the other worker")


@pytest.mark.parametrize("kind", ["oa", "wecom"])
def test_two_workers_refreshing_at_once_fetch_the_token_once(
        engine: Engine, clock: FakeClock, tmp_path: Path, kind: str) -> None:
    gate = threading.Event()
    with FakeWeChatApi(kind, clock, token_gate=gate) as api:
        settings = Settings(_env_file=None, database_url=str(engine.url),
                            media_dir=str(tmp_path / "m"),
                            wechat_app_id="wx1", wechat_app_secret=SecretStr("s"),
                            wechat_api_base=api.base_url, wecom_corp_id="ww1",
                            wecom_agent_id="1", wecom_secret=SecretStr("s"),
                            wecom_api_base=api.base_url)
        cls = OAClient if kind == "oa" else WeComClient
        # Two workers: separate clients (and connections), one database.
        clients = [cls(settings=settings, engine=engine, clock=clock) for _ in range(2)]
        got: list[str] = []
        errors: list[BaseException] = []

        def worker(c: OAClient | WeComClient) -> None:
            try:
                got.append(c.access_token)
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        # One worker holds the lease and waits at the platform; the other must not ask too.
        wait_until(lambda: api.token_requests >= 1)
        gate.set()
        for t in threads:
            t.join(15)
        assert errors == []
        assert api.tokens_issued == 1 and api.token_requests == 1
        assert got == [f"{kind}-token-1"] * 2
