"""No secret reaches a log line: `linzhang -v serve` as deployed (a real process, JSON logs at
DEBUG from every library), driven through webhooks, a login link, a session cookie and
outbound calls to Telegram and WeChat that succeed and fail; then every secret is looked for
in everything the process wrote. A resident's report carries a phone and a house number: they
are masked in the log too, unless LOG_PERSONAL_DATA=true (then they are there, which shows
that the report's text did reach log lines)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from core.accounts import issue_login_token
from core.clock import SystemClock
from core.db import make_engine, migrate
from core.hierarchy.services import link_identity
from core.outbox import OUT, Draft, enqueue_many
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.wechat_api import FakeWeChatApi
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.poll import poll
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[2]
BOT_TOKEN = "7123456789:AAGsecretBotTokenPart-0123456789_abcdef"
HOOK_SECRET = "hook-secret-5f4e3d2c1b"
WECHAT_APP_SECRET = "wx-app-secret-9a8b7c6d5e"
WECHAT_TOKEN = "wx-callback-token-3c4d"
WECHAT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters
SESSION_SECRET = "session-signing-secret-8e7f"
ADMIN_CHAT = 5550001
BLOCKED_CHAT = 999
RESIDENT_CHAT, LEADER_CHAT = 5550002, 5550003
PHONE, HOUSE = "13955501234", "幸福路18号2单元301"
REPORT = f"我家{HOUSE}楼道灯坏了，电话{PHONE}"


def wait_for(what: str, check: Callable[[], object], proc: subprocess.Popen[bytes],
             timeout: float = 30.0) -> object:
    """Poll real work of another process, bounded (no deadline of the app is slept through)."""
    def alive_check() -> object:
        if proc.poll() is not None:
            raise AssertionError(f"linzhang serve exited ({proc.returncode}) before {what}")
        return check()

    return poll(alive_check, timeout=timeout, what=what, step=0.1)


def prepare(db: Path) -> str:
    """The demo city; the root admin on Telegram; a login token; rows for both platforms."""
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    load_demo(engine)
    admin = holder_of(engine, "admin", "341602")
    resident = holder_of(engine, "resident", LIN1)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        for who, chat in ((admin, ADMIN_CHAT), (resident, RESIDENT_CHAT),
                          (leader, LEADER_CHAT)):
            link_identity(s, person_id=who.person_id, platform="telegram",
                          external_id=str(chat), now=now, proof="contact")
        token = issue_login_token(s, person_id=admin.person_id, now=now,
                                  ttl=timedelta(minutes=15))
        enqueue_many(s, drafts=[
            Draft(text="您好", kind="test", dedupe_key="wx", platform="wechat", address="oWX1"),
            Draft(text="blocked", kind="test", dedupe_key="tg", platform="telegram",
                  address=str(BLOCKED_CHAT)),
        ], now=now)
    engine.dispose()
    return token


def row_status(db: Path, key: str) -> str:
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.select(OUT.c.status).where(OUT.c.dedupe_key == key))
                       .scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("personal_data", [False, True], ids=["masked", "LOG_PERSONAL_DATA"])
def test_secrets_and_tokens_never_reach_a_log_line(tmp_path: Path, personal_data: bool
                                                   ) -> None:
    db = tmp_path / "city.db"
    login_token = prepare(db)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "serve.log"
    with FakeTelegram(token=BOT_TOKEN) as tg, \
            FakeWeChatApi(kind="oa", clock=SystemClock()) as oa:
        tg.block(BLOCKED_CHAT)  # a failing call: 403
        tg.fail_next("setMyCommands", 1, status=502)  # another: a 502 at start-up
        oa.user_wrote("oWX1")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_URL", "LINZHANG", "TELEGRAM", "WECHAT", "WECOM"))}
        env.update({
            "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
            "DATABASE_URL": f"sqlite:///{db}", "MEDIA_DIR": str(tmp_path / "media"),
            "LOG_FORMAT": "json", "SESSION_SECRET": SESSION_SECRET, "PUBLIC_URL": base,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_API_BASE": tg.base_url,
            "TELEGRAM_WEBHOOK_SECRET": HOOK_SECRET,
            "WECHAT_APP_ID": "wx1234567890", "WECHAT_APP_SECRET": WECHAT_APP_SECRET,
            "WECHAT_TOKEN": WECHAT_TOKEN, "WECHAT_ENCODING_AES_KEY": WECHAT_AES_KEY,
            "WECHAT_API_BASE": oa.base_url,
            "LOG_PERSONAL_DATA": "true" if personal_data else "false",
        })
        with log_file.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "linzhang", "-v", "serve", "--host", "127.0.0.1",
                 "--port", str(port)], cwd=tmp_path, env=env, stdout=out,
                stderr=subprocess.STDOUT)
        try:
            with httpx.Client(base_url=base, timeout=10) as http:
                def up() -> bool:
                    try:
                        return http.get("/healthz").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_for("the server", up, proc)
                update = {"update_id": 1, "message": {
                    "message_id": 1, "date": int(time.time()), "text": "/login",
                    "chat": {"id": ADMIN_CHAT, "type": "private"},
                    "from": {"id": ADMIN_CHAT, "is_bot": False, "first_name": "李强"}}}
                wrong = http.post("/webhooks/telegram", json=update,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": "not-it"})
                assert wrong.status_code == 403
                assert http.post("/webhooks/telegram", json=update, headers={
                    "X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET}).status_code == 200
                link = wait_for("the login link", lambda: [
                    t for t in tg.texts_to(ADMIN_CHAT) if t and "/login/" in t], proc)
                bot_token = re.findall(r"/login/([\w-]+)", str(link))[0]
                said = {"update_id": 2, "message": {
                    "message_id": 2, "date": int(time.time()), "text": REPORT,
                    "chat": {"id": RESIDENT_CHAT, "type": "private"},
                    "from": {"id": RESIDENT_CHAT, "is_bot": False, "first_name": "王"}}}
                assert http.post("/webhooks/telegram", json=said, headers={
                    "X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET}).status_code == 200
                wait_for("the 邻长's new case", lambda: tg.texts_to(LEADER_CHAT), proc)

                cookies = []
                for token in (login_token, bot_token):
                    r = http.get(f"/login/{token}", follow_redirects=False)
                    assert r.status_code == 303, r.text
                    cookies.append(r.cookies["lz_dash"])
                http.cookies.set("lz_dash", cookies[0])
                assert http.get("/", follow_redirects=True).status_code == 200
                assert http.get("/webhooks/wechat", params={
                    "signature": "bad", "timestamp": "1", "nonce": "2",
                    "echostr": "x"}).status_code == 403

                wait_for("the WeChat message", lambda: oa.sent_to("oWX1"), proc)
                wait_for("the blocked chat's refusal",
                         lambda: row_status(db, "tg") == "dead", proc)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)

    text = log_file.read_text(encoding="utf-8")
    secrets = {
        "bot token": BOT_TOKEN, "bot token's secret half": BOT_TOKEN.split(":")[1],
        "webhook secret": HOOK_SECRET, "WeChat app secret": WECHAT_APP_SECRET,
        "WeChat token": WECHAT_TOKEN, "WeChat AES key": WECHAT_AES_KEY,
        "session secret": SESSION_SECRET, "login token": login_token,
        "login token sent by the bot": bot_token, "WeChat access token": "oa-token-1",
        **{f"session cookie {i}": c for i, c in enumerate(cookies)},
    }
    leaked = [name for name, value in secrets.items() if value in text]
    assert leaked == [], f"in the log: {leaked}"
    # The lines that would have carried them were written (redacted), so the test saw them.
    for shape in ("/bot***/sendMessage", "/login/***", "secret=***", "access_token=***"):
        assert shape in text, shape
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) > 20
    bad = [line for line in lines if not _is_json(line)]
    assert bad == [], bad[:5]
    if personal_data:
        assert PHONE in text and "18号2单元301" in text, "the report never reached the log"
    else:
        assert PHONE not in text and PHONE[-8:] not in text and "2单元301" not in text
        assert "139****1234" in text and "幸福路**号***" in text  # masked, not dropped


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
