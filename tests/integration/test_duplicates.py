"""Duplicates and "me too" through the flows: Inbound in, outbox rows out, real databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.flows.types import Media, Press
from core.clock import FakeClock
from core.settings import Settings
from tests.integration.test_flows import link, outbox_for, send
from tests.support.demo_city import GROUP1, load_demo

# Two points 30 m apart in 谯城区, and one 2 km away.
HERE = (33.8700, 115.7800)
NEAR = (33.87027, 115.7800)
FAR = (33.8880, 115.7800)


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(_env_file=None, media_dir=str(tmp_path / "media"))  # type: ignore[call-arg]


def residents(engine: Engine, *, inside: str, outside: bool = False, n: int = 3) -> list[int]:
    """Residents living under `inside` (or, with outside, not under it), one per 邻."""
    op = "NOT LIKE" if outside else "LIKE"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT x.person_id, n.code FROM post x JOIN node n ON n.id = x.node_id"
            f" WHERE x.role = 'resident' AND n.code {op} :c ORDER BY x.id"),
            {"c": inside + "%"}).all()
    out: list[int] = []
    for pid, _code in rows:
        if pid not in out:
            out.append(pid)
    assert len(out) >= n
    return out[:n]


def where(point: tuple[float, float]) -> tuple[Media, ...]:
    return (Media(kind="location", latitude=point[0], longitude=point[1]),)


def newest_case(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT max(id) FROM cases")).scalar_one())


def case_row(engine: Engine, case_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT state, merged_into_id, version, text FROM cases WHERE id = :c"),
            {"c": case_id}).one()


def followers(engine: Engine, case_id: int) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT person_id FROM case_follower WHERE case_id = :c"), {"c": case_id}).scalars())


def offer(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if any(a["action"] == "dupe_pick" for a in r["actions"] or [])),
                None)


def two_neighbours(city: Engine) -> tuple[int, int, int]:
    a, b, c = residents(city, inside=GROUP1)
    for pid, tg in ((a, "7001"), (b, "7002"), (c, "7003")):
        link(city, pid, tg)
    return a, b, c


def rubbish_twice(city: Engine, clock: FakeClock, settings: Settings) -> tuple[int, int]:
    """Two neighbours report the same rubbish 30 m apart; the two cases, older first."""
    send(city, clock, settings, sender="7001", text="3号楼前面的垃圾好几天没人清理了",
         media=where(HERE))
    first = newest_case(city)
    send(city, clock, settings, sender="7002", text="3号楼垃圾没人清理，很臭", media=where(NEAR))
    return first, newest_case(city)


def test_a_similar_report_nearby_becomes_a_supporter_with_one_tap(
        city: Engine, clock: FakeClock, settings: Settings) -> None:
    a, b, _ = two_neighbours(city)
    send(city, clock, settings, sender="7001", text="3号楼前面的垃圾好几天没人清理了 13912345678",
         media=where(HERE))
    first = newest_case(city)
    rows = send(city, clock, settings, sender="7002", text="3号楼垃圾没人清理，很臭",
                media=where(NEAR))
    second = newest_case(city)
    assert second != first, "the report is filed at once, before any choice"
    o = offer(rows)
    assert o is not None and "是不是这件事" in o["text"]
    picks = [x for x in o["actions"] if x["action"] == "dupe_pick"]
    assert [x["arg"] for x in picks] == [str(first)]
    # Another resident's words, masked: no phone number on the button.
    assert "13912345678" not in picks[0]["label"] and f"#{first}" in picks[0]["label"]
    assert any(x["action"] == "dupe_none" for x in o["actions"])

    out = send(city, clock, settings, sender="7002",
               press=Press("dupe_pick", second, picks[0]["version"], arg=str(first)))
    assert any("并入工单" in r["text"] and "2人反映" in r["text"] for r in out)
    assert case_row(city, second)[:2] == ("merged", first)
    assert followers(city, first) == {a, b}
    with city.connect() as conn:
        added = conn.execute(sa.text(
            "SELECT note FROM case_event WHERE case_id = :c AND kind = 'added'"),
            {"c": first}).scalars().all()
        photos = conn.execute(sa.text(
            "SELECT count(*) FROM case_attachment WHERE case_id = :c AND kind = 'location'"),
            {"c": first}).scalar_one()
    assert added == ["3号楼垃圾没人清理，很臭"] and photos == 2, "their words and place go along"

    # A supporter hears every update of the case they joined.
    with city.connect() as conn:
        holder_id, version = conn.execute(sa.text(
            "SELECT holder_id, version FROM cases WHERE id = :c"), {"c": first}).one()
    link(city, holder_id, "9001")
    send(city, clock, settings, sender="9001", press=Press("accept", first, version))
    assert any(r["kind"] == "accepted" and r["case_id"] == first for r in outbox_for(city, b))
    assert any(r["kind"] == "accepted" for r in outbox_for(city, a))


def test_a_dissimilar_report_files_normally(city: Engine, clock: FakeClock,
                                            settings: Settings) -> None:
    two_neighbours(city)
    send(city, clock, settings, sender="7001", text="3号楼前面的垃圾好几天没人清理了",
         media=where(HERE))
    rows = send(city, clock, settings, sender="7002", text="单元门的门禁坏了打不开",
                media=where(NEAR))
    assert offer(rows) is None
    assert case_row(city, newest_case(city))[0] == "open"
    assert any(any(a["action"] == "category" for a in r["actions"] or []) for r in rows), \
        "no offer: the category question as before"


def test_only_the_own_group_or_100_m_is_offered(city: Engine, clock: FakeClock,
                                                settings: Settings) -> None:
    (elsewhere,) = residents(city, inside=GROUP1, outside=True, n=1)
    a, _, _ = two_neighbours(city)
    link(city, elsewhere, "7009")
    send(city, clock, settings, sender="7001", text="3号楼前面的垃圾好几天没人清理了",
         media=where(HERE))
    # Same words from another 组, 2 km away: nothing of theirs is shown.
    rows = send(city, clock, settings, sender="7009", text="3号楼前面的垃圾好几天没人清理了",
                media=where(FAR))
    assert offer(rows) is None
    # Pressing a made-up offer for a case outside their 组 and 100 m: refused, report kept.
    own = newest_case(city)
    out = send(city, clock, settings, sender="7009",
               press=Press("dupe_pick", own, 1, arg=str(own - 1)))
    assert any("不在您附近" in r["text"] for r in out)
    assert case_row(city, own)[0] == "open" and elsewhere not in followers(city, own - 1)
    assert a in followers(city, own - 1)


def test_a_press_on_a_case_that_closed_meanwhile_or_on_someone_elses_offer(
        city: Engine, clock: FakeClock, settings: Settings) -> None:
    _, b, c = two_neighbours(city)
    send(city, clock, settings, sender="7001", text="3号楼前面的垃圾好几天没人清理了",
         media=where(HERE))
    first = newest_case(city)
    rows = send(city, clock, settings, sender="7002", text="3号楼垃圾没人清理，很臭",
                media=where(NEAR))
    second = newest_case(city)
    pick = next(x for x in offer(rows)["actions"] if x["action"] == "dupe_pick")  # type: ignore[index]

    # Someone else presses b's offer: a clear no, nothing changes.
    out = send(city, clock, settings, sender="7003",
               press=Press("dupe_pick", second, pick["version"], arg=str(first)))
    assert any("不是您的反映" in r["text"] for r in out)
    assert case_row(city, second)[0] == "open" and c not in followers(city, first)

    # The chosen case ends before b presses: b's report stays filed as its own case.
    with city.begin() as conn:
        conn.execute(sa.text("UPDATE cases SET state = 'closed' WHERE id = :c"), {"c": first})
    out = send(city, clock, settings, sender="7002",
               press=Press("dupe_pick", second, pick["version"], arg=str(first)))
    assert any(f"工单#{first}已结束" in r["text"] and f"#{second}" in r["text"] for r in out)
    assert case_row(city, second)[0] == "open" and b not in followers(city, first)

    # "不是，新问题": it stays as filed.
    out = send(city, clock, settings, sender="7002", press=Press("dupe_none", second, 1))
    assert any("按新问题办理" in r["text"] for r in out)
    assert case_row(city, second)[0] == "open"


def test_a_leader_merges_from_the_card(city: Engine, clock: FakeClock,
                                       settings: Settings) -> None:
    a, b, _ = two_neighbours(city)
    first, second = rubbish_twice(city, clock, settings)
    with city.connect() as conn:
        holder_id = conn.execute(sa.text("SELECT holder_id FROM cases WHERE id = :c"),
                                 {"c": second}).scalar_one()
    link(city, holder_id, "9100")
    card = next(r for r in outbox_for(city, holder_id)
                if r["case_id"] == second and "可能重复" in r["text"])
    assert f"可能重复：#{first}" in card["text"]
    merge = next(x for x in card["actions"] if x["action"] == "merge")
    out = send(city, clock, settings, sender="9100",
               press=Press("merge", second, merge["version"], arg=merge["arg"]))
    assert any(f"工单#{second}合并" in r["text"] for r in out)
    assert case_row(city, second)[:2] == ("merged", first)
    assert followers(city, first) == {a, b}


def test_the_map_and_figures_count_a_joined_report_once(city: Engine, clock: FakeClock,
                                                        settings: Settings) -> None:
    from datetime import timedelta

    from sqlmodel import Session

    from core.cases.lists import count_open_below
    from core.cases.stats import figures
    from core.hierarchy.queries import node_by_code

    two_neighbours(city)
    send(city, clock, settings, sender="7001", text="3号楼前面的垃圾好几天没人清理了",
         media=where(HERE))
    first = newest_case(city)
    rows = send(city, clock, settings, sender="7002", text="3号楼垃圾没人清理，很臭",
                media=where(NEAR))
    second = newest_case(city)
    pick = next(x for x in offer(rows)["actions"] if x["action"] == "dupe_pick")  # type: ignore[index]
    send(city, clock, settings, sender="7002",
         press=Press("dupe_pick", second, pick["version"], arg=str(first)))
    with Session(city) as session:
        group = node_by_code(session, GROUP1)
        assert count_open_below(session, node=group, now=clock.now()) == (1, 0)
        f = figures(session, node=group, start=clock.now() - timedelta(days=1),
                    end=clock.now() + timedelta(days=1))
    assert (f.received, f.merged) == (2, 1), "both reports were received, one is a duplicate"
    assert f.received - f.merged == 1

    # Lists say how many reported it (N 人反映): the case view and the dashboard's list.
    from core import reports
    from core.cases.services import view

    with Session(city) as session:
        assert view(session, case_id=first, now=clock.now()).supporters == 2
        page, _ = reports.case_list(session, f=reports.CaseFilter(node=group, limit=10),
                                    now=clock.now())
    assert {r.id: r.supporters for r in page} == {first: 2, second: 1}


def test_an_escalated_card_names_the_kept_originals_without_searching_again(
        city: Engine, clock: FakeClock, settings: Settings) -> None:
    from datetime import timedelta

    from core.cases.sweep import run_sweep

    two_neighbours(city)
    first, second = rubbish_twice(city, clock, settings)
    with city.connect() as conn:
        kept = conn.execute(sa.text("SELECT maybe_dupes FROM cases WHERE id = :c"),
                            {"c": second}).scalar_one()
    assert kept == str(first)  # found once, at its first card

    # The 4-hour deadline passes unanswered: the sweep hands both up a tier.
    seen: list[str] = []

    def grab(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    clock.advance(timedelta(hours=5))
    sa.event.listen(city, "before_cursor_execute", grab)
    try:
        assert run_sweep(city, clock=clock).escalated == 2
    finally:
        sa.event.remove(city, "before_cursor_execute", grab)
    assert not [s for s in seen if "ORDER BY cases.id DESC" in s], "searched the 组 again"
    with city.connect() as conn:
        holder = conn.execute(sa.text("SELECT holder_id FROM cases WHERE id = :c"),
                              {"c": second}).scalar_one()
    card = [r for r in outbox_for(city, holder) if r["case_id"] == second][-1]
    assert f"可能重复：#{first}" in card["text"]
    assert any(x["action"] == "merge" and x["arg"] == str(first) for x in card["actions"])

    # Once the original has ended, the next card of the second case no longer names it.
    with city.begin() as conn:
        conn.execute(sa.text("UPDATE cases SET state = 'closed', next_due_at = NULL"
                             " WHERE id = :c"), {"c": first})
    clock.advance(timedelta(hours=5))
    assert run_sweep(city, clock=clock).escalated == 1
    with city.connect() as conn:
        holder = conn.execute(sa.text("SELECT holder_id FROM cases WHERE id = :c"),
                              {"c": second}).scalar_one()
    card = [r for r in outbox_for(city, holder) if r["case_id"] == second][-1]
    assert "可能重复" not in card["text"]
