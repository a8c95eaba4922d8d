"""SMS for residents no chat reaches, through the real Tencent Cloud SDK against the fake SMS
API on loopback (which checks the SDK's TC3 signature): template messages for the receipt, the
answer and "fixed?", the reply callback, caps held to the next day, the provider's limits,
and nobody who has a chat getting a text."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from bot.dispatcher.loop import Stats
from bot.dispatcher.once import pass_once
from bot.handlers.sms.transport import SmsTransport
from core.cases import actions
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.model import ChatIdentity
from core.settings import Settings
from tests.casehelpers import get, open_case, outbox
from tests.cityfactory import City, build_city
from tests.fakes.sms_api import FakeSmsApi
from tests.support.server import serve
from webhooks.app import create_app

PHONE = "13900000009"  # resident1 of the test city, with no chat account
TOKEN = "callback-secret"
SMS_ON = frozenset({"web", "sms"})
NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture
def api(clock: FakeClock) -> Iterator[FakeSmsApi]:
    clock.set(NOON)
    with FakeSmsApi(clock) as fake:
        yield fake


def sms_settings(engine: Engine, api: FakeSmsApi, tmp: Path, **kw: Any) -> Settings:
    return Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                    media_dir=str(tmp / "media"), sms_secret_id=api.secret_id,
                    sms_secret_key=SecretStr(api.secret_key), sms_sdk_app_id=api.app_id,
                    sms_sign_name=api.sign_name, sms_api_base=api.endpoint,
                    sms_template_receipt="T-RECEIPT", sms_template_answer="T-ANSWER",
                    sms_template_fixed="T-FIXED", sms_template_notice="T-NOTICE",
                    sms_callback_token=SecretStr(TOKEN), **kw)


def drain(engine: Engine, clock: FakeClock, sender: SmsTransport,
          configured: frozenset[str] = SMS_ON) -> Stats:
    stats = Stats()
    for _ in range(5):
        if not asyncio.run(pass_once(engine, sender=sender, clock=clock, stats=stats,
                                     configured=configured, settings=sender.settings)):
            break
    return stats


def answer(engine: Engine, clock: FakeClock, city: City, case_id: int) -> None:
    with session_scope(engine) as s:
        actions.reply(s, clock=clock, case_id=case_id, person_id=city["leader1"],
                      version=get(engine, case_id).version, text="明天上午清理楼道杂物")
    clock.advance(timedelta(seconds=31))  # the provider's 30 s per number


def resolve(engine: Engine, clock: FakeClock, city: City, case_id: int) -> None:
    with session_scope(engine) as s:
        actions.resolve(s, clock=clock, case_id=case_id, person_id=city["leader1"],
                        version=get(engine, case_id).version, note="已清理")


def test_receipt_answer_and_fixed_go_by_their_templates(engine, clock, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    sender = SmsTransport(engine=engine, settings=sms_settings(engine, api, tmp_path),
                          clock=clock)
    case_id = open_case(engine, clock, city, text="楼道里堆满杂物，有消防隐患，请尽快处理一下谢谢")
    drain(engine, clock, sender)
    clock.advance(timedelta(seconds=31))
    answer(engine, clock, city, case_id)
    drain(engine, clock, sender)
    clock.advance(timedelta(seconds=31))
    resolve(engine, clock, city, case_id)
    drain(engine, clock, sender)
    got = api.sent_to(PHONE)
    assert [m.template for m in got] == ["T-RECEIPT", "T-ANSWER", "T-FIXED"]
    assert got[0].phone == "+86" + PHONE
    assert got[0].params[0] == str(case_id) and got[2].params == [str(case_id)]
    assert all(len(p) <= 20 for m in got for p in m.params)
    assert "明天上午清理" in got[1].params[1]
    # Only the resident's template kinds went by SMS; what has no template stayed off it.
    assert not [r for r in api.refused if r[1] != "Ok"]


def test_a_person_with_a_chat_gets_no_sms(engine, clock, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=city["resident1"], platform="telegram",
                           external_id="777", last_seen_at=clock.now()))
    st = sms_settings(engine, api, tmp_path, telegram_bot_token=SecretStr("1:x"))
    sender = SmsTransport(engine=engine, settings=st, clock=clock)
    open_case(engine, clock, city)
    drain(engine, clock, sender, configured=frozenset({"web", "telegram", "sms"}))
    assert api.sent == []
    receipt = outbox(engine, kind="case_opened")[0]
    assert receipt.status == "pending"  # Telegram's to send


def test_over_the_daily_cap_a_text_waits_for_the_next_day(engine, clock, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    st = sms_settings(engine, api, tmp_path, sms_daily_cap_per_number=1)
    sender = SmsTransport(engine=engine, settings=st, clock=clock)
    case_id = open_case(engine, clock, city)
    drain(engine, clock, sender)
    clock.advance(timedelta(minutes=5))
    answer(engine, clock, city, case_id)
    drain(engine, clock, sender)
    assert [m.template for m in api.sent_to(PHONE)] == ["T-RECEIPT"]
    held = outbox(engine, kind="replied")[0]
    assert held.status == "pending" and held.attempts == 0
    assert "number cap" in (held.last_error or "")
    clock.set(datetime(2026, 3, 2, 16, 0, 1, tzinfo=UTC))  # 00:00:01 the next day in Shanghai
    drain(engine, clock, sender)
    assert [m.template for m in api.sent_to(PHONE)] == ["T-RECEIPT", "T-ANSWER"]
    assert outbox(engine, kind="replied")[0].status == "sent"


def test_the_deployment_cap_tells_the_root_admins_once_a_day(engine, clock, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    st = sms_settings(engine, api, tmp_path, sms_daily_cap=1)
    sender = SmsTransport(engine=engine, settings=st, clock=clock)
    open_case(engine, clock, city, resident="resident1")
    open_case(engine, clock, city, resident="resident2", text="路灯坏了三天了")
    open_case(engine, clock, city, resident="resident3", text="下水道堵了")
    drain(engine, clock, sender)
    clock.advance(timedelta(minutes=1))
    drain(engine, clock, sender)
    assert len(api.sent) == 1
    notes = outbox(engine, kind="sms_cap")
    assert len(notes) == 1 and notes[0].person_id == city["district_admin"]
    pending = [r for r in outbox(engine, kind="case_opened") if r.status == "pending"
               and r.person_id in (city["resident2"], city["resident3"])]
    assert len(pending) == 2  # held, not lost


def test_the_providers_limits_put_a_text_off(engine, clock, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    sender = SmsTransport(engine=engine, settings=sms_settings(engine, api, tmp_path),
                          clock=clock)
    api.per_second = 0  # every request: RequestLimitExceeded
    open_case(engine, clock, city)
    stats = drain(engine, clock, sender)
    row = outbox(engine, kind="case_opened")[0]
    assert row.status == "pending" and row.attempts == 0 and stats.rows_deferred >= 1
    assert "RequestLimitExceeded" in (row.last_error or "")
    api.per_second, api.daily_cap = 100, 0  # the provider's own daily limit for the number
    clock.advance(timedelta(seconds=2))
    drain(engine, clock, sender)
    row = outbox(engine, kind="case_opened")[0]
    assert row.status == "pending" and row.attempts == 0
    assert "PhoneNumberDailyLimit" in (row.last_error or "")
    assert row.next_attempt_at.replace(tzinfo=UTC) == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


def test_a_wrong_secret_is_refused_and_retried_with_backoff(engine, clock, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    st = sms_settings(engine, api, tmp_path).model_copy(
        update={"sms_secret_key": SecretStr("not-it")})
    sender = SmsTransport(engine=engine, settings=st, clock=clock)
    open_case(engine, clock, city)
    drain(engine, clock, sender)
    row = outbox(engine, kind="case_opened")[0]
    assert api.sent == [] and ("", "AuthFailure.SignatureFailure") in api.refused
    assert row.status == "failed" and row.attempts == 1  # backoff, not dead


# ---- the reply callback ----------------------------------------------------------------------


@pytest.fixture
def app(engine: Engine, clock: FakeClock, api: FakeSmsApi, tmp_path: Path
        ) -> Iterator[httpx.Client]:
    st = sms_settings(engine, api, tmp_path)
    c = build_container(st, clock=clock, engine=engine)
    with serve(create_app(st, container=c, run_jobs=False), lifespan="off") as url, \
            httpx.Client(base_url=url) as http:
        yield http


def reply(http: httpx.Client, text: str, *, token: str = TOKEN, at: int = 1772424000
          ) -> httpx.Response:
    body = {"extend": "", "mobile": PHONE, "nationcode": "86", "sign": "邻长制",
            "text": text, "time": at}
    return http.post("/webhooks/sms", params={"token": token},
                     content=json.dumps(body, ensure_ascii=False).encode())


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_reply_1_confirms_the_fix_as_in_chat(engine, clock, api, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    case_id = open_case(engine, clock, city)
    answer(engine, clock, city, case_id)
    resolve(engine, clock, city, case_id)
    r = reply(app, "1")
    assert r.status_code == 200 and r.json() == {"result": 0, "errmsg": "OK"}
    case = get(engine, case_id)
    assert case.state == "closed" and case.rating == 5
    assert reply(app, "1").status_code == 200  # Tencent's retry: one update
    assert count(engine, "inbound_update") == 1


def test_a_reply_2_reopens_the_case(engine, clock, api, app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    case_id = open_case(engine, clock, city)
    answer(engine, clock, city, case_id)
    resolve(engine, clock, city, case_id)
    assert reply(app, "2").status_code == 200
    assert get(engine, case_id).state == "accepted"


def test_a_forged_callback_is_refused_and_nothing_is_stored(engine, clock, api, app) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    case_id = open_case(engine, clock, city)
    answer(engine, clock, city, case_id)
    resolve(engine, clock, city, case_id)
    before = count(engine, "outbox")
    for token in ("", "callback-secreT", "x" * 200):
        assert reply(app, "1", token=token).status_code == 403
    no_token = app.post("/webhooks/sms", content=b'{"mobile": "13900000009", "text": "1"}')
    assert no_token.status_code == 403
    assert count(engine, "inbound_update") == 0 and count(engine, "outbox") == before
    assert count(engine, "chat_identity") == 0
    assert get(engine, case_id).state == "resolved"


def test_a_reply_from_an_unknown_number_is_kept_not_acted_on(engine, clock, api, app) -> None:  # type: ignore[no-untyped-def]
    build_city(engine)
    body = {"mobile": "13100000000", "nationcode": "86", "text": "你好", "time": 1, "sign": ""}
    r = app.post("/webhooks/sms", params={"token": TOKEN}, content=json.dumps(body).encode())
    assert r.status_code == 200
    assert count(engine, "inbound_update") == 1 and count(engine, "chat_identity") == 0
    assert app.post("/webhooks/sms", params={"token": TOKEN},
                    content=b"not json").status_code == 200  # kept with why, not retried


def test_the_root_figures_page_shows_this_months_sms(engine, clock, api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core import accounts

    city = build_city(engine)
    st = sms_settings(engine, api, tmp_path, sms_cost_fen=4, public_url="http://dash.test")
    sender = SmsTransport(engine=engine, settings=st, clock=clock)
    open_case(engine, clock, city, resident="resident1")
    open_case(engine, clock, city, resident="resident2", text="路灯坏了三天了")
    drain(engine, clock, sender)
    c = build_container(st, clock=clock, engine=engine)
    with serve(create_app(st, clock=clock, container=c, run_jobs=False), lifespan="off") \
            as url, httpx.Client(base_url=url, follow_redirects=False) as http:
        for who, shown in (("district_admin", True), ("town_admin", False)):
            http.cookies.clear()
            with session_scope(engine) as s:
                token = accounts.issue_login_token(s, person_id=city[who], now=clock.now(),
                                                   ttl=timedelta(minutes=15))
            assert http.get(f"/login/{token}").status_code == 303
            page = http.get("/dashboard/figures").text
            assert ('id="sms-month"' in page) is shown, who
            if shown:
                assert '<b id="k-sms-sent">2</b>' in page
                assert '<b id="k-sms-spent">0.08</b>' in page


@pytest.fixture
def urgent_installed(engine, api, tmp_path) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    from bot.handlers.sms import urgent
    from core.cases import events

    st = sms_settings(engine, api, tmp_path, sms_template_urgent="T-URGENT",
                      sms_urgent_categories="环境保护, 火警")
    urgent.install(st)
    try:
        yield st
    finally:
        events.unsubscribe("sms_urgent")


def test_an_urgent_case_texts_the_towns_duty_officer_even_with_a_chat(  # type: ignore[no-untyped-def]
        engine, clock, api, urgent_installed) -> None:
    city = build_city(engine)
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=city["town_admin"], platform="telegram",
                           external_id="555", last_seen_at=clock.now()))
    sender = SmsTransport(engine=engine, settings=urgent_installed, clock=clock)
    case_id = open_case(engine, clock, city, text="河边有人倾倒化工废料", category="环境保护")
    open_case(engine, clock, city, resident="resident2", text="路灯坏了", category="公共设施")
    drain(engine, clock, sender, configured=frozenset({"web", "telegram", "sms"}))
    got = api.sent_to("13900000002")
    assert [(m.template, m.params[:2]) for m in got] == [("T-URGENT", [str(case_id), "环境保护"])]
    assert len(outbox(engine, kind="sms_urgent")) == 1


def send_notice(engine: Engine, clock: FakeClock, city: City, *, by_sms: bool) -> int:
    from core.cases.policy import CasePolicy
    from core.hierarchy.queries import actor, node_by_code
    from core.notices import services as notices

    with session_scope(engine) as s:
        sent = notices.send(
            s, who=actor(s, city["secretary"]), node=node_by_code(s, "341602001001"),
            audience=("resident",), text="明天上午停水，请提前储水", confirm=True,
            deadline=None, now=clock.now(), reping=timedelta(hours=4), policy=CasePolicy(),
            by_sms=by_sms)
        return sent.notice_id


def test_a_notice_reaches_phone_only_residents_by_text_and_they_answer_shoudao(  # type: ignore[no-untyped-def]
        engine, clock, api, app, tmp_path) -> None:
    from core.campaigns.model import Campaign

    city = build_city(engine)
    notice_id = send_notice(engine, clock, city, by_sms=True)
    with engine.connect() as conn:
        relays = conn.execute(sa.select(sa.func.count()).select_from(
            Campaign.__table__)).scalar_one()  # type: ignore[attr-defined]
        residents = conn.execute(sa.text(
            "SELECT count(*) FROM notice_recipient WHERE notice_id = :n AND role = 'resident'"),
            {"n": notice_id}).scalar_one()
    assert relays == 0 and residents >= 3  # texts, not a relay through the 邻长
    sender = SmsTransport(engine=engine, settings=sms_settings(engine, api, tmp_path),
                          clock=clock)
    drain(engine, clock, sender)
    got = api.sent_to(PHONE)
    assert [m.template for m in got] == ["T-NOTICE"] and "停水" in got[0].params[0]
    assert reply(app, "收到").status_code == 200
    with engine.connect() as conn:
        confirmed = conn.execute(sa.text(
            "SELECT confirmed_at IS NOT NULL FROM notice_recipient WHERE notice_id = :n"
            " AND person_id = :p"), {"n": notice_id, "p": city["resident1"]}).scalar_one()
    assert confirmed


def test_without_sms_phone_only_residents_are_relayed_by_their_leader(engine, clock) -> None:  # type: ignore[no-untyped-def]
    city = build_city(engine)
    notice_id = send_notice(engine, clock, city, by_sms=False)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM campaign WHERE notice_id = :n"),
                         {"n": notice_id}).scalar_one()
    assert n == 1


def test_a_hotline_caller_with_only_a_phone_gets_the_receipt_by_sms(  # type: ignore[no-untyped-def]
        engine, clock, api, tmp_path) -> None:
    from core import hotline
    from core.hierarchy.queries import actor

    city = build_city(engine)
    st = sms_settings(engine, api, tmp_path)
    with session_scope(engine) as s:
        got = hotline.file_call(s, clock=clock, settings=st, operator=actor(s, city["town_admin"]),
                                phone=PHONE, words="单元门的门禁坏了关不上", caller_name="")
        assert hotline.look_up(s, operator=actor(s, city["town_admin"]), phone=PHONE,
                               now=clock.now(), sms_on=True).told is hotline.Told.sms
    assert got.told is hotline.Told.sms  # the console says the receipt goes by SMS
    drain(engine, clock, SmsTransport(engine=engine, settings=st, clock=clock))
    sent = api.sent_to(PHONE)
    assert [m.template for m in sent] == ["T-RECEIPT"] and sent[0].params[0] == str(got.case_id)
    # Without SMS a caller with only a phone is told aloud, and no receipt row waits for them.
    plain = Settings(_env_file=None, media_dir=str(tmp_path / "m2"))  # type: ignore[call-arg]
    with session_scope(engine) as s:
        aloud = hotline.file_call(s, clock=clock, settings=plain,
                                  operator=actor(s, city["town_admin"]), phone="13900000010",
                                  words="路灯不亮", caller_name="")
    assert aloud.told is hotline.Told.read_aloud
    assert outbox(engine, person_id=city["resident2"]) == []
