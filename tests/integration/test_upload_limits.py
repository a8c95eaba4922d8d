"""Spreadsheets that try to exhaust the server or crash the importer: zip bombs, sheets that
declare millions of rows and columns, NUL bytes, fields over the csv module's 128 KiB. Through
`linzhang import` (a real process) and a Telegram admin's /import (the real adapter and flow,
files served by the fake Bot API), on SQLite and PostgreSQL. Each is refused as
`file:row: reason`, nothing stored changes, and the process's memory stays small."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from bot.handlers.telegram.inbound import handle_body
from core.clock import FakeClock
from core.container import Container, build_container
from core.settings import Settings
from tests.citydata import MEMBER_HEADER, dump, write_xlsx
from tests.fakes.telegram_api import FakeTelegram
from tests.support.demo_city import LIN1, TOWN, holder_of, load_demo

REPO = Path(__file__).resolve().parents[2]
MiB = 2**20
BOMB_BYTES = 768 * MiB  # ~780 KiB compressed, as the 797 KiB file of the report
ADMIN_TG = 43
SHEET = "xl/worksheets/sheet1.xml"
NS = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def rebuilt(path: Path, sheet_parts: list[bytes], *, repeat: bytes = b"", times: int = 0,
            tail: bytes = b"") -> Path:
    """A real one-sheet workbook whose sheet XML is replaced by head + repeat * times + tail,
    written through the deflater chunk by chunk: the inflated data never exists anywhere."""
    buf = io.BytesIO()
    write_xlsx(path, {"members": (MEMBER_HEADER, [])})
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED,
                                                       compresslevel=9) as out:
        for info in src.infolist():
            if info.filename != SHEET:
                out.writestr(info.filename, src.read(info.filename))
        with out.open(SHEET, "w") as f:
            for part in sheet_parts:
                f.write(part)
            per_chunk = max(1, MiB // max(len(repeat), 1))
            chunk, left = repeat * per_chunk, times
            while left > 0:
                f.write(chunk if left >= per_chunk else repeat * left)
                left -= per_chunk
            f.write(tail)
    path.write_bytes(buf.getvalue())
    return path


def header_row() -> bytes:
    cells = "".join(f'<c r="{chr(65 + i)}1" t="inlineStr"><is><t>{h}</t></is></c>'
                    for i, h in enumerate(MEMBER_HEADER))
    return f'<row r="1">{cells}</row>'.encode()


def bomb(path: Path, size: int = BOMB_BYTES) -> Path:
    """One cell whose text is `size` bytes of 'A': openpyxl holds a cell's text whole."""
    return rebuilt(path, [NS, b"<sheetData>", header_row(),
                          b'<row r="2"><c r="A2" t="inlineStr"><is><t>'],
                   repeat=b"A", times=size, tail=b"</t></is></c></row></sheetData></worksheet>")


@pytest.fixture(scope="module")
def bomb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bomb(tmp_path_factory.mktemp("bomb") / "bomb.xlsx")


def lying(path: Path) -> Path:
    """A bomb whose central directory claims each part unpacks to 1 KiB."""
    bomb(path, 64 * MiB)
    data = bytearray(path.read_bytes())
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:
        name_len = int.from_bytes(data[at + 28:at + 30], "little")
        if data[at + 46:at + 46 + name_len] == SHEET.encode():
            data[at + 24:at + 28] = (1024).to_bytes(4, "little")
        at += 4
    path.write_bytes(bytes(data))
    return path


def wide(path: Path) -> Path:
    """A few bytes that declare the whole of Excel's grid: 16,384 columns."""
    return rebuilt(path, [NS, b'<dimension ref="A1:XFD1048576"/><sheetData>', header_row(),
                          b"</sheetData></worksheet>"])


def far_row(path: Path) -> Path:
    """No dimension, one row numbered past the row limit: openpyxl fills the gap row by row."""
    return rebuilt(path, [NS, b"<sheetData>", header_row(),
                          b'<row r="2000001"><c r="A2000001" t="inlineStr"><is><t>x</t></is>'
                          b"</c></row></sheetData></worksheet>"])


def many_parts(path: Path) -> Path:
    write_xlsx(path, {"members": (MEMBER_HEADER, [])})
    with zipfile.ZipFile(path, "a") as z:
        for i in range(1001):
            z.writestr(f"xl/media/x{i}.bin", b"")
    return path


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --- the command line -------------------------------------------------------------------------

