"""Personal data in chat: card edits and answers in group chats are masked, /export gives whole
phone numbers only to town and district admins and only in a private chat, and a masked roster
cannot be imported back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from core.clock import FakeClock
from core.errors import ImportRejected
from core.hierarchy.exporter import export_files
from core.hierarchy.importer import import_files
from core.media.store import MediaStore
from core.settings import Settings
from tests.citydata import dump
from tests.integration.test_flows import city, link, resident_of, send, settings  # noqa: F401
from tests.support.demo_city import LIN1, TOWN, VILLAGE1, holder_of

ADDRESS = "幸福路12号3单元502"


def _bound_group(engine: Engine, clock: FakeClock, st: Settings) -> tuple[int, int, str]:
    """The 组长+邻长 chat of LIN1 bound; returns (resident, 组长) person ids and the chat."""
    admin = holder_of(engine, "admin", TOWN)
    group_leader = holder_of(engine, "group_leader", LIN1[:-3])
    resident = resident_of(engine, LIN1)
    link(engine, admin.person_id, "9700")
    link(engine, group_leader.person_id, "9701")
    link(engine, resident.person_id, "5701")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE post SET address = :a WHERE person_id = :p"
                             " AND role = 'resident'"), {"a": ADDRESS, "p": resident.person_id})
    out = send(engine, clock, st, sender="9700", chat="-100500", chat_is_private=False,
               command="bind", args=(LIN1[:-3],), message_id="1")
    assert "绑定" in out[0]["text"]
    return resident.person_id, group_leader.person_id, "-100500"


def test_card_edits_and_answers_in_a_group_chat_are_masked(
        city: Engine, clock: FakeClock, settings: Settings) -> None:  # noqa: F811
    _bound_group(city, clock, settings)
    send(city, clock, settings, sender="5701", text="水管爆了，打我电话13812345678")
    with city.connect() as conn:
        mirror, case_id = conn.execute(sa.text(
            "SELECT text, case_id FROM outbox WHERE chat_binding_id IS NOT NULL")).one()
    assert "138****5678" in mirror and "幸福路**号***" in mirror

    # The 组长 answers by replying in the group: every copy of the card is brought up to date,
    # the group's masked, the 邻长's own (private) copy whole.
    send(city, clock, settings, sender="9701", chat="-100500", chat_is_private=False,
         text="马上到", reply_to_text=mirror, message_id="4")
    with city.connect() as conn:
        edits = conn.execute(sa.text(
            "SELECT text, person_id, chat_binding_id FROM outbox WHERE kind = 'card_update'"
            " AND case_id = :c"), {"c": case_id}).all()
    group = [r for r in edits if r.chat_binding_id is not None]
    private = [r for r in edits if r.person_id is not None]
    assert group and all("13812345678" not in r.text for r in group)
    assert "138****5678" in group[0].text
    assert private and all("13812345678" in r.text for r in private)

    # A leader's /case in the group: the history, masked; in private: whole.
    out = send(city, clock, settings, sender="9701", chat="-100500", chat_is_private=False,
               command="case", args=(str(case_id),), message_id="5")
    assert "138****5678" in out[0]["text"] and "13812345678" not in out[0]["text"]
    out = send(city, clock, settings, sender="9701", command="case", args=(str(case_id),))
    assert "13812345678" in out[0]["text"]

    # A number where /case cuts the text short is not shown in part: the cut comes before it.
    send(city, clock, settings, sender="5701", text="新问题", message_id="7")
    long = "楼" * 55 + "13912345678还有别的"
    clock.advance(timedelta(minutes=11))
    send(city, clock, settings, sender="5701", text=long, message_id="8")
    with city.connect() as conn:
        long_case = conn.execute(sa.text("SELECT id FROM cases WHERE text = :t"),
                                 {"t": long}).scalar_one()
    out = send(city, clock, settings, sender="9701", chat="-100500", chat_is_private=False,
               command="case", args=(str(long_case),), message_id="9")
    assert "1391" not in out[0]["text"] and "楼" * 55 in out[0]["text"]

    # An admin's /find in the group shows no whole phone number either.
    resident = resident_of(city, LIN1)
    out = send(city, clock, settings, sender="9700", chat="-100500", chat_is_private=False,
               command="find", args=(resident.name,), message_id="6")
    assert resident.phone not in out[0]["text"]
    assert f"{resident.phone[:3]}****{resident.phone[-4:]}" in out[0]["text"]


def _exported(st: Settings, row: dict[str, object]) -> Path:
    assert row["kind"] == "export"
    options = row["options"]
    assert isinstance(options, dict)
    path = Path(st.media_dir) / "exported.xlsx"
    path.write_bytes(MediaStore(Path(st.media_dir)).open(str(options["document"])))
    return path


def _members(book: Path) -> list[tuple[object, ...]]:
    wb = load_workbook(book, read_only=True)
    try:
        return list(wb["members"].iter_rows(values_only=True))
    finally:
        wb.close()


def test_export_is_whole_for_a_town_admin_masked_for_a_village_one_and_never_in_a_group(
        city: Engine, clock: FakeClock, settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    _bound_group(city, clock, settings)
    resident = resident_of(city, LIN1)

    out = send(city, clock, settings, sender="9700", chat="-100500", chat_is_private=False,
               command="export", message_id="7")
    assert [r["kind"] for r in out] == ["reply"] and "私聊" in out[0]["text"]

    out = send(city, clock, settings, sender="9700", command="export")
    full = _members(_exported(settings, out[-1]))
    assert any(r[1] == resident.phone and r[4] == ADDRESS for r in full)
    assert "隐藏" not in out[-1]["text"]

    # A village admin (the 书记 also given the admin post) gets a masked roster.
    secretary = holder_of(city, "secretary", VILLAGE1)
    with city.begin() as conn:
        conn.execute(sa.text("INSERT INTO post (person_id, node_id, role) SELECT :p, id,"
                             " 'admin' FROM node WHERE code = :c"),
                     {"p": secretary.person_id, "c": VILLAGE1})
    link(city, secretary.person_id, "9702")
    out = send(city, clock, settings, sender="9702", command="export")
    assert "隐藏" in out[-1]["text"]
    masked_book = _exported(settings, out[-1])
    masked = _members(masked_book)
    assert len(masked) > 1
    assert all(r[1] is not None and "****" in str(r[1]) for r in masked[1:])
    assert not any(r[5] or r[6] or r[7] for r in masked[1:])  # no chat accounts
    row = next(r for r in masked if r[0] == resident.name)
    assert row[4] == "幸福路**号***"

    # Imported back over the real data, it is refused row by row and changes nothing.
    before = dump(city)
    with pytest.raises(ImportRejected) as err:
        import_files(city, [masked_book])
    assert "members]:2: phone '" in err.value.report()
    assert "is masked" in err.value.report()
    assert dump(city) == before


def test_export_files_masked_hides_addresses_and_a_full_export_still_round_trips(
        city: Engine, tmp_path: Path) -> None:  # noqa: F811
    with city.begin() as conn:
        conn.execute(sa.text("UPDATE post SET address = :a WHERE role = 'resident'"),
                     {"a": ADDRESS})
    report = export_files(city, tmp_path / "masked", root_code=VILLAGE1, masked=True)
    assert report.masked
    text = (tmp_path / "masked" / "members.csv").read_text(encoding="utf-8")
    assert ADDRESS not in text and "幸福路**号***" in text
    # A phone fixed by hand next to a masked address is refused too: the address would be lost.
    lines = text.splitlines()
    resident_line = next(n for n, line in enumerate(lines) if "幸福路" in line)
    cells = lines[resident_line].split(",")
    cells[1] = "13912345678"
    lines[resident_line] = ",".join(cells)
    (tmp_path / "masked" / "members.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as err:
        import_files(city, [tmp_path / "masked" / "members.csv"])
    assert f"members.csv:{resident_line + 1}: address '幸福路**号***' is masked" in (
        err.value.report())

    export_files(city, tmp_path / "full", root_code=VILLAGE1)
    before = dump(city)
    import_files(city, sorted((tmp_path / "full").glob("*.csv")))
    assert dump(city) == before
