"""Issue 16's story in one run of the whole app: a 12345 operator files, on the hotline
console, a case for a caller who has only a phone; the 邻长 answers in Telegram; the caller gets
the receipt, the answer and "fixed?" by SMS and replies "1"; the 12345 system reads the status
over Open311 and has received each change by its signed status webhook.

Real parts on loopback: the app (polling a fake Bot API), the fake Tencent SMS API (it checks
the SDK's TC3 signature and Tencent's per-number spacing on the injected clock) and a webhook
receiver. The clock is a FakeClock: it is moved past Tencent's 30 s between two texts to one
number instead of waiting for it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core import accounts
from core.clock import FakeClock
from core.db import write_session
from core.open311 import hooks, keys
from tests.e2e.test_telegram_story import LEADER_TG, buttons, msg, press, private, wait_for
from tests.fakes.sms_api import FakeSmsApi
from tests.support.demo_city import LIN1, TOWN, holder_of
from tests.support.hook_receiver import Receiver, receiving
from tests.support.telegram_world import demo_city, link_telegram, telegram_app

CLIENT = "12345热线"
TOKEN = "sms-callback-secret"
NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # a Monday, 12:00 in Shanghai


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    clock.set(NOON)
    url, engine = demo_city(tmp_path)
    link_telegram(engine, (("neighbor_leader", LIN1, LEADER_TG),))
    receiver = Receiver()
    with FakeSmsApi(clock) as sms, receiving(receiver) as hook_url:
        with write_session(engine) as s:
            api_key = keys.create_key(s, name=CLIENT, scope_code=TOWN, now=clock.now())
            secret = hooks.set_hook(s, client=CLIENT, url=hook_url, scope_wide=False,
                                    now=clock.now())
        with telegram_app(
                engine, url, tmp_path, clock,
                sms_secret_id=sms.secret_id, sms_secret_key=SecretStr(sms.secret_key),
                sms_sdk_app_id=sms.app_id, sms_sign_name=sms.sign_name,
                sms_api_base=sms.endpoint, sms_template_receipt="T-RECEIPT",
                sms_template_answer="T-ANSWER", sms_template_fixed="T-FIXED",
                sms_callback_token=SecretStr(TOKEN), hotline_open311_client=CLIENT) as (tg, base):
            yield {"tg": tg, "sms": sms, "engine": engine, "clock": clock, "url": base,
                   "api_key": api_key, "secret": secret, "receiver": receiver}


def _texts_to(sms: FakeSmsApi, phone: str) -> list[str]:
    return [m.template for m in sms.sent_to(phone)]


def test_one_number_from_the_phone_call_to_the_12345_system(world: dict[str, Any]) -> None:
    tg, sms, engine, clock = world["tg"], world["sms"], world["engine"], world["clock"]
    caller = holder_of(engine, "resident", LIN1)  # a phone on file, no chat account
    operator = holder_of(engine, "admin", TOWN)  # the town's hotline desk
    with write_session(engine) as s:
        token = accounts.issue_login_token(s, person_id=operator.person_id, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    with closing(httpx.Client(base_url=world["url"], timeout=30)) as web:
        assert web.get(f"/login/{token}", follow_redirects=False).status_code == 303
        page = web.get("/dashboard/hotline", params={"phone": caller.phone}).text
        assert "回执以短信发到此号码" in page  # the console says how the caller will hear
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        done = web.post("/dashboard/hotline", follow_redirects=False, data={
            "csrf": csrf.group(1), "phone": caller.phone, "words": "三号楼电梯困人了，已经半小时"})
        assert done.status_code == 303
        assert "回执将以短信发到来电人的手机" in web.get(done.headers["location"]).text
    with engine.connect() as conn:
        case_id = int(conn.execute(sa.text("SELECT id FROM cases")).scalar_one())

    # The receipt by SMS; the card at the 邻长 in Telegram.
    wait_for(lambda: _texts_to(sms, caller.phone) == ["T-RECEIPT"], why="the receipt by SMS")
    card = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG)
                             if "电梯困人" in (m.text or "")], why="the card at the 邻长")[0]
    press(tg, LEADER_TG, card, buttons(card)["受理"])
    clock.advance(timedelta(seconds=31))  # Tencent spaces two texts to one number by 30 s
    msg(tg, LEADER_TG, text="物业已到场，人已救出",
        reply_to_message={"message_id": card.message_id, "date": 1700000000,
                          "chat": private(LEADER_TG), "text": card.text})
    wait_for(lambda: _texts_to(sms, caller.phone) == ["T-RECEIPT", "T-ANSWER"],
             why="the answer by SMS")
    assert "人已救出" in sms.sent_to(caller.phone)[1].params[1]

    # The 邻长 says it is fixed (the card, edited since, has the button); the caller is asked
    # by SMS and answers "1".
    def current_card() -> Any:
        return next(m for m in tg.sent_to(LEADER_TG) if m.message_id == card.message_id)
    wait_for(lambda: "已答复" in (current_card().text or "")
             and "已解决" in buttons(current_card()), why="the card up to date after the answer")
    clock.advance(timedelta(seconds=31))
    press(tg, LEADER_TG, current_card(), buttons(current_card())["已解决"])
    wait_for(lambda: _texts_to(sms, caller.phone)[-1:] == ["T-FIXED"], why="“fixed?” by SMS")
    with closing(httpx.Client(base_url=world["url"], timeout=30)) as provider:
        body = {"extend": "", "mobile": caller.phone, "nationcode": "86", "sign": "邻长制",
                "text": "1", "time": int(clock.now().timestamp())}
        r = provider.post("/webhooks/sms", params={"token": TOKEN},
                          content=json.dumps(body, ensure_ascii=False).encode())
        assert r.status_code == 200, r.text

    def state() -> str:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT state FROM cases WHERE id = :c"),
                                    {"c": case_id}).scalar_one())
    wait_for(lambda: state() == "closed", why="the caller's 1 closes the case")

    # The 12345 system reads it back over Open311 …
    with closing(httpx.Client(base_url=world["url"], timeout=30)) as system:
        got = system.get(f"/open311/v2/requests/{case_id}.json",
                         params={"api_key": world["api_key"]})
        assert got.status_code == 200, got.text
        (request,) = got.json()
        assert request["status"] == "closed" and request["service_request_id"] == str(case_id)
        assert "电梯困人" in request["description"]
    # … and heard of every change by its signed webhook, in order.
    receiver: Receiver = world["receiver"]
    def changes() -> list[Any]:
        return [p for p in receiver.accepted if p.json["service_request_id"] == str(case_id)]
    wait_for(lambda: len(changes()) == 5, why="five changes at the 12345 system")
    posts = changes()
    assert all(p.signed_with(world["secret"]) for p in posts)
    # Filed, accepted, answered, fixed, confirmed by the caller's "1": in order, each once.
    assert [p.json["seq"] for p in posts] == [1, 2, 3, 4, 5]
    assert [p.json["status"] for p in posts] == ["open", "open", "open", "closed", "closed"]
    assert "人已救出" in posts[2].json["description"]
    assert not posts[0].signed_with("not-the-secret")