# Linux carries a parent's memory high-water mark into a child it forks (and the child keeps
# it across exec), so a child forked straight from a big pytest worker would report the
# worker's size. A small launcher process in between gives `linzhang` a clean count of its own.
_LAUNCHER = """
import os, resource, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "linzhang", *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def linzhang(cwd: Path, db_url: str, *args: str) -> tuple[int, str, int]:
    """Run `linzhang`; (exit code, stderr, the process's own peak RSS in KiB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LINZHANG"))}
    env["DATABASE_URL"] = db_url
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    peak = cwd / "peak-rss.txt"
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        p = subprocess.run([sys.executable, "-c", _LAUNCHER, str(peak), *args], cwd=cwd,
                           env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True,
                           timeout=120, check=False)
        errors.seek(0)
        return p.returncode, errors.read(), int(peak.read_text())


def test_cli_refuses_a_zip_bomb_before_inflating_it(engine: Engine, db_url: str,
                                                    bomb_file: Path, tmp_path: Path) -> None:
    load_demo(engine)
    before = dump(engine)
    assert bomb_file.stat().st_size < 1 * MiB
    code, err, rss = linzhang(tmp_path, db_url, "import", str(bomb_file))
    assert code == 1, err
    assert f"bomb.xlsx:0: part {SHEET} unpacks to 768 MiB, more than the 128 MiB allowed" in err
    assert "Traceback" not in err
    assert rss < 400 * 1024, f"linzhang import peaked at {rss // 1024} MiB"
    assert dump(engine) == before


@pytest.mark.parametrize(("build", "reason"), [
    # zipfile stops at the declared size and the CRC then fails: refused, nothing inflated.
    (lying, "not a readable XLSX workbook (Bad CRC-32"),
    (wide, "the sheet declares 16384 columns, more than the 100 allowed"),
    (far_row, "the sheet has more than 1048576 rows"),
    (many_parts, "parts, more than the 1000 a spreadsheet needs"),
])
def test_cli_refuses_workbooks_over_the_limits(sqlite_engine: Engine, tmp_path: Path,
                                               build: Any, reason: str) -> None:
    load_demo(sqlite_engine)
    before = dump(sqlite_engine)
    path = build(tmp_path / "members.xlsx")
    code, err, _ = linzhang(tmp_path, str(sqlite_engine.url), "import", str(path))
    assert code == 1 and reason in err and err.startswith("members.xlsx:"), err
    assert "Traceback" not in err
    assert dump(sqlite_engine) == before


def nul_and_long_rows(folder: Path) -> Path:
    """Row 2 good, row 3 with a NUL in the name, row 4 with a 200 KiB address."""
    path = folder / "members.csv"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(
        ",".join(MEMBER_HEADER) + "\n"
        f"新居民,13811112222,resident,{LIN1},,,,\n"
        f"王\x00五,13811113333,resident,{LIN1},,,,\n"
        f"李四,13811114444,resident,{LIN1},{'长' * 200_000},,,\n", encoding="utf-8")
    return path


def test_cli_reports_nul_bytes_and_long_fields_by_row(engine: Engine, db_url: str,
                                                      tmp_path: Path) -> None:
    load_demo(engine)
    before = dump(engine)
    code, err, _ = linzhang(tmp_path, db_url, "import", str(nul_and_long_rows(tmp_path / "in")))
    assert code == 1, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("members.csv:3: the row holds a NUL character"), err
    assert lines[1].startswith("members.csv:4: a cell is too long to read"), err
    assert "Traceback" not in err
    assert dump(engine) == before


# --- chat /import -----------------------------------------------------------------------------

@pytest.fixture
def chat(engine: Engine, tmp_path: Path,
         clock: FakeClock) -> Iterator[tuple[Container, FakeTelegram]]:
    load_demo(engine)
    admin = holder_of(engine, "admin", TOWN)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :e, false)"),
                     {"p": admin.person_id, "e": str(ADMIN_TG)})
    with FakeTelegram() as tg:
        yield build_container(settings(engine, tmp_path, tg), clock=clock, engine=engine), tg


def settings(engine: Engine, tmp_path: Path, tg: FakeTelegram, **kw: Any) -> Settings:
    return Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                    media_dir=str(tmp_path / "media"), telegram_bot_token=SecretStr(tg.token),
                    telegram_api_base=tg.base_url, **kw)


_update = iter(range(1000, 10**6))


