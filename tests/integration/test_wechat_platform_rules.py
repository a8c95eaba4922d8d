"""Platform rules inside the WeChat OA and WeCom transports, against the fake servers over real
HTTP: the OA's 5 customer-service messages per user message (45047), WeCom's task ids unique
on the app across deployments and retries, card limits and response codes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from bot.dispatcher.loop import Stats
from bot.dispatcher.once import pass_once
from bot.handlers.wechat.transport import WeChatTransport
from bot.handlers.wecom.transport import SUB_TITLE_LIMIT, WeComTransport
from core.clock import FakeClock
from core.db import make_engine, migrate, session_scope
from core.hierarchy.model import ChatIdentity
from core.inbound import record
from core.outbox import Action, Draft, enqueue_many
from core.settings import Settings
from core.wecom_limits import touch_identity
from tests.casehelpers import open_case, outbox
from tests.cityfactory import City, build_city
from tests.fakes.wechat_api import FakeWeChatApi

OPENID, MEMBER = "o_res", "lin1"


@pytest.fixture
def oa(clock: FakeClock) -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi("oa", clock) as api:
        yield api


@pytest.fixture
def wecom(clock: FakeClock) -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi("wecom", clock) as api:
        yield api


def oa_sender(engine: Engine, clock: FakeClock, api: FakeWeChatApi, tmp: Path,
              **templates: str) -> WeChatTransport:
    settings = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                        media_dir=str(tmp / "media"), wechat_app_id="wx1",
                        wechat_app_secret=SecretStr("s"), wechat_api_base=api.base_url,
                        **templates)
    return WeChatTransport(engine=engine, settings=settings, clock=clock)


def wecom_sender(engine: Engine, clock: FakeClock, api: FakeWeChatApi, tmp: Path
                 ) -> WeComTransport:
    settings = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                        media_dir=str(tmp / "media"), wecom_corp_id="ww1", wecom_agent_id="1",
                        wecom_secret=SecretStr("s"), wecom_api_base=api.base_url)
    return WeComTransport(engine=engine, settings=settings, clock=clock)


def put(engine: Engine, clock: FakeClock, drafts: list[Draft]) -> None:
    with session_scope(engine) as s:
        enqueue_many(s, drafts=drafts, now=clock.now())


def drain(engine: Engine, clock: FakeClock, sender: Any, passes: int = 20) -> Stats:
    stats = Stats()
    for _ in range(passes):
        if not asyncio.run(pass_once(engine, sender=sender, clock=clock, stats=stats)):
            break
        clock.advance(timedelta(seconds=1))
    return stats


def resident_who_wrote(engine: Engine, clock: FakeClock, oa: FakeWeChatApi
                       ) -> tuple[City, int]:
    """A resident on the OA who wrote once: the window is open, 5 messages may answer it."""
    city = build_city(engine)
    person = city["resident1"]
    with session_scope(engine) as s:
        s.add(ChatIdentity(person_id=person, platform="wechat", external_id=OPENID,
                           last_seen_at=clock.now()))
    oa.user_wrote(OPENID)
    clock.advance(timedelta(seconds=1))
    return city, person


# ---- the OA's 5 messages per user message --------------------------------------------------


def test_many_hops_leave_room_for_the_answer_and_the_fixed_question(
        engine: Engine, clock: FakeClock, oa: FakeWeChatApi, tmp_path: Path) -> None:
    city, person = resident_who_wrote(engine, clock, oa)
    case_id = open_case(engine, clock, city, text="楼道灯坏了")  # its receipt is one message
    drafts = [Draft(text=f"工单已转交第{k}级处理。", kind="progress", dedupe_key=f"hop{k}",
                     person_id=person, case_id=case_id) for k in range(6)]
    drafts += [Draft(text="【邻长答复】明天上午来换灯泡", kind="replied", dedupe_key="answer",
                     person_id=person, case_id=case_id),
               Draft(text="问题解决了吗？", kind="resolved", dedupe_key="fixed",
                     person_id=person, case_id=case_id,
                     actions=(Action("confirm", "已解决", case_id, 3),))]
    put(engine, clock, drafts)
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path))

    texts = [m.text for m in oa.sent_to(OPENID)]
    assert any("明天上午来换灯泡" in t for t in texts), texts
    assert any("问题解决了吗" in t for t in texts), texts
    assert (OPENID, 45047) not in oa.refused
    # Six hops became one notice of where the case went.
    assert sum("转交" in t for t in texts) == 1
    answer = [r for r in outbox(engine) if r.dedupe_key in ("answer", "fixed")]
    assert [r.status for r in answer] == ["sent", "sent"]


def test_a_new_message_renews_the_quota_of_five_it_does_not_add_to_it(
        engine: Engine, clock: FakeClock, oa: FakeWeChatApi, tmp_path: Path) -> None:
    """WeChat's 客服消息下发规则: a user's message allows 5 within 48 h; quotas do not add up."""
    _city, person = resident_who_wrote(engine, clock, oa)
    oa.user_wrote(OPENID)  # a second message at once: still 5, not 10
    with session_scope(engine) as s:
        touch_identity(s, platform="wechat", external_id=OPENID, now=clock.now())
    clock.advance(timedelta(seconds=1))
    put(engine, clock, [Draft(text=f"答复{k}", kind="reply", dedupe_key=f"n{k}",
                              person_id=person) for k in range(7)])
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path), passes=3)
    assert [m.text for m in oa.sent_to(OPENID)] == [f"答复{k}" for k in range(5)]
    assert (OPENID, 45047) in oa.refused
    left = [r for r in outbox(engine) if r.dedupe_key in ("n5", "n6")]
    assert [(r.status, r.attempts) for r in left] == [("pending", 0), ("pending", 0)]


def test_a_menu_tap_allows_three_messages_within_a_minute_and_no_more(
        engine: Engine, clock: FakeClock, oa: FakeWeChatApi, tmp_path: Path) -> None:
    """A tap on a click menu opens 3 messages for 1 minute, not the 48-hour quota of 5."""
    city = build_city(engine)
    person = city["resident1"]
    with session_scope(engine) as s:  # they last wrote three days ago: no quota is open
        s.add(ChatIdentity(person_id=person, platform="wechat", external_id=OPENID,
                           last_seen_at=clock.now() - timedelta(days=3)))
        record(s, platform="wechat", update_id=f"{OPENID}:1700000000:CLICK",
               payload={"MsgType": "event", "Event": "CLICK"}, now=clock.now(),
               sender_id=OPENID)
    oa.user_tapped(OPENID)
    put(engine, clock, [Draft(text=f"菜单答复{k}", kind="reply", dedupe_key=f"m{k}",
                              person_id=person) for k in range(4)])
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path), passes=1)
    assert [m.text for m in oa.sent_to(OPENID)] == [f"菜单答复{k}" for k in range(3)]
    assert oa.refused == [(OPENID, 45047)]
    # The minute is over and no template is set: the row is dead without asking WeChat.
    clock.advance(timedelta(minutes=31))
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path))
    [last] = outbox(engine, dedupe_key="m3")
    assert last.status == "dead" and "48-hour window" in (last.last_error or "")
    assert oa.refused == [(OPENID, 45047)]


def test_an_answer_past_the_quota_goes_as_a_template(
        engine: Engine, clock: FakeClock, oa: FakeWeChatApi, tmp_path: Path) -> None:
    _city, person = resident_who_wrote(engine, clock, oa)
    # Five answers already used this message's quota (another worker, a busy holder).
    put(engine, clock, [Draft(text=f"答复{k}", kind="reply", dedupe_key=f"r{k}",
                              person_id=person) for k in range(5)])
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path,
                                   wechat_template_answer="TPL_A",
                                   wechat_template_confirm="TPL_C"))
    put(engine, clock, [Draft(text="【邻长答复】明天来修", kind="replied", dedupe_key="answer",
                              person_id=person)])
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path,
                                   wechat_template_answer="TPL_A",
                                   wechat_template_confirm="TPL_C"))
    assert (OPENID, 45047) in oa.refused
    [tpl] = [m for m in oa.sent_to(OPENID) if m.msgtype == "template"]
    assert tpl.body["template_id"] == "TPL_A" and "明天来修" in tpl.text
    [row] = outbox(engine, dedupe_key="answer")
    assert row.status == "sent"


def test_a_notice_outside_the_window_goes_as_a_template(
        engine: Engine, clock: FakeClock, oa: FakeWeChatApi, tmp_path: Path) -> None:
    person = resident_who_wrote(engine, clock, oa)[1]
    clock.advance(timedelta(hours=49))  # the 48-hour window closed
    put(engine, clock, [Draft(text="【通知】周六上午大扫除，请回复“收到”", kind="notice",
                              dedupe_key="n1", person_id=person),
                        Draft(text="【提醒】请回复“收到”", kind="notice_reping",
                              dedupe_key="n2", person_id=person)])
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path,
                                   wechat_template_notice="TPL_N"))
    sent = [m for m in oa.sent_to(OPENID) if m.msgtype == "template"]
    assert [m.body["template_id"] for m in sent] == ["TPL_N", "TPL_N"]
    assert "大扫除" in sent[0].text
    assert [r.status for r in outbox(engine)] == ["sent", "sent"]


def test_without_a_notice_template_the_notice_waits_for_the_person(
        engine: Engine, clock: FakeClock, oa: FakeWeChatApi, tmp_path: Path) -> None:
    person = resident_who_wrote(engine, clock, oa)[1]
    clock.advance(timedelta(hours=49))
    put(engine, clock, [Draft(text="【通知】周六大扫除", kind="notice", dedupe_key="n1",
                              person_id=person)])
    drain(engine, clock, oa_sender(engine, clock, oa, tmp_path))
    assert not [m for m in oa.sent_to(OPENID) if m.msgtype == "template"]
    [row] = outbox(engine)
    assert row.status == "dead" and "48-hour window" in (row.last_error or "")


# ---- WeCom: task ids, card limits, response codes ------------------------------------------


def card_row(key: str, text: str = "【新工单】楼道灯坏了", case_id: int | None = None) -> Draft:
    return Draft(text=text, kind="new_case", dedupe_key=key, platform="wecom", address=MEMBER,
                 case_id=case_id, actions=(Action("accept", "受理", case_id or 1, 1),))


def test_two_fresh_deployments_on_one_app_never_reuse_a_task_id(
        tmp_path: Path, clock: FakeClock, wecom: FakeWeChatApi) -> None:
    for name in ("first", "second"):
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        migrate(engine)
        put(engine, clock, [card_row("c1")])  # row 1 of a fresh database, both times
        drain(engine, clock, wecom_sender(engine, clock, wecom, tmp_path))
        assert [r.status for r in outbox(engine)] == ["sent"], name
        engine.dispose()
    cards = [m for m in wecom.sent_to(MEMBER) if m.msgtype == "template_card"]
    ids = [m.body["template_card"]["task_id"] for m in cards]
    assert len(ids) == 2 and len(set(ids)) == 2, ids
    assert all(len(i.encode()) <= 128 and i.replace("-", "").replace("_", "").isalnum()
               for i in ids)
    assert (MEMBER, 42014) not in wecom.refused


def test_a_send_whose_answer_was_lost_is_retried_with_a_new_task_id(
        engine: Engine, clock: FakeClock, wecom: FakeWeChatApi, tmp_path: Path) -> None:
    put(engine, clock, [card_row("c1")])
    wecom.lose_next_answer()
    sender = wecom_sender(engine, clock, wecom, tmp_path)
    drain(engine, clock, sender, passes=1)
    [row] = outbox(engine)
    assert row.status == "failed" and row.attempts == 1
    clock.advance(timedelta(minutes=1))  # past the backoff
    drain(engine, clock, sender)
    [row] = outbox(engine)
    assert row.status == "sent"
    assert (MEMBER, 42014) not in wecom.refused


def test_a_long_report_fits_the_card_sub_title(
        engine: Engine, clock: FakeClock, wecom: FakeWeChatApi, tmp_path: Path) -> None:
    long = "【新工单】" + "楼道里堆满了杂物，" * 40
    put(engine, clock, [card_row("c1", text=long)])
    drain(engine, clock, wecom_sender(engine, clock, wecom, tmp_path))
    [card] = [m for m in wecom.sent_to(MEMBER) if m.msgtype == "template_card"]
    sub = card.body["template_card"]["sub_title_text"]
    assert len(sub) <= SUB_TITLE_LIMIT and sub.startswith("【新工单】楼道里") and "…" in sub
    assert len(card.body["template_card"]["main_title"]["title"]) <= 26
    assert [r.status for r in outbox(engine)] == ["sent"]


def test_a_card_update_spends_the_code_its_send_answered(
        engine: Engine, clock: FakeClock, wecom: FakeWeChatApi, tmp_path: Path) -> None:
    city = build_city(engine)
    case_id = open_case(engine, clock, city)
    put(engine, clock, [card_row("c1", case_id=case_id)])
    sender = wecom_sender(engine, clock, wecom, tmp_path)
    drain(engine, clock, sender)
    [card] = [m for m in wecom.sent_to(MEMBER) if m.msgtype == "template_card"]
    put(engine, clock, [Draft(text="工单已受理：高勇", kind="card_update", dedupe_key="u1",
                              platform="wecom", address="*", case_id=case_id)])
    drain(engine, clock, sender)
    [update] = wecom.card_updates
    assert update["userids"] == [MEMBER] and update["response_code"] in wecom.used_codes
    assert "已受理" in update["template_card"]["sub_title_text"]
    assert card.body["template_card"]["task_id"] != update["template_card"]["task_id"]
    # A code is good once: the next update of this copy waits for a fresh one (a press).
    put(engine, clock, [Draft(text="工单已解决", kind="card_update", dedupe_key="u2",
                              platform="wecom", address="*", case_id=case_id)])
    drain(engine, clock, sender)
    assert len(wecom.card_updates) == 1


def test_an_attempt_whose_outcome_was_never_recorded_counts_as_delivered(
        engine: Engine, clock: FakeClock, wecom: FakeWeChatApi, tmp_path: Path) -> None:
    put(engine, clock, [card_row("c1")])
    sender = wecom_sender(engine, clock, wecom, tmp_path)
    drain(engine, clock, sender)
    [sent] = [m.body["template_card"]["task_id"] for m in wecom.sent_to(MEMBER)]
    # The worker crashed before recording it: the lease ran out, the same attempt comes again.
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM delivery"))
        conn.execute(sa.text("UPDATE outbox SET status = 'pending', attempts = 0"))
    drain(engine, clock, sender)
    assert (MEMBER, 42014) in wecom.refused
    [row] = outbox(engine)
    assert row.status == "sent"
    assert len([m for m in wecom.sent_to(MEMBER) if m.msgtype == "template_card"]) == 1
    assert sent.endswith("-a1-0")
