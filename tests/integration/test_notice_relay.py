"""A notice to residents reaches those without a chat through their 邻长 as a relay campaign
(one item per household), and residents a campaign found moved away are in no audience, no
relay and no subtree's people (issue 14), on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.campaigns import marking, registry
from core.campaigns.model import RELAY_OUTCOMES, Campaign
from core.cases.policy import CasePolicy
from core.clock import FakeClock, as_utc
from core.db import session_scope, write_session
from core.errors import InvalidInput, NotFound
from core.hierarchy.invites import invite_for, redeem
from core.hierarchy.queries import actor, find_people, node_by_code, residence_of
from core.notices import services
from core.notices.audience import homes_without_chat, relay_households, targets
from core.notices.relay import masked
from tests.support.demo_city import LIN1, VACANT_LIN, VILLAGE1, holder_of, load_demo


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


def send(engine: Engine, clock: FakeClock, *, audience: tuple[str, ...] = ("resident",),
         text: str = "明天上午停水，请提前储水", confirm: bool = True,
         deadline: datetime | None = None, window: timedelta = timedelta(days=3)
         ) -> services.Sent:
    sec = holder_of(engine, "secretary", VILLAGE1).person_id
    with write_session(engine) as s:
        return services.send(
            s, who=actor(s, sec), node=node_by_code(s, VILLAGE1), audience=audience,
            text=text, confirm=confirm, deadline=deadline, now=clock.now(),
            reping=timedelta(hours=4), policy=CasePolicy(), relay_window=window)


def relay_of(engine: Engine, notice_id: int) -> Campaign:
    with Session(engine) as s:
        found = s.execute(sa.select(Campaign).where(
            Campaign.notice_id == notice_id)).scalars().all()  # type: ignore[arg-type]
    assert len(found) == 1
    return found[0]


def items(engine: Engine, cid: int) -> list[tuple[int, str, int | None]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(  # type: ignore[misc]
            "SELECT node_id, address, person_id FROM campaign_item WHERE campaign_id = :c"
            " ORDER BY node_id, address"), {"c": cid})]


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(  # type: ignore[return-value]
            "SELECT (SELECT count(*) FROM campaign), (SELECT count(*) FROM notice)")).one())


def test_a_notice_to_residents_starts_its_relay(city: Engine, clock: FakeClock) -> None:
    with session_scope(city) as s:
        homes = homes_without_chat(s, node=node_by_code(s, VILLAGE1))
        vacant = node_by_code(s, VACANT_LIN).id
    want = sorted((h.neighborhood_id, h.address or "", None if h.address else h.person_ids[0])
                  for hs in homes.values() for h in hs)
    assert want
    deadline = clock.now() + timedelta(hours=8)
    sent = send(city, clock, deadline=deadline)
    c = relay_of(city, sent.notice_id)
    assert c.title == "明天上午停水，请提前储水" and c.started_by is None
    assert tuple(c.outcomes) == RELAY_OUTCOMES
    assert as_utc(c.deadline_at) == deadline
    got = items(city, c.id or 0)
    assert sorted((n, a if p is None else "", p) for n, a, p in got) == want
    # A 邻 without a 邻长 is in the relay too (nobody is dropped; its 组长 hears at the
    # deadline), though no 邻长's copy counts it.
    if vacant in homes:
        assert any(n == vacant for n, _, _ in got)
    with session_scope(city) as s:
        st = services.status(s, notice_id=sent.notice_id, viewer_scopes=None)
    assert st.relay is not None and st.relay.total == len(want) and st.relay.done == 0


def test_marking_moves_the_notices_relay_progress(city: Engine, clock: FakeClock) -> None:
    sent = send(city, clock)
    c = relay_of(city, sent.notice_id)
    lz = holder_of(city, "neighbor_leader", LIN1).person_id
    with Session(city) as s:
        mine = marking.items_of(s, campaign_id=c.id or 0,
                                node_ids=[node_by_code(s, LIN1).id])
    assert len(mine) >= 2
    told, moved = RELAY_OUTCOMES.index("已转达"), RELAY_OUTCOMES.index("已搬离")
    with session_scope(city) as s:
        marking.mark(s, item_id=mine[0].id, outcome=told, person_id=lz, clock=clock)
        marking.mark(s, item_id=mine[1].id, outcome=moved, person_id=lz, clock=clock)
    with session_scope(city) as s:
        st = services.status(s, notice_id=sent.notice_id, viewer_scopes=None)
    assert st.relay is not None and st.relay.done == 2
    assert dict(st.relay.by_outcome) == {"已转达": 1, "不在家": 0, "已搬离": 1}
    # The 已搬离 reached the registry: that household is in no later notice's relay.
    with session_scope(city) as s:
        later = relay_households(s, node=node_by_code(s, LIN1))
    assert mine[1].address not in {h.address for h in later[lz]}
    assert mine[0].address in {h.address for h in later[lz]}


def test_without_a_deadline_the_relay_is_due_after_the_window(city: Engine,
                                                              clock: FakeClock) -> None:
    sent = send(city, clock, confirm=False, window=timedelta(days=2))
    assert as_utc(relay_of(city, sent.notice_id).deadline_at) == clock.now() + timedelta(days=2)


def test_a_notice_to_leaders_only_has_no_relay(city: Engine, clock: FakeClock) -> None:
    sent = send(city, clock, audience=("neighbor_leader",))
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaign WHERE notice_id = :n"),
                            {"n": sent.notice_id}).scalar_one() == 0
    with session_scope(city) as s:
        assert services.status(s, notice_id=sent.notice_id, viewer_scopes=None).relay is None


def test_a_refused_notice_starts_no_relay(city: Engine, clock: FakeClock) -> None:
    before = counts(city)
    with pytest.raises(InvalidInput):
        send(city, clock, text="  ")
    with pytest.raises(InvalidInput):
        send(city, clock, deadline=clock.now() - timedelta(minutes=1))
    assert counts(city) == before


def test_a_resident_without_an_address_is_an_item_of_their_own(city: Engine,
                                                               clock: FakeClock) -> None:
    with session_scope(city) as s:
        lin = node_by_code(s, LIN1)
        homes = homes_without_chat(s, node=lin)[lin.id]
        pid = homes[0].person_ids[0]
        name = s.execute(sa.text("SELECT name FROM person WHERE id = :p"),
                         {"p": pid}).scalar_one()
        s.execute(sa.text("UPDATE post SET address = NULL WHERE person_id = :p AND"
                          " role = 'resident'"), {"p": pid})
    sent = send(city, clock)
    c = relay_of(city, sent.notice_id)
    alone = [(n, a, p) for n, a, p in items(city, c.id or 0) if p is not None]
    assert alone == [(lin.id, masked(name), pid)]
    assert masked(name) != name and masked(name)[0] == name[0]
    # 已搬离 on such an item marks that one person moved, nobody else of the 邻.
    lz = holder_of(city, "neighbor_leader", LIN1).person_id
    with Session(city) as s:
        item = next(i for i in marking.items_of(s, campaign_id=c.id or 0, node_ids=[lin.id])
                    if i.address == masked(name))
    with session_scope(city) as s:
        marking.mark(s, item_id=item.id, outcome=RELAY_OUTCOMES.index("已搬离"),
                     person_id=lz, clock=clock)
    with city.connect() as conn:
        gone = conn.execute(sa.text("SELECT person_id FROM post WHERE moved_at IS NOT NULL")
                            ).scalars().all()
    assert list(gone) == [pid]


def _moved_with_chat(engine: Engine, clock: FakeClock) -> tuple[int, int]:
    """A resident of LIN1 with a chat and one without, both marked moved."""
    with engine.begin() as conn:
        rows = conn.execute(sa.text(
            "SELECT x.person_id, x.address, x.node_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE n.code = :c AND x.role = 'resident' AND x.address IS NOT NULL"
            " ORDER BY x.address"), {"c": LIN1}).all()
        by_address: dict[str, list[int]] = {}
        for pid, address, _ in rows:
            by_address.setdefault(address, []).append(pid)
        first, second = sorted(by_address)[:2]
        with_chat = by_address[first][0]
        conn.execute(sa.text(
            "INSERT INTO chat_identity (person_id, platform, external_id, unreachable)"
            " SELECT :p, 'telegram', '777001', false WHERE NOT EXISTS (SELECT 1 FROM"
            " chat_identity WHERE person_id = :p)"), {"p": with_chat})
        nid = rows[0][2]
    with session_scope(engine) as s:
        for address in (first, second):
            registry.mark_moved(s, node_id=nid, address=address, now=clock.now())
    return with_chat, by_address[second][0]


def test_moved_residents_are_in_no_audience_and_no_relay(city: Engine,
                                                         clock: FakeClock) -> None:
    with_chat, without = _moved_with_chat(city, clock)
    with session_scope(city) as s:
        village = node_by_code(s, VILLAGE1)
        found = {t.person_id for t in targets(s, node=village, audience=services.parse_audience(
            ["resident"]))}
        relayed = {p for hs in homes_without_chat(s, node=village).values()
                   for h in hs for p in h.person_ids}
    assert with_chat not in found and without not in relayed
    sent = send(city, clock)
    with city.connect() as conn:
        recipients = set(conn.execute(sa.text(
            "SELECT person_id FROM notice_recipient WHERE notice_id = :n"),
            {"n": sent.notice_id}).scalars())
        relay_items = conn.execute(sa.text(
            "SELECT count(*) FROM campaign_item i JOIN post x ON x.node_id = i.node_id AND"
            " x.address = i.address AND x.role = 'resident' WHERE i.campaign_id ="
            " (SELECT id FROM campaign WHERE notice_id = :n) AND x.person_id IN (:a, :b)"),
            {"n": sent.notice_id, "a": with_chat, "b": without}).scalar_one()
    assert with_chat not in recipients and without not in recipients and relay_items == 0


def test_moved_residents_leave_routing_and_come_back_by_invite(city: Engine,
                                                               clock: FakeClock) -> None:
    with_chat, without = _moved_with_chat(city, clock)
    with session_scope(city) as s:
        village = node_by_code(s, VILLAGE1)
        with pytest.raises(NotFound):
            residence_of(s, with_chat)
        assert actor(s, without).posts == ()
        name = s.execute(sa.text("SELECT name FROM person WHERE id = :p"),
                         {"p": without}).scalar_one()
        assert without not in {p.id for p, _, _ in find_people(s, name, within=village)}
        sec = holder_of(city, "secretary", VILLAGE1).person_id
        lin = node_by_code(s, LIN1)
        invite = invite_for(s, by=actor(s, sec), node=lin, now=clock.now())
    with session_scope(city) as s:
        redeem(s, code=invite.code, person_id=without)
    with session_scope(city) as s:
        assert [n.code for _, n in actor(s, without).posts] == [LIN1]