def send_file(c: Container, tg: FakeTelegram, name: str, data: bytes) -> list[str]:
    """The admin sends a file with the caption /import; the bot's replies."""
    uid = next(_update)
    tg.add_file(f"F{uid}", data, file_path=f"documents/{name}")
    handle_body(c, json.dumps({"update_id": uid, "message": {
        "message_id": uid, "date": 1_700_000_000, "caption": "/import",
        "chat": {"id": ADMIN_TG, "type": "private"},
        "from": {"id": ADMIN_TG, "is_bot": False, "first_name": "管理员"},
        "document": {"file_id": f"F{uid}", "file_unique_id": f"u{uid}", "file_name": name,
                     "mime_type": "application/vnd.openxmlformats-officedocument."
                                  "spreadsheetml.sheet" if name.endswith("xlsx")
                                  else "text/csv", "file_size": len(data)}}}).encode())
    with c.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT text FROM outbox WHERE dedupe_key LIKE :k"
                                         " ORDER BY id"), {"k": f"in:telegram:{uid}:%"}).scalars())


def test_chat_import_refuses_a_zip_bomb_politely(chat: tuple[Container, FakeTelegram],
                                                 bomb_file: Path) -> None:
    c, tg = chat
    before, rss = dump(c.engine), peak_rss_kib()
    got = send_file(c, tg, "bomb.xlsx", bomb_file.read_bytes())
    assert len(got) == 1 and got[0].startswith("导入失败"), got
    assert "bomb.xlsx:0: part xl/worksheets/sheet1.xml unpacks to 768 MiB" in got[0]
    assert peak_rss_kib() - rss < 200 * 1024
    assert dump(c.engine) == before


def test_a_costly_workbook_is_read_in_a_capped_worker_not_the_server(
        engine: Engine, tmp_path: Path, clock: FakeClock, bomb_file: Path) -> None:
    """With the archive limits lifted, the bomb reaches openpyxl, in the child process: it runs
    out of its memory cap and the server's stays where it was."""
    load_demo(engine)
    admin = holder_of(engine, "admin", TOWN)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :e, false)"),
                     {"p": admin.person_id, "e": str(ADMIN_TG)})
    with FakeTelegram() as tg:
        st = settings(engine, tmp_path, tg, xlsx_max_unpacked_bytes=2**40,
                      xlsx_max_entry_bytes=2**40, xlsx_max_ratio=10**6,
                      import_worker_memory_bytes=512 * MiB)
        c = build_container(st, clock=clock, engine=engine)
        before, rss = dump(engine), peak_rss_kib()
        got = send_file(c, tg, "bomb.xlsx", bomb_file.read_bytes())
    assert len(got) == 1 and got[0].startswith("导入失败"), got
    assert "bomb.xlsx:0: the workbook needs more memory or time to read than allowed" in got[0]
    assert peak_rss_kib() - rss < 200 * 1024
    assert dump(engine) == before


def test_chat_import_reports_nul_bytes_and_long_fields_by_row(
        chat: tuple[Container, FakeTelegram], tmp_path: Path) -> None:
    c, tg = chat
    before = dump(c.engine)
    got = send_file(c, tg, "members.csv", nul_and_long_rows(tmp_path / "in").read_bytes())
    assert len(got) == 1 and got[0].startswith("导入失败"), got
    assert "members.csv:3: the row holds a NUL character" in got[0]
    assert "members.csv:4: a cell is too long to read" in got[0]
    assert dump(c.engine) == before


def test_other_residents_are_answered_while_a_costly_workbook_is_read(
        sqlite_engine: Engine, tmp_path: Path, clock: FakeClock) -> None:
    """Over real HTTP on SQLite (one writer): the workbook is read in the child before the
    update's transaction opens, so another person's message is handled meanwhile. (Its own
    bomb: the verdict on the shared one is remembered from the test above.)"""
    import multiprocessing

    from tests.support.poll import poll
    from tests.support.server import serve
    from webhooks.app import create_app

    engine = sqlite_engine
    bomb_file = bomb(tmp_path / "bomb.xlsx", 700 * MiB)
    load_demo(engine)
    admin = holder_of(engine, "admin", TOWN)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :e, false)"),
                     {"p": admin.person_id, "e": str(ADMIN_TG)})
    with FakeTelegram() as tg:
        st = settings(engine, tmp_path, tg, xlsx_max_unpacked_bytes=2**40,
                      xlsx_max_entry_bytes=2**40, xlsx_max_ratio=10**6,
                      import_worker_memory_bytes=512 * MiB,
                      telegram_webhook_secret=SecretStr("s3cret"))
        c = build_container(st, clock=clock, engine=engine)
        tg.add_file("BOMB", bomb_file.read_bytes(), file_path="documents/bomb.xlsx")
        head = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}

        def update(uid: int, sender: int, **fields: Any) -> dict[str, Any]:
            return {"update_id": uid, "message": {
                "message_id": uid, "date": 1_700_000_000, "chat": {"id": sender, "type":
                                                                   "private"},
                "from": {"id": sender, "is_bot": False, "first_name": "王"}, **fields}}

        with serve(create_app(st, clock=clock, container=c, run_jobs=False)) as url:
            done: list[int] = []

            def import_bomb() -> None:
                with httpx.Client(base_url=url, timeout=300) as client:
                    done.append(client.post("/webhooks/telegram", headers=head, json=update(
                        1, ADMIN_TG, caption="/import", document={
                            "file_id": "BOMB", "file_unique_id": "b", "file_name": "bomb.xlsx",
                            "file_size": bomb_file.stat().st_size})).status_code)

            admin_thread = threading.Thread(target=import_bomb)
            admin_thread.start()
            try:
                poll(multiprocessing.active_children, timeout=60, what="the reader process")
                with httpx.Client(base_url=url, timeout=60) as client:
                    r = client.post("/webhooks/telegram", headers=head,
                                    json=update(2, 5001, text="楼道灯坏了三天了"))
                assert r.status_code == 200
                assert not done, "the other message waited for the workbook"
            finally:
                admin_thread.join(300)
    assert done == [200]
    with engine.connect() as conn:
        texts = list(conn.execute(sa.text("SELECT dedupe_key, text FROM outbox")))
    assert any(k.startswith("in:telegram:2:") for k, _ in texts)
    assert any(k.startswith("in:telegram:1:") and "needs more memory" in t for k, t in texts)


