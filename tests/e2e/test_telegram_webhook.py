"""POST /webhooks/telegram over real HTTP: secrets, duplicates, garbage, and a report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

SECRET = "s3cret-token_ABC"


@pytest.fixture
def app_url(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[str, object]]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                        telegram_webhook_secret=SecretStr(SECRET),
                        media_dir=str(tmp_path / "media"))
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=container, run_jobs=False)) as base:
        yield base, engine


def message(update_id: int, user_id: int, text: str) -> dict[str, object]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1700000000, "text": text,
        "chat": {"id": user_id, "type": "private", "first_name": "王"},
        "from": {"id": user_id, "is_bot": False, "first_name": "王", "language_code": "zh"},
    }}


def post(base: str, body: object, secret: str | None = SECRET) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{base}/webhooks/telegram", content=data, headers=headers, timeout=10)


def count(engine: object, table: str) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_forged_or_missing_secret_is_refused_and_changes_nothing(app_url) -> None:  # type: ignore[no-untyped-def]
    base, engine = app_url
    assert post(base, message(1, 42, "hello"), secret="wrong").status_code == 403
    assert post(base, message(1, 42, "hello"), secret=None).status_code == 403
    assert post(base, message(1, 42, "hello"), secret=SECRET[:-1]).status_code == 403
    assert count(engine, "inbound_update") == 0
    assert count(engine, "outbox") == 0


def test_a_report_is_stored_once_even_when_telegram_retries(app_url) -> None:  # type: ignore[no-untyped-def]
    base, engine = app_url
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', '777', false)"),
                     {"p": resident.person_id})
    for _ in range(3):
        assert post(base, message(10, 777, "楼道里的灯坏了")).status_code == 200
    assert count(engine, "cases") == 1
    assert count(engine, "inbound_update") == 1


def test_garbage_is_answered_200_and_logged_never_retried(app_url) -> None:  # type: ignore[no-untyped-def]
    base, engine = app_url
    for body in (b"not json at all", b"[]", b'{"update_id": "x"}', {"update_id": 5},
                 {"update_id": 6, "message": {"oops": True}},
                 {"update_id": 7, "edited_message": message(7, 1, "x")["message"]}):
        assert post(base, body).status_code == 200
    assert count(engine, "cases") == 0
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT update_id, status FROM inbound_update"
                                    " ORDER BY update_id")).all()
    assert [u for u, _ in kept] == ["5", "6", "7"]
    assert all(status == "failed" for _, status in kept)


def test_a_stranger_is_told_how_to_join_and_their_words_kept(app_url) -> None:  # type: ignore[no-untyped-def]
    base, engine = app_url
    assert post(base, message(20, 31337, "我家门口的井盖丢了")).status_code == 200
    assert count(engine, "pending_report") == 1
    with engine.connect() as conn:
        text = conn.execute(sa.text("SELECT text FROM outbox WHERE address = '31337'")).scalar()
    assert text is not None and "二维码" in text


def test_oversized_bodies_are_refused(app_url) -> None:  # type: ignore[no-untyped-def]
    base, engine = app_url
    assert post(base, b"{" + b" " * (2 << 20) + b"}").status_code == 413
    assert count(engine, "inbound_update") == 0
