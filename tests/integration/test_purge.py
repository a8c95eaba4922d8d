"""`linzhang purge`: old finished cases lose their words, places and files, keep their figures;
open and recent cases and the event log's other columns are untouched, on both engines."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import inbound
from core.cases import actions, closing, stats
from core.cases.model import ATTACHMENTS, EVENTS
from core.clock import FakeClock
from core.conversations import PendingReport, set_state
from core.db import session_scope
from core.errors import InvalidInput
from core.hierarchy.queries import node_by_id
from core.media.store import MediaStore
from core.privacy import PLACEHOLDER
from core.purge import parse_age, purge
from tests.casehelpers import do, get, open_case
from tests.cityfactory import City, build_city

DAY = timedelta(days=1)
SECRET = "住在幸福路12号，电话13812345678"
REPO = Path(__file__).resolve().parents[2]


def _step(engine: Engine, clock: FakeClock, fn: Any, case_id: int, who: int, **kw: Any) -> None:
    do(engine, fn, clock=clock, case_id=case_id, person_id=who,
       version=get(engine, case_id).version, **kw)


def _attach(engine: Engine, case_id: int, store: MediaStore, data: bytes,
            thumb: bytes | None = None) -> str:
    """A stored photo with a GPS point, as the fetch job leaves it."""
    ref = store.put(data, ".jpg")
    thumb_ref = store.put(thumb, ".jpg") if thumb else None
    with engine.begin() as conn:
        conn.execute(sa.insert(ATTACHMENTS).values(
            case_id=case_id, kind="photo", purpose="report", platform="telegram",
            file_ref="AgAD-file-id", caption=SECRET, latitude=33.8, longitude=115.7,
            exif_latitude=33.81, exif_longitude=115.71, created_at=datetime.now(UTC),
            fetch_status="stored", stored_ref=ref, thumb_ref=thumb_ref))
    return ref


def _story(engine: Engine, clock: FakeClock, city: City, store: MediaStore) -> dict[str, int]:
    """Cases in every final state 400 days ago, one still open, one closed yesterday."""
    leader, resident = city["leader1"], city["resident1"]
    ids = {k: open_case(engine, clock, city, text=f"{k}：{SECRET}")
           for k in ("closed", "rejected", "merged", "open_old")}
    _step(engine, clock, actions.accept, ids["closed"], leader)
    _step(engine, clock, actions.reply, ids["closed"], leader, text="明天上门，" + SECRET)
    _step(engine, clock, actions.resolve, ids["closed"], leader, note="已修好")
    _step(engine, clock, closing.confirm, ids["closed"], resident, rating=4, comment=SECRET)
    _step(engine, clock, actions.reject, ids["rejected"], leader, reason="重复：" + SECRET)
    _step(engine, clock, actions.merge, ids["merged"], leader, into_case_id=ids["open_old"])
    _attach(engine, ids["closed"], store, b"old photo", thumb=b"old thumb")
    _attach(engine, ids["closed"], store, b"shared photo")
    with session_scope(engine) as s:
        inbound.record(s, platform="telegram", update_id="1",
                       payload={"message": {"text": SECRET}}, now=clock.now())
        s.add(PendingReport(platform="telegram", sender_id="77", chat_id="77",
                            payload={"text": SECRET}, received_at=clock.now()))
        set_state(s, platform="telegram", chat_id="5", user_id="5", state="await_reply",
                  data={"case_id": ids["open_old"], "version": 1}, now=clock.now())
    clock.advance(400 * DAY)
    ids["recent"] = open_case(engine, clock, city, text=f"recent：{SECRET}")
    _attach(engine, ids["recent"], store, b"shared photo")
    _step(engine, clock, actions.reject, ids["recent"], leader, reason="不在范围")
    with session_scope(engine) as s:
        inbound.record(s, platform="telegram", update_id="2",
                       payload={"message": {"text": SECRET}}, now=clock.now())
    clock.advance(DAY)
    return ids


def _figures(engine: Engine, city: City) -> stats.Figures:
    with Session(engine) as s:
        return stats.figures(s, node=node_by_id(s, city.nodes["district"]),
                             start=datetime(2000, 1, 1, tzinfo=UTC),
                             end=datetime(2100, 1, 1, tzinfo=UTC))


def _case(engine: Engine, case_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM cases WHERE id = :i"), {"i": case_id})
        return dict(row.mappings().one())


def _events(engine: Engine, case_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(EVENTS).where(EVENTS.c.case_id == case_id)
                            .order_by(EVENTS.c.id))
        return [dict(r) for r in rows.mappings()]


def test_purge_anonymises_old_finished_cases_and_keeps_the_figures(
        engine: Engine, clock: FakeClock, tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media")
    city = build_city(engine)
    ids = _story(engine, clock, city, store)
    figures = _figures(engine, city)
    kept = {k: _case(engine, i) for k, i in ids.items()}
    events_before = {k: _events(engine, i) for k, i in ids.items()}
    files = sorted(p for p in (tmp_path / "media").rglob("*.jpg"))
    assert len(files) == 3

    dry = purge(engine, now=clock.now(), older_than=parse_age("365d"), media=store,
                dry_run=True)
    assert (dry.cases, dry.attachments, dry.files, dry.pending_reports, dry.conversations,
            dry.inbound) == (3, 2, 2, 1, 1, 1)
    assert {k: _case(engine, i) for k, i in ids.items()} == kept  # a dry run changes nothing
    assert sorted((tmp_path / "media").rglob("*.jpg")) == files

    report = purge(engine, now=clock.now(), older_than=parse_age("52w"), media=store)
    assert (report.cases, report.attachments, report.files) == (3, 2, 2)
    assert report.events >= 6 and report.outbox > 0

    for key in ("closed", "rejected", "merged"):
        after, before = _case(engine, ids[key]), kept[key]
        assert after["text"] == PLACEHOLDER
        changed = {c for c in after if after[c] != before[c]}
        assert changed <= {"text", "rating_comment", "reject_reason"}, changed
        events = _events(engine, ids[key])
        assert events[-1]["kind"] == "purged" and events[-1]["via"] == "purge"
        for old, new in zip(events_before[key], events[:-1], strict=True):
            assert new["note"] == (None if old["note"] is None else PLACEHOLDER)
            assert {c: v for c, v in new.items() if c != "note"} == {
                c: v for c, v in old.items() if c != "note"}
    assert _case(engine, ids["closed"])["rating"] == 4
    assert _case(engine, ids["closed"])["rating_comment"] == PLACEHOLDER
    assert _case(engine, ids["rejected"])["reject_reason"] == PLACEHOLDER
    # Open and recent cases are untouched, words and events alike.
    for key in ("open_old", "recent"):
        assert _case(engine, ids[key]) == kept[key]
        assert _events(engine, ids[key]) == events_before[key]
    assert _figures(engine, city) == figures

    with engine.connect() as conn:
        atts = conn.execute(sa.select(ATTACHMENTS).order_by(ATTACHMENTS.c.id)).mappings().all()
        purged = [a for a in atts if a["case_id"] == ids["closed"]]
        assert all(a["fetch_status"] == "purged" and a["stored_ref"] is None
                   and a["thumb_ref"] is None and a["file_ref"] is None
                   and a["latitude"] is None and a["exif_longitude"] is None
                   and a["caption"] == PLACEHOLDER for a in purged)
        recent = next(a for a in atts if a["case_id"] == ids["recent"])
        assert recent["fetch_status"] == "stored" and recent["caption"] == SECRET
        leftovers = conn.execute(sa.text(
            "SELECT text FROM outbox WHERE case_id IN (:a, :b, :c)"),
            {"a": ids["closed"], "b": ids["rejected"], "c": ids["merged"]}).scalars().all()
        assert leftovers and all(SECRET not in t and "13812345678" not in t for t in leftovers)
        payloads: dict[str, Any] = dict(conn.execute(sa.text(
            "SELECT update_id, payload FROM inbound_update")).all())
        assert "13812345678" not in str(payloads["1"]) and "13812345678" in str(payloads["2"])
        assert conn.execute(sa.text("SELECT count(*) FROM pending_report")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM conversation")).scalar_one() == 0
    # The old photo and thumbnail are gone from disk; the photo a recent case shares stays.
    remaining = sorted((tmp_path / "media").rglob("*.jpg"))
    assert remaining == [store.path(recent["stored_ref"])]

    # A second run finds nothing left to do.
    again = purge(engine, now=clock.now(), older_than=timedelta(days=365), media=store)
    assert (again.cases, again.events, again.attachments, again.files, again.outbox,
            again.inbound) == (0, 0, 0, 0, 0, 0)
    assert _figures(engine, city) == figures


def test_the_event_log_allows_only_the_placeholder_update(engine: Engine,
                                                          clock: FakeClock) -> None:
    city = build_city(engine)
    case_id = open_case(engine, clock, city, text=SECRET)
    event_id = _events(engine, case_id)[0]["id"]
    refused = [
        ("UPDATE case_event SET note = 'changed' WHERE id = :i", {}),
        ("UPDATE case_event SET kind = 'accepted' WHERE id = :i", {}),
        ("UPDATE case_event SET note = :p, via = 'x' WHERE id = :i", {"p": PLACEHOLDER}),
        ("DELETE FROM case_event WHERE id = :i", {}),
    ]
    for sql, params in refused:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(sql), {"i": event_id, **params})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE case_event SET note = :p WHERE id = :i"),
                     {"p": PLACEHOLDER, "i": event_id})
    assert _events(engine, case_id)[0]["note"] == PLACEHOLDER


@pytest.mark.parametrize(("text", "days"), [("365d", 365), ("90d", 90), ("52w", 364),
                                            ("1w3d", 10), (" 30D ", 30)])
def test_ages(text: str, days: int) -> None:
    assert parse_age(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "365", "1y", "12h", "0d", "-5d", "d", "3d extra"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_age(text)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LINZHANG"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'city.db'}", MEDIA_DIR=str(tmp_path / "m"),
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "linzhang", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_line(tmp_path: Path) -> None:
    r = _cli(tmp_path, "purge", "--older-than", "1y")
    assert r.returncode == 2
    assert "linzhang purge: not an age: '1y'" in r.stderr and "365d" in r.stderr
    r = _cli(tmp_path, "purge", "--older-than", "90d", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("would anonymise (ended before ") and "cases 0" in r.stdout
    r = _cli(tmp_path, "purge", "--older-than", "52w")
    assert r.returncode == 0 and r.stdout.startswith("anonymised ")
    r = _cli(tmp_path, "export", "--masked", "--out", "masked")
    assert r.returncode == 0 and (tmp_path / "masked" / "members.csv").is_file()