def test_a_workbook_no_adapter_checked_is_read_in_the_worker_by_the_flow(
        chat: tuple[Container, FakeTelegram], tmp_path: Path) -> None:
    """A platform that hands the flow a stored file without the adapter's precheck: the flow
    reads it in the capped worker itself, and a good workbook imports."""
    from bot.dispatch import process
    from bot.flows.types import Inbound, Media
    from core.media.store import MediaStore

    c, _ = chat
    good = write_xlsx(tmp_path / "new.xlsx", {"members": (MEMBER_HEADER, [
        ["新居民", "13811112222", "resident", LIN1, "3号楼", "", "", ""]])})
    ref = MediaStore(Path(c.settings.media_dir)).put(good.read_bytes(), "xlsx")
    inbound = Inbound(platform="telegram", update_id="flow-1", chat_id=str(ADMIN_TG),
                      sender_id=str(ADMIN_TG), received_at=c.clock.now(), command="import",
                      media=(Media(kind="document", file_unique_id="new", stored_ref=ref,
                                   mime="application/vnd.openxmlformats-officedocument."
                                        "spreadsheetml.sheet"),))
    assert process(c.engine, inbound=inbound, payload={}, clock=c.clock, settings=c.settings)
    with c.engine.connect() as conn:
        said = list(conn.execute(sa.text("SELECT text FROM outbox WHERE dedupe_key LIKE"
                                         " 'in:telegram:flow-1:%'")).scalars())
        added = conn.execute(sa.text("SELECT count(*) FROM person WHERE phone = '13811112222'"
                                     )).scalar_one()
    assert len(said) == 1 and said[0].startswith("导入成功"), said
    assert added == 1

    # And through the adapter (precheck first), a good workbook still imports.
    other = write_xlsx(tmp_path / "more.xlsx", {"members": (MEMBER_HEADER, [
        ["又一位", "13811113333", "resident", LIN1, "4号楼", "", "", ""]])})
    got = send_file(c, chat[1], "more.xlsx", other.read_bytes())
    assert len(got) == 1 and got[0].startswith("导入成功"), got


def test_only_an_admins_spreadsheet_is_read_before_the_update_is_handled(
        chat: tuple[Container, FakeTelegram]) -> None:
    """Anyone may send a document, but only an admin's /import reads it at once (in the capped
    worker); a stranger's file waits for the background fetcher like any attachment, so nobody
    else can keep the one worker slot busy."""
    c, tg = chat
    uid = next(_update)
    tg.add_file(f"F{uid}", b"name,phone\n", file_path="documents/members.csv")
    handle_body(c, json.dumps({"update_id": uid, "message": {
        "message_id": uid, "date": 1_700_000_000, "caption": "/import",
        "chat": {"id": 555001, "type": "private"},
        "from": {"id": 555001, "is_bot": False, "first_name": "路人"},
        "document": {"file_id": f"F{uid}", "file_unique_id": f"u{uid}",
                     "file_name": "members.csv", "mime_type": "text/csv",
                     "file_size": 11}}}).encode())
    assert tg.requests("getFile") == 0
    send_file(c, tg, "members.csv", b"name,phone\n")
    assert tg.requests("getFile") == 1
