"""Status webhooks (issue 16): every state change of a client's cases is POSTed, signed, to a
receiver on loopback through the one dispatcher; a receiver that fails, stalls, is down or
outlives a killed dispatcher still gets every change at least once, in order per case; a day
of failures makes the row dead and tells the root admins once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatcher.loop import Dispatcher
from bot.dispatcher.transport import Stats
from bot.handlers.webhook.transport import CLIENT_ERRORS, WebhookTransport
from core import deliveries
from core.cases import actions
from core.db import session_scope
from core.open311 import hooks, keys
from core.open311.requests import NewRequest, file_request
from core.outbox import OutboxMessage
from core.settings import Settings
from tests.casehelpers import do, get, open_case, outbox
from tests.cityfactory import City, build_city
from tests.fakes.timer import VirtualTime
from tests.support.hook_receiver import Post, Receiver, receiving
from tests.support.server import free_port

N1 = "3416020010010101001"  # 一邻's grid code: a request placed there goes to 邻长小赵
CLIENTS = (("12345热线", "341602001"), ("东关APP", "341602001001"), ("西关APP", "341602001002"))


def st() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def city(engine: Engine, vt: VirtualTime) -> tuple[City, dict[str, str]]:
    made = build_city(engine)
    with session_scope(engine) as s:
        api = {name: keys.create_key(s, name=name, scope_code=code, now=vt.now())
               for name, code in CLIENTS}
    return made, api


def hook(engine: Engine, vt: VirtualTime, client: str, url: str, *,
         scope_wide: bool = False) -> str:
    with session_scope(engine) as s:
        return hooks.set_hook(s, client=client, url=url, scope_wide=scope_wide, now=vt.now())


def file(engine: Engine, vt: VirtualTime, api_key: str, text: str = "路灯不亮了") -> int:
    with session_scope(engine) as s:
        client = keys.authenticate(s, api_key=api_key)
        return file_request(s, clock=vt, settings=st(), client=client,
                            body=NewRequest(service_code="2", address_id=N1,
                                            description=text)).case_id


def answer(engine: Engine, vt: VirtualTime, city: City, case_id: int) -> None:
    """The 邻长 answers (which accepts it too), then resolves."""
    vt.advance(timedelta(minutes=30))
    do(engine, actions.reply, clock=vt, case_id=case_id, person_id=city["leader1"],
       version=get(engine, case_id).version, text="明天上午来修")
    vt.advance(timedelta(hours=2))
    do(engine, actions.resolve, clock=vt, case_id=case_id, person_id=city["leader1"],
       version=get(engine, case_id).version, note="已换灯泡")


async def _run(engine: Engine, vt: VirtualTime, *, timeout: float, once: bool) -> Stats:
    transport = WebhookTransport(timeout=timeout)
    d = Dispatcher(engine=engine, transport=transport, clock=vt, timer=vt, idle=0.5,
                   lease=timedelta(minutes=5))
    try:
        if once:
            await d.pass_once()
            return d.stats
        return await d.drain(max_seconds=3600)
    finally:
        await transport.close()


def drain(engine: Engine, vt: VirtualTime, *, timeout: float = 5.0) -> Stats:
    """The webhook dispatcher until nothing is left for it (retries wait on virtual time)."""
    stats = asyncio.run(_run(engine, vt, timeout=timeout, once=False))
    assert stats.errors == []
    return stats


def pass_once(engine: Engine, vt: VirtualTime, *, timeout: float = 5.0) -> Stats:
    return asyncio.run(_run(engine, vt, timeout=timeout, once=True))


def hook_rows(engine: Engine) -> list[OutboxMessage]:
    return outbox(engine, platform=deliveries.WEBHOOK)


def order(posts: list[Post]) -> list[tuple[str, int, str]]:
    """(case, seq, update status) of each update, first arrival of each only."""
    seen: dict[str, tuple[str, int, str]] = {}
    for p in posts:
        b = p.json
        seen.setdefault(b["update_id"], (b["service_request_id"], b["seq"], b["update_status"]))
    return list(seen.values())


def alerts(engine: Engine) -> list[OutboxMessage]:
    return outbox(engine, kind="ops_alert")


def test_each_change_arrives_signed_in_order(engine: Engine, vt: VirtualTime,
                                             city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    r = Receiver()
    with receiving(r) as url:
        secret = hook(engine, vt, "东关APP", url)
        case_id = file(engine, vt, api["东关APP"])
        answer(engine, vt, c, case_id)
        drain(engine, vt)
    bodies = [p.json for p in r.accepted]
    assert [(b["seq"], b["status"], b["update_status"], b["description"]) for b in bodies] == [
        (1, "open", "open", ""), (2, "open", "in_progress", ""),
        (3, "open", "in_progress", "明天上午来修"), (4, "closed", "fixed", "已换灯泡")]
    assert {b["service_request_id"] for b in bodies} == {str(case_id)}
    assert bodies[2]["updated_datetime"] == "2026-11-23T10:30:00+08:00"
    assert all(p.signed_with(secret) for p in r.accepted)
    assert all(row.status == "sent" and row.attempts == 1 for row in hook_rows(engine))
    # What a receiver refuses: another secret, a changed body or timestamp, no signature.
    p = r.accepted[0]
    assert not p.signed_with("lzwh_" + "0" * 48)
    assert not Post(p.headers, p.body.replace(b"open", b"shut"), 200).signed_with(secret)
    older = {**p.headers, hooks.TIMESTAMP.lower(): str(int(p.headers[
        hooks.TIMESTAMP.lower()]) - 600)}
    assert not Post(older, p.body, 200).signed_with(secret)
    bare = {k: v for k, v in p.headers.items() if k != hooks.SIGNATURE.lower()}
    assert not Post(bare, p.body, 200).signed_with(secret)


def test_500s_then_recovery_deliver_every_change_in_order(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    r = Receiver(500, 503, 502, 500)
    with receiving(r) as url:
        hook(engine, vt, "东关APP", url)
        first = file(engine, vt, api["东关APP"])
        second = file(engine, vt, api["东关APP"], text="井盖丢了")
        answer(engine, vt, c, first)
        drain(engine, vt)
    got = order(r.accepted)
    assert [x for x in got if x[0] == str(first)] == [
        (str(first), 1, "open"), (str(first), 2, "in_progress"),
        (str(first), 3, "in_progress"), (str(first), 4, "fixed")]
    assert [x for x in got if x[0] == str(second)] == [(str(second), 1, "open")]
    assert len(r.accepted) == 5  # each once: 500s are not deliveries
    assert {row.status for row in hook_rows(engine)} == {"sent"}


def test_a_receiver_slower_than_the_timeout_gets_the_change_on_a_retry(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    _, api = city
    r = Receiver(5.0)  # stalls until the sender gives up at the 0.2 s timeout below
    with receiving(r) as url:
        hook(engine, vt, "东关APP", url)
        case_id = file(engine, vt, api["东关APP"])
        drain(engine, vt, timeout=0.2)
    [row] = hook_rows(engine)
    assert row.status == "sent" and row.attempts == 2
    assert order(r.accepted) == [(str(case_id), 1, "open")]


def test_a_receiver_that_was_down_gets_everything_when_it_is_up(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    port = free_port()  # nothing listens there yet: connections are refused
    hook(engine, vt, "东关APP", f"http://127.0.0.1:{port}/hooks/linzhang")
    case_id = file(engine, vt, api["东关APP"])
    answer(engine, vt, c, case_id)
    pass_once(engine, vt)
    rows = hook_rows(engine)
    assert rows[0].status == "failed" and "connection" in (rows[0].last_error or "")
    assert all(row.status == "pending" for row in rows[1:])  # waiting behind the first
    r = Receiver()
    with receiving(r, port=port):
        vt.advance(timedelta(seconds=30))
        drain(engine, vt)
    assert [x[1] for x in order(r.accepted)] == [1, 2, 3, 4]


def test_a_change_recorded_while_an_older_one_backs_off_waits_behind_it(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    r = Receiver(500)
    with receiving(r) as url:
        hook(engine, vt, "东关APP", url)
        case_id = file(engine, vt, api["东关APP"])
        pass_once(engine, vt)  # the opening failed: tried again in 5 s
        do(engine, actions.accept, clock=vt, case_id=case_id, person_id=c["leader1"],
           version=get(engine, case_id).version)  # due now, before the opening's retry
        pass_once(engine, vt)
        assert r.accepted == []
        drain(engine, vt)
    assert order(r.accepted) == [(str(case_id), 1, "open"), (str(case_id), 2, "in_progress")]
    assert [row.attempts for row in hook_rows(engine)] == [2, 1]


def test_rows_a_killed_dispatcher_held_go_out_after_its_lease(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    r = Receiver()
    with receiving(r) as url:
        hook(engine, vt, "东关APP", url)
        case_id = file(engine, vt, api["东关APP"])
        answer(engine, vt, c, case_id)
        with session_scope(engine) as s:  # a dispatcher claimed them, then was killed
            held = deliveries.claim_for_platform(s, platform=deliveries.WEBHOOK, now=vt.now(),
                                                 lease=timedelta(minutes=5))
        assert len(held) == 4
        assert pass_once(engine, vt).rows_sent == 0  # still leased: nobody else takes them
        vt.advance(timedelta(minutes=5, seconds=1))
        drain(engine, vt)
    assert order(r.accepted) == [(str(case_id), n, s) for n, s in (
        (1, "open"), (2, "in_progress"), (3, "in_progress"), (4, "fixed"))]


def _fail_for(engine: Engine, vt: VirtualTime, span: timedelta) -> None:
    end = vt.now() + span
    while vt.now() < end:
        pass_once(engine, vt)
        vt.advance(timedelta(minutes=30))


def test_a_day_of_failures_makes_the_rows_dead_and_the_admins_hear_once(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    r = Receiver(*[500] * 200)
    with receiving(r) as url:
        hook(engine, vt, "东关APP", url)
        first = file(engine, vt, api["东关APP"])
        file(engine, vt, api["东关APP"], text="井盖丢了")
        _fail_for(engine, vt, timedelta(hours=23))
        assert {row.status for row in hook_rows(engine)} <= {"failed", "pending"}
        assert alerts(engine) == []
        _fail_for(engine, vt, timedelta(hours=3))
        assert {row.status for row in hook_rows(engine)} == {"dead"}
        [alert] = alerts(engine)  # two rows dead, one episode
        assert alert.person_id == c["district_admin"] and "东关APP" in alert.text
        # It works again: the next change goes out, and a later failure is a new episode.
        r.plan.clear()
        do(engine, actions.accept, clock=vt, case_id=first, person_id=c["leader1"],
           version=get(engine, first).version)
        drain(engine, vt)
    assert r.accepted[-1].json["update_status"] == "in_progress"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT failing_since FROM open311_hook")).scalar() is None


def test_other_4xx_give_up_after_a_few_attempts(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    _, api = city
    r = Receiver(*[400] * 20)
    with receiving(r) as url:
        hook(engine, vt, "东关APP", url)
        file(engine, vt, api["东关APP"])
        drain(engine, vt)
    [row] = hook_rows(engine)
    assert (row.status, row.attempts, row.last_error) == ("dead", CLIENT_ERRORS, "HTTP 400")
    assert len(alerts(engine)) == 1


def test_410_disables_the_hook_and_tells_the_admins(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    r = Receiver(410)
    with receiving(r) as url:
        hook(engine, vt, "东关APP", url)
        case_id = file(engine, vt, api["东关APP"])
        answer(engine, vt, c, case_id)
        drain(engine, vt)
        assert len(r.posts) == 1  # what waited behind it is given up, not sent
        assert {row.status for row in hook_rows(engine)} == {"dead"}
        [alert] = alerts(engine)
        assert "410" in alert.text
        file(engine, vt, api["东关APP"], text="井盖丢了")
        assert len(hook_rows(engine)) == 4  # nothing more is written for it
        with session_scope(engine) as s:
            assert hooks.list_hooks(s)[0].disabled_why == "410 Gone"


def test_a_scope_wide_hook_hears_its_subtree_and_a_client_hook_its_own_requests(
        engine: Engine, vt: VirtualTime, city: tuple[City, dict[str, str]]) -> None:
    c, api = city
    ids: dict[str, Any] = {}
    for client, wide in (("12345热线", False), ("东关APP", True), ("西关APP", True)):
        hook(engine, vt, client, f"http://127.0.0.1:9/{client}", scope_wide=wide)
    with engine.connect() as conn:
        ids = {name: str(hid) for hid, name in conn.execute(sa.text(
            "SELECT h.id, c.name FROM open311_hook h JOIN open311_client c"
            " ON c.id = h.client_id"))}

    def hearers(case_id: int) -> set[str]:
        by_id = {v: k for k, v in ids.items()}
        return {by_id[str(row.address)] for row in hook_rows(engine) if row.case_id == case_id}

    in_v1 = open_case(engine, vt, c, resident="resident1")  # a chat report in 东关社区
    in_v2 = open_case(engine, vt, c, resident="resident4")  # and one in 西关社区
    filed = file(engine, vt, api["12345热线"])  # the hotline's, placed in 东关社区
    assert hearers(in_v1) == {"东关APP"}
    assert hearers(in_v2) == {"西关APP"}
    assert hearers(filed) == {"12345热线", "东关APP"}
