"""The write side outside imports: posts given by admins, chat groups bound to nodes, chat
accounts linked to people — with who may do what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.flows.refusals import sentence
from core.clock import FakeClock, as_utc
from core.db import session_scope
from core.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from core.hierarchy import queries as q
from core.hierarchy import services as sv
from core.hierarchy.importer import import_files
from core.hierarchy.model import ChatBinding, ChatIdentity, Role, Tier
from tests.citydata import (
    AREA,
    DEPT_TOWN,
    DISTRICT,
    GROUP,
    GROUP2,
    GROUP_B,
    LIN,
    LIN2,
    LIN_B,
    PHONE,
    TG_SUN,
    TOWN,
    TOWN2,
    VILLAGE,
    dump,
    person_ids,
    write_small_city,
)


@pytest.fixture
def city(engine: Engine, tmp_path: Path, clock: FakeClock) -> dict[str, int]:
    import_files(engine, write_small_city(tmp_path / "city"), clock=clock)
    ids = person_ids(engine)
    return {who: ids[phone] for who, phone in PHONE.items()}


def actor(engine: Engine, person_id: int) -> q.Actor:
    with Session(engine) as s:
        return q.actor(s, person_id)


def run(engine: Engine, fn: Callable[..., Any], **kw: Any) -> Any:
    """One service call in its own unit of work, committed on success."""
    with session_scope(engine) as s:
        return fn(s, **kw)


def refused(engine: Engine, error: type[Exception], fn: Callable[..., Any], *,
            lang: str = "zh", **kw: Any) -> str:
    """What the refusal says (a domain error's sentence in `lang`); nothing was written."""
    before = dump(engine)
    with pytest.raises(error) as exc:
        run(engine, fn, **kw)
    assert dump(engine) == before
    return sentence(exc.value, lang) if isinstance(exc.value, DomainError) else str(exc.value)


def test_assign_role_inside_and_outside_an_admins_subtree(engine: Engine,
                                                          city: dict[str, int]) -> None:
    town_admin = actor(engine, city["town_admin"])
    post = run(engine, sv.assign_role, by=town_admin, phone=PHONE["resident_chen"],
               role="group_leader", node_code=GROUP_B)
    again = run(engine, sv.assign_role, by=town_admin, phone="+86 " + PHONE["resident_chen"],
                role="组长", node_code=GROUP_B)
    assert again.id == post.id  # the same post, not a second one
    with Session(engine) as s:
        chain = q.chain_for_node(s, q.node_by_code(s, LIN_B))
        assert [h.id for h in chain.steps[1].holders] == [city["resident_chen"]]
        assert (GROUP_B, Role.group_leader) not in {
            (v.node.code, v.role) for v in q.vacancies(s, q.node_by_code(s, TOWN))}

    assert "不在您管理的范围内" in refused(
        engine, PermissionDenied, sv.assign_role, by=town_admin, phone=PHONE["resident_sun"],
        role="group_leader", node_code=GROUP2)  # the other town
    refused(engine, PermissionDenied, sv.assign_role, by=town_admin, phone=PHONE["resident_sun"],
            role="admin", node_code=DISTRICT)  # above them
    leader = actor(engine, city["group_leader"])
    refused(engine, PermissionDenied, sv.assign_role, by=leader, phone=PHONE["resident_sun"],
            role="neighbor_leader", node_code=LIN)  # a 组长 is no admin, even below
    assert "held on a neighborhood, not on a group" in refused(
        engine, InvalidInput, sv.assign_role, lang="en", by=town_admin, phone=PHONE["resident_sun"],
        role="neighbor_leader", node_code=GROUP)
    refused(engine, InvalidInput, sv.assign_role, by=town_admin, phone=PHONE["resident_sun"],
            role="mayor", node_code=GROUP)
    refused(engine, InvalidInput, sv.assign_role, by=town_admin, phone="12345",
            role="resident", node_code=LIN)
    refused(engine, NotFound, sv.assign_role, by=town_admin, phone="13812340000",
            role="resident", node_code=LIN)
    refused(engine, NotFound, sv.assign_role, by=town_admin, phone=PHONE["resident_sun"],
            role="resident", node_code="000")

    district_admin = actor(engine, city["district_admin"])
    run(engine, sv.assign_role, by=district_admin, phone=PHONE["town_admin"], role=Role.admin,
        node_code=TOWN2)
    assert actor(engine, city["town_admin"]).is_admin_of(actor(engine, city["leader2"])
                                                         .posts[0][1])


def test_bind_chat_picks_the_tier_from_the_level(engine: Engine, city: dict[str, int],
                                                 clock: FakeClock) -> None:
    admin = actor(engine, city["town_admin"])
    want = {TOWN: Tier.town_secretary, VILLAGE: Tier.secretary_area, AREA: Tier.area_group,
            GROUP: Tier.group_neighbor, LIN: Tier.neighbor_resident}
    for i, (code, tier) in enumerate(want.items()):
        b = run(engine, sv.bind_chat, by=admin, platform="telegram", chat_id=f"-100{i}",
                node_code=code, title=f"群{i}", now=clock.now())
        assert b.tier == tier.value
    with Session(engine) as s:
        bound = sv.bindings_for(s, nodes=[q.node_by_code(s, c) for c in want])
        assert [(b.chat_id, b.tier, b.bound_by) for b in bound] == [
            (f"-100{i}", t.value, city["town_admin"]) for i, t in enumerate(want.values())]
        assert sv.bindings_for(s, nodes=[]) == []

    assert "cannot mirror a department" in refused(
        engine, InvalidInput, sv.bind_chat, lang="en", by=admin, platform="telegram",
        chat_id="-200", node_code=DEPT_TOWN, title=None, now=clock.now())
    refused(engine, PermissionDenied, sv.bind_chat, by=admin, platform="telegram",
            chat_id="-200", node_code=LIN2, title=None, now=clock.now())
    refused(engine, PermissionDenied, sv.bind_chat, by=actor(engine, city["group_leader"]),
            platform="telegram", chat_id="-200", node_code=GROUP, title=None, now=clock.now())
    refused(engine, InvalidInput, sv.bind_chat, by=actor(engine, city["district_admin"]),
            platform="telegram", chat_id="-200", node_code=DISTRICT, title=None,
            now=clock.now())
    refused(engine, ValueError, sv.bind_chat, by=admin, platform="icq", chat_id="-200",
            node_code=GROUP, title=None, now=clock.now())


def test_rebinding_moves_the_chat_and_unbind_removes_it(engine: Engine, city: dict[str, int],
                                                         clock: FakeClock) -> None:
    admin = actor(engine, city["town_admin"])
    first = run(engine, sv.bind_chat, by=admin, platform="telegram", chat_id="-42",
                node_code=LIN, title="1邻群", now=clock.now())
    wechat = run(engine, sv.bind_chat, by=admin, platform="wechat", chat_id="-42",
                 node_code=LIN, title="同号的微信群", now=clock.now())
    assert wechat.id != first.id  # the same chat id on another platform is another chat
    moved = run(engine, sv.bind_chat, by=actor(engine, city["district_admin"]),
                platform="telegram", chat_id="-42", node_code=GROUP, title="1组群",
                now=clock.now())
    assert moved.id == first.id
    with Session(engine) as s:
        rows = s.execute(sa.select(ChatBinding.chat_id, ChatBinding.platform,
                                   ChatBinding.tier, ChatBinding.title, ChatBinding.bound_by)
                         .order_by(ChatBinding.id)).all()
        assert [tuple(r) for r in rows] == [
            ("-42", "telegram", Tier.group_neighbor.value, "1组群", city["district_admin"]),
            ("-42", "wechat", Tier.neighbor_resident.value, "同号的微信群", city["town_admin"])]
        assert [b.platform for b in sv.bindings_for(s, nodes=[q.node_by_code(s, LIN)])] == [
            "wechat"]
        assert [b.id for b in sv.bindings_for(s, nodes=[q.node_by_code(s, GROUP)])] == [
            first.id]

    refused(engine, PermissionDenied, sv.unbind_chat, by=actor(engine, city["town2_admin"]),
            platform="telegram", chat_id="-42")
    refused(engine, PermissionDenied, sv.unbind_chat, by=actor(engine, city["group_leader"]),
            platform="telegram", chat_id="-42")
    run(engine, sv.unbind_chat, by=admin, platform="telegram", chat_id="-42")
    refused(engine, NotFound, sv.unbind_chat, by=admin, platform="telegram", chat_id="-42")
    with Session(engine) as s:
        left = s.execute(sa.select(ChatBinding.platform)).scalars().all()
    assert left == ["wechat"]


def test_link_identity_refuses_an_account_owned_by_someone_else(
    engine: Engine, city: dict[str, int], clock: FakeClock
) -> None:
    zhou = city["resident_zhou"]
    made = run(engine, sv.link_identity, person_id=zhou, platform="telegram",
               external_id="31337", now=clock.now(), proof="contact")
    with Session(engine) as s:
        assert _person(q.actor_by_identity(s, "telegram", "31337")) == zhou
    with session_scope(engine) as s:  # seen again after being marked unreachable
        s.execute(sa.update(ChatIdentity).values(unreachable=True))
    clock.advance(timedelta(hours=1))
    again = run(engine, sv.link_identity, person_id=zhou, platform="telegram",
                external_id=31337, now=clock.now(), proof="contact")
    assert again.id == made.id and again.unreachable is False
    assert as_utc(again.last_seen_at) == clock.now()

    assert "已经绑定了其他人" in refused(
        engine, Conflict, sv.link_identity, person_id=zhou, platform="telegram",
        external_id=TG_SUN, now=clock.now(), proof="contact")  # 居民孙's account
    refused(engine, ValueError, sv.link_identity, person_id=zhou, platform="myspace",
            external_id="1", now=clock.now(), proof="contact")
    # A second account on the same platform is fine; so is the same id on another platform.
    run(engine, sv.link_identity, person_id=zhou, platform="telegram", external_id="31338",
        now=clock.now(), proof="contact")
    run(engine, sv.link_identity, person_id=city["resident_sun"], platform="wecom",
        external_id="31337", now=clock.now(), proof="contact")
    with Session(engine) as s:
        assert [i[:2] for i in q.identities_of(s, zhou)] == [
            ("wecom", "zhou.wecom"), ("telegram", "31337"), ("telegram", "31338")]


def test_create_person(engine: Engine, city: dict[str, int], clock: FakeClock) -> None:
    p = run(engine, sv.create_person, name="  网友  ", phone=None, now=clock.now())
    assert (p.name, p.phone) == ("网友", None)
    blank = run(engine, sv.create_person, name="   ", phone=None, now=clock.now())
    assert blank.name == "居民"
    q2 = run(engine, sv.create_person, name="新居民", phone="+86 138-1234-0000", now=clock.now())
    assert q2.phone == "13812340000"
    assert "already exists" in refused(engine, Conflict, sv.create_person, lang="en", name="冒名",
                                       phone=PHONE["resident_sun"], now=clock.now())
    refused(engine, InvalidInput, sv.create_person, name="坏号", phone="0551-1234567",
            now=clock.now())
    assert person_ids(engine)["13812340000"] == q2.id


def _person(who: q.Actor | None) -> int | None:
    """The person an account belongs to (None: a stranger)."""
    return who.person.id if who is not None else None
