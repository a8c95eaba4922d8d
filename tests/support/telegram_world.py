"""The whole app against the fake Bot API, on a demo city in a SQLite file: what the Telegram
end-to-end tests share (each adds its own people, files and clock)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.fakes.telegram_api import FakeTelegram
from tests.support.demo_city import holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app


def demo_city(tmp_path: Path) -> tuple[str, Engine]:
    """A migrated SQLite file with the demo city; its URL and an engine on it."""
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    return url, engine


def link_telegram(engine: Engine, people: Iterable[tuple[str, str, int]]) -> None:
    """Give (role, node code, Telegram user id) holders their Telegram account."""
    for role, code, uid in people:
        who = holder_of(engine, role, code)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'telegram', :t, false)"),
                         {"p": who.person_id, "t": str(uid)})


@contextmanager
def telegram_app(engine: Engine, url: str, tmp_path: Path, clock: FakeClock,
                 **settings: Any) -> Iterator[tuple[FakeTelegram, str]]:
    """The fake Bot API and the app polling it (jobs and dispatcher running); the fake and the
    app's base URL."""
    with FakeTelegram() as tg:
        st = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                      telegram_bot_token=SecretStr(tg.token), telegram_api_base=tg.base_url,
                      media_dir=str(tmp_path / "media"), **settings)
        container = build_container(st, clock=clock, engine=engine)
        with serve(create_app(st, container=container, polling=True)) as base:
            yield tg, base
