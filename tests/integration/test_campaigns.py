"""Campaigns on both databases: households from the registry, counters that match the items,
outcomes that feed the registry back, the sweep's reminders, and bad input refused whole."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.campaigns import marking, registry
from core.campaigns.deadlines import sweep_campaigns
from core.campaigns.model import TOTAL, Campaign
from core.campaigns.progress import board
from core.campaigns.services import add_household, close_campaign, start_campaign
from core.cases.sweep import run_sweep
from core.clock import FakeClock
from core.db import session_scope
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.queries import actor, node_by_code, residence_of
from tests.support.demo_city import GROUP1, LIN1, TOWN, VILLAGE1, holder_of, load_demo

LIN2 = GROUP1 + "002"


def _start(engine: Engine, clock: FakeClock, *, by: int | None, code: str = TOWN,
           hours: float = 8, title: str = "敲门行动") -> int:
    with session_scope(engine) as s:
        c = start_campaign(s, node_id=node_by_code(s, code).id, title=title,
                           instructions="逐户核对", outcomes=None,
                           deadline=clock.now() + timedelta(hours=hours), started_by=by,
                           clock=clock)
        assert c.id is not None
        return c.id


def _items(engine: Engine, cid: int, code: str) -> list[marking.Item]:
    with Session(engine) as s:
        return marking.items_of(s, campaign_id=cid, node_ids=[node_by_code(s, code).id])


def _outbox(engine: Engine, person_id: int) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(
            "SELECT text FROM outbox WHERE person_id = :p AND kind = 'campaign'"
            " ORDER BY id"), {"p": person_id})]


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


def test_households_counters_and_outcomes_match(city: Engine, clock: FakeClock) -> None:
    secretary = holder_of(city, "secretary", VILLAGE1)
    leader = holder_of(city, "neighbor_leader", LIN1)
    cid = _start(city, clock, by=secretary.person_id, code=VILLAGE1)
    items = _items(city, cid, LIN1)
    assert [i.address for i in items] == ["幸福社区3号楼101室", "幸福社区3号楼202室",
                                          "幸福社区3号楼303室"]
    assert "您负责的3户" in _outbox(city, leader.person_id)[0]
    with session_scope(city) as s:
        marking.mark(s, item_id=items[0].id, outcome=0, person_id=leader.person_id, clock=clock)
        marking.mark(s, item_id=items[1].id, outcome=1, person_id=leader.person_id, clock=clock)
        # a second press corrects the first: counted once
        marking.mark(s, item_id=items[1].id, outcome=2, person_id=leader.person_id, clock=clock)
    with Session(city) as s:
        c = s.get(Campaign, cid)
        assert c is not None
        b = board(s, campaign=c, node=node_by_code(s, VILLAGE1), now=clock.now())
        lin = board(s, campaign=c, node=node_by_code(s, LIN1), now=clock.now())
        n_items = s.execute(sa.text("SELECT COUNT(*) FROM campaign_item WHERE campaign_id = :c"),
                            {"c": cid}).scalar_one()
    assert b.own.total == n_items and b.own.done == 2
    assert b.own.by_outcome[:3] == (1, 0, 1)
    assert sum(r.total for r in b.children) == b.own.total
    assert lin.own.total == 3 and lin.own.not_yet == 1 and lin.own.pct == 66.7
    assert [i.outcome for i in lin.items] == [0, 2, None]


def test_moved_hides_residents_and_newcomer_waits_for_the_group_leader(
        city: Engine, clock: FakeClock) -> None:
    leader = holder_of(city, "neighbor_leader", LIN1)
    group_leader = holder_of(city, "group_leader", GROUP1)
    moved = holder_of(city, "resident", LIN1)  # 林兰, 3号楼101室
    cid = _start(city, clock, by=None, code=GROUP1)
    items = _items(city, cid, LIN1)
    with session_scope(city) as s:
        marking.mark(s, item_id=items[0].id, outcome=3, person_id=leader.person_id, clock=clock)
        n = marking.newcomer(s, item_id=items[1].id, person_id=leader.person_id, name="钱多多",
                             phone="13811112222", clock=clock)
        nid = n.id
    with Session(city) as s:
        assert actor(s, moved.person_id).residences() == []  # kept, but routed no more
        with pytest.raises(NotFound):
            residence_of(s, moved.person_id)
        kept = s.execute(sa.text("SELECT COUNT(*) FROM post WHERE person_id = :p"),
                         {"p": moved.person_id}).scalar_one()
        assert kept == 1
        assert s.execute(sa.text("SELECT COUNT(*) FROM person WHERE phone = '13811112222'")
                         ).scalar_one() == 0
    assert any("钱多多" in t for t in _outbox(city, group_leader.person_id))
    with session_scope(city) as s, pytest.raises(PermissionDenied):
        registry.decide_newcomer(s, newcomer_id=nid or 0, person_id=leader.person_id,
                                 accept=True, clock=clock)
    with session_scope(city) as s:
        registry.decide_newcomer(s, newcomer_id=nid or 0, person_id=group_leader.person_id,
                                 accept=True, clock=clock)
    with Session(city) as s:
        row = s.execute(sa.text(
            "SELECT x.address FROM post x JOIN person p ON p.id = x.person_id"
            " WHERE p.phone = '13811112222' AND x.role = 'resident'")).one()
        assert row[0] == "幸福社区3号楼202室"
    with session_scope(city) as s, pytest.raises(Conflict):
        registry.decide_newcomer(s, newcomer_id=nid or 0, person_id=group_leader.person_id,
                                 accept=True, clock=clock)
    # the next campaign no longer lists the moved household
    cid2 = _start(city, clock, by=None, code=GROUP1, title="第二轮")
    assert "幸福社区3号楼101室" not in [i.address for i in _items(city, cid2, LIN1)]


def test_bad_input_is_refused_and_nothing_is_written(city: Engine, clock: FakeClock) -> None:
    secretary = holder_of(city, "secretary", VILLAGE1)
    leader = holder_of(city, "neighbor_leader", LIN1)
    other = holder_of(city, "neighbor_leader", LIN2)
    with pytest.raises(InvalidInput, match="campaign_deadline_past"):
        _start(city, clock, by=secretary.person_id, code=VILLAGE1, hours=-1)
    with pytest.raises(InvalidInput, match="campaign_title_empty"):
        _start(city, clock, by=secretary.person_id, code=VILLAGE1, title="  ")
    with pytest.raises(PermissionDenied):
        _start(city, clock, by=secretary.person_id, code=TOWN)  # above their village
    with pytest.raises(PermissionDenied):
        _start(city, clock, by=leader.person_id, code=LIN1)  # a 邻长 starts none
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM campaign")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT COUNT(*) FROM campaign_item")).scalar_one() == 0
    cid = _start(city, clock, by=secretary.person_id, code=VILLAGE1)
    items = _items(city, cid, LIN1)
    with session_scope(city) as s, pytest.raises(PermissionDenied):
        marking.mark(s, item_id=items[0].id, outcome=0, person_id=other.person_id, clock=clock)
    with session_scope(city) as s, pytest.raises(InvalidInput):
        marking.mark(s, item_id=items[0].id, outcome=9, person_id=leader.person_id, clock=clock)
    with session_scope(city) as s, pytest.raises(InvalidInput):
        add_household(s, campaign_id=cid, node_id=node_by_code(s, LIN1).id, address=" ",
                      person_id=leader.person_id, clock=clock)
    with session_scope(city) as s:
        add_household(s, campaign_id=cid, node_id=node_by_code(s, LIN1).id,
                      address="幸福社区3号楼404室", person_id=leader.person_id, clock=clock)
        close_campaign(s, campaign_id=cid, person_id=secretary.person_id, clock=clock)
    with session_scope(city) as s, pytest.raises(Conflict, match="campaign_closed"):
        marking.mark(s, item_id=items[0].id, outcome=0, person_id=leader.person_id, clock=clock)
    with Session(city) as s:
        lin = node_by_code(s, LIN1)
        counts = dict(s.execute(sa.text(
            "SELECT outcome, n FROM campaign_count WHERE campaign_id = :c AND node_id = :n"),
            {"c": cid, "n": lin.id}).all())
    assert counts == {TOTAL: 4}  # the added household counted, no outcome recorded


def test_half_time_nag_then_group_leader_told_at_deadline(city: Engine,
                                                          clock: FakeClock) -> None:
    leader = holder_of(city, "neighbor_leader", LIN1)
    done_leader = holder_of(city, "neighbor_leader", LIN2)
    group_leader = holder_of(city, "group_leader", GROUP1)
    cid = _start(city, clock, by=None, code=GROUP1, hours=4)  # 10:00 Shanghai → 14:00
    for it in _items(city, cid, LIN2):
        with session_scope(city) as s:
            marking.mark(s, item_id=it.id, outcome=0, person_id=done_leader.person_id,
                         clock=clock)
    clock.advance(timedelta(hours=1))
    assert run_sweep(city, clock=clock).campaigns == 0
    clock.advance(timedelta(hours=1, minutes=1))
    assert run_sweep(city, clock=clock).campaigns == 1
    assert any("已过半时间，您还有3户" in t for t in _outbox(city, leader.person_id))
    assert not any("已过半" in t for t in _outbox(city, done_leader.person_id))
    assert run_sweep(city, clock=clock).campaigns == 0  # once
    clock.advance(timedelta(hours=2))
    assert run_sweep(city, clock=clock).campaigns == 1
    told = [t for t in _outbox(city, group_leader.person_id) if "已到截止时间" in t]
    assert len(told) == 1 and leader.name in told[0] and done_leader.name not in told[0]


def test_reminders_wait_for_the_end_of_quiet_hours(city: Engine, clock: FakeClock) -> None:
    leader = holder_of(city, "neighbor_leader", LIN1)
    group_leader = holder_of(city, "group_leader", GROUP1)
    clock.advance(timedelta(hours=12))  # 22:00 Shanghai
    _start(city, clock, by=None, code=GROUP1, hours=4)
    clock.advance(timedelta(hours=2, minutes=5))  # half time falls at midnight: no nag
    with session_scope(city) as s:
        assert sweep_campaigns(s, now=clock.now()) == 0
    clock.advance(timedelta(hours=2))  # 02:05, the deadline in quiet hours: held
    with session_scope(city) as s:
        assert sweep_campaigns(s, now=clock.now()) == 1
    assert not any("截止" in t for t in _outbox(city, group_leader.person_id))
    clock.advance(timedelta(hours=5))  # 07:05
    with session_scope(city) as s:
        assert sweep_campaigns(s, now=clock.now()) == 1
    assert any("已到截止时间" in t for t in _outbox(city, group_leader.person_id))
    assert not any("已过半" in t for t in _outbox(city, leader.person_id))


def test_a_wecom_card_keeps_within_six_buttons_and_names_every_address(
        sqlite_engine: Engine, clock: FakeClock) -> None:
    from bot.dispatch import process
    from bot.flows.types import Inbound
    from core.settings import Settings

    load_demo(sqlite_engine)
    leader = holder_of(sqlite_engine, "neighbor_leader", LIN1)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'wecom', 'lz-gao', false)"),
                     {"p": leader.person_id})
        lin = conn.execute(sa.text("SELECT id FROM node WHERE code = :c"), {"c": LIN1}).scalar()
        for k in range(4, 9):  # eight households: two cards
            pid = conn.execute(sa.text("INSERT INTO person (name, language) VALUES (:n, 'zh')"
                                       " RETURNING id"), {"n": f"住户{k}"}).scalar()
            conn.execute(sa.text("INSERT INTO post (person_id, node_id, role, address)"
                                 " VALUES (:p, :n, 'resident', :a)"),
                         {"p": pid, "n": lin, "a": f"幸福社区3号楼{k}01室"})
    _start(sqlite_engine, clock, by=None, code=GROUP1)
    inbound = Inbound(platform="wecom", update_id="u1", chat_id="lz-gao", sender_id="lz-gao",
                      received_at=clock.now(), text="摸排")
    settings = Settings(_env_file=None, database_url="sqlite://")  # type: ignore[call-arg]
    assert process(sqlite_engine, inbound=inbound, payload={}, clock=clock, settings=settings)
    with sqlite_engine.connect() as conn:
        text, actions = conn.execute(sa.text(
            "SELECT text, actions FROM outbox WHERE dedupe_key LIKE 'in:wecom:u1:%'"
            " ORDER BY id DESC LIMIT 1")).one()
    import json

    actions = json.loads(actions) if isinstance(actions, str) else actions
    assert len(actions) <= 6 and "第1/2页" in text
    assert all(f"幸福社区3号楼{k}室" in text for k in ("101", "202", "303", "401"))
    assert all(len(a["label"]) <= 10 or a["action"] != "cmp_item" for a in actions)


def test_two_campaigns_due_together_nag_once_as_a_digest(city: Engine, clock: FakeClock) -> None:
    leader = holder_of(city, "neighbor_leader", LIN1)
    _start(city, clock, by=None, code=GROUP1, hours=4, title="人口核查")
    _start(city, clock, by=None, code=LIN1, hours=4, title="燃气安全")
    clock.advance(timedelta(hours=2, minutes=1))
    assert run_sweep(city, clock=clock).campaigns == 2
    nags = [t for t in _outbox(city, leader.person_id) if "尚未完成" in t or "已过半" in t]
    assert len(nags) == 1 and "人口核查" in nags[0] and "燃气安全" in nags[0]
