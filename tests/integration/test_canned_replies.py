"""常用答复 on both databases, through chat: the categories file's `canned` column (常用答复,
answers separated by "|") puts one button per answer on the holder's card of a categorised
case; pressing one shows the whole text with 按此发送, sending it as is or replacing it by
typing; a bad cell is refused as `file:row: reason` and nothing is stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.flows.types import Press
from core.clock import FakeClock
from core.errors import ImportRejected
from core.hierarchy.exporter import export_files
from core.hierarchy.importer import import_files
from core.settings import Settings
from tests.integration.test_flows import link, outbox_for, resident_of, send
from tests.support.demo_city import LIN1, holder_of, load_demo

MORNING = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
FIRST = "已安排维修人员，今天之内到场处理，请您放心"
SECOND = "已报街道市政所，预计三个工作日内修好"


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> tuple[Engine, FakeClock, Settings, Path]:
    load_demo(engine)
    cats = tmp_path / "类别.csv"
    cats.write_text(f"类别,责任部门,常用答复\n公共设施,D01,{FIRST}|{SECOND}\n", encoding="utf-8")
    import_files(engine, [cats])
    st = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    return engine, FakeClock(MORNING), st, tmp_path


def _card(engine: Engine, person_id: int) -> dict[str, Any]:
    return [r for r in outbox_for(engine, person_id) if r["actions"]][-1]


def _open(world: Any) -> tuple[Any, Any, dict[str, Any]]:
    engine, clock, st, _ = world
    resident = resident_of(engine, LIN1)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    link(engine, resident.person_id, "5100")
    link(engine, leader.person_id, "9100")
    send(engine, clock, st, sender="5100", text="小区门口的路灯坏了")
    return resident, leader, _card(engine, leader.person_id)


def test_canned_buttons_on_the_card_send_the_chosen_text(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st, _ = world
    resident, _leader, card = _open(world)
    canned = [a for a in card["actions"] if a["action"] == "canned"]
    assert [a["arg"] for a in canned] == ["0", "1"]
    assert canned[0]["label"].startswith("💬已安排维修人员")
    out = send(engine, clock, st, sender="9100",
               press=Press("canned", card["case_id"], canned[0]["version"], arg="0",
                           query_id="q"))
    prompt = [r for r in out if r["actions"]][-1]
    assert FIRST in prompt["text"]  # the whole answer, to read before sending
    send_btn = prompt["actions"][0]
    assert send_btn["action"] == "canned_send" and send_btn["arg"] == "0"
    send(engine, clock, st, sender="9100",
         press=Press("canned_send", card["case_id"], send_btn["version"], arg="0",
                     query_id="q2"))
    told = "\n".join(r["text"] for r in outbox_for(engine, resident.person_id))
    assert FIRST in told, told
    with engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind, note FROM case_event WHERE case_id = :c"
                                     " ORDER BY id"), {"c": card["case_id"]}).all()
    assert ("replied", FIRST) in [tuple(k) for k in kinds]


def test_a_canned_answer_can_be_replaced_by_typing(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st, _ = world
    resident, _leader, card = _open(world)
    send(engine, clock, st, sender="9100",
         press=Press("canned", card["case_id"], card["actions"][0]["version"], arg="1",
                     query_id="q"))
    send(engine, clock, st, sender="9100", text="明天上午师傅上门修")
    told = "\n".join(r["text"] for r in outbox_for(engine, resident.person_id))
    assert "明天上午师傅上门修" in told and SECOND not in told


def test_a_press_for_an_answer_that_is_gone_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st, _ = world
    _resident, _leader, card = _open(world)
    out = send(engine, clock, st, sender="9100",
               press=Press("canned_send", card["case_id"], card["actions"][0]["version"],
                           arg="7", query_id="q"))
    assert any("已不存在" in r["text"] for r in out)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM case_event WHERE kind = 'replied'")
                            ).scalar_one() == 0


def test_an_uncategorised_case_has_no_canned_buttons(world) -> None:  # type: ignore[no-untyped-def]
    engine, clock, st, _ = world
    resident = resident_of(engine, LIN1)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    link(engine, resident.person_id, "5100")
    link(engine, leader.person_id, "9100")
    send(engine, clock, st, sender="5100", text="有点事想反映一下")
    card = _card(engine, leader.person_id)
    assert not [a for a in card["actions"] if a["action"] == "canned"]


@pytest.mark.parametrize(("cell", "want"), [
    ("好的||收到", r"empty answer"),
    ("收到|", r"empty answer"),
    ("|".join(f"答复{i}" for i in range(6)), r"at most 5"),
    ("长" * 301, r"longer than 300"),
])
def test_a_bad_canned_cell_is_file_row_reason(world, cell: str, want: str) -> None:  # type: ignore[no-untyped-def]
    engine, _clock, _st, tmp = world
    f = tmp / "categories.csv"
    f.write_text(f"category,canned\n环境卫生,好的\n公共设施,{cell}\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as exc:
        import_files(engine, [f])
    errors = exc.value.errors
    assert [(e.file, e.row) for e in errors] == [("categories.csv", 3)], [str(e) for e in errors]
    assert re.match(r"categories\.csv:3: canned", str(errors[0])), str(errors[0])
    assert re.search(want, str(errors[0]))
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT canned FROM category WHERE name = '公共设施'")
                              ).scalar_one()
    assert stored == f"{FIRST}|{SECOND}"


def test_the_export_writes_the_canned_column_back(world) -> None:  # type: ignore[no-untyped-def]
    engine, _clock, _st, tmp = world
    export_files(engine, tmp / "out")
    text = (tmp / "out" / "categories.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].endswith(",canned")
    assert f"{FIRST}|{SECOND}" in text


def test_naming_the_category_later_brings_its_buttons_onto_the_live_card(world) -> None:  # type: ignore[no-untyped-def]
    from core.cases.lists import set_category
    from core.db import session_scope

    engine, clock, st, _ = world
    resident = resident_of(engine, LIN1)
    leader = holder_of(engine, "neighbor_leader", LIN1)
    link(engine, resident.person_id, "5100")
    link(engine, leader.person_id, "9100")
    send(engine, clock, st, sender="5100", text="楼上天天半夜很吵")  # no category yet
    first = _card(engine, leader.person_id)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT category_id FROM cases WHERE id = :c"),
                            {"c": first["case_id"]}).scalar_one() is None
    assert not [a for a in first["actions"] if a["action"] == "canned"]
    with session_scope(engine) as s:
        set_category(s, clock=clock, case_id=first["case_id"], person_id=resident.person_id,
                     category="公共设施")
    edits = [r for r in outbox_for(engine, leader.person_id)
             if r["kind"] == "card_update" and r["case_id"] == first["case_id"]]
    assert edits, "the card was not brought up to date"
    assert [a["arg"] for a in edits[-1]["actions"] if a["action"] == "canned"] == ["0", "1"]
