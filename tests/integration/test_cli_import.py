"""`linzhang import` and `linzhang export` as a town office runs them: a real process, a SQLite
file named by DATABASE_URL, files in the working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.db import make_engine, migrate
from core.hierarchy.importer import import_files
from tests.citydata import (
    MEMBER_HEADER,
    NODE_HEADER,
    SMALL_MEMBERS,
    SMALL_NODES,
    VILLAGE,
    dump,
    read_csv,
    write_csv,
    write_small_city,
)

REPO = Path(__file__).resolve().parents[2]


def linzhang(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LINZHANG"))}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'city.db'}"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "linzhang", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def tables(tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'city.db'}")
    try:
        return dump(engine)
    finally:
        engine.dispose()


def set_up_city(tmp_path: Path) -> list[Path]:
    """The small city imported in-process (each CLI run costs a second of start-up)."""
    paths = write_small_city(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'city.db'}")
    try:
        migrate(engine)
        import_files(engine, paths)
    finally:
        engine.dispose()
    return paths


def test_a_good_import_prints_a_summary(tmp_path: Path) -> None:
    write_small_city(tmp_path)
    r = linzhang(tmp_path, "import", "nodes.csv", "members.csv", "categories.csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("imported: nodes +23 ~0, people +19 ~0, posts +20 ~0, "
                               "chat identities +3, categories +3 ~0 in "), r.stdout
    assert "\r" not in r.stderr  # no progress bar when stderr is not a terminal
    t = tables(tmp_path)
    assert (len(t["node"]), len(t["person"]), len(t["post"])) == (23, 19, 20)


def test_a_bad_file_exits_1_with_every_bad_row_and_changes_nothing(tmp_path: Path) -> None:
    set_up_city(tmp_path)
    before = tables(tmp_path)
    write_csv(tmp_path / "bad" / "nodes.csv", NODE_HEADER,
              [*SMALL_NODES[:3], ["3416020010099", VILLAGE, "hamlet", "坏"]])
    write_csv(tmp_path / "bad" / "members.csv", MEMBER_HEADER,
              [["新人", "1390000", "resident", SMALL_NODES[7][0], "", "", "", ""],
               *SMALL_MEMBERS[:2],
               ["新人", "13911110000", "mayor", VILLAGE, "", "", "", ""]])
    r = linzhang(tmp_path, "import", "bad/members.csv", "bad/nodes.csv")
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines == [
        "members.csv:2: malformed phone '1390000' (an 11-digit mainland mobile number)",
        "members.csv:5: unknown role 'mayor'",
        "nodes.csv:5: unknown level 'hamlet' (district, town, village, area, group, "
        "neighborhood, department or 区县/乡镇/村/片/组/邻/职能部门)",
        "linzhang import: import rejected: 3 bad row(s); nothing was changed",
    ]
    assert tables(tmp_path) == before

    # --max-errors lists fewer and says how many more there were.
    r = linzhang(tmp_path, "import", "--max-errors", "1", "bad/members.csv", "bad/nodes.csv")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[1:] == [
        "... and 2 more bad rows",
        "linzhang import: import rejected: 3 bad row(s) (and 2 more); nothing was changed"]

    # A file that is not there, or not a table at all: the same clean refusal.
    (tmp_path / "notes.csv").write_text("hello,world\n", encoding="utf-8")
    r = linzhang(tmp_path, "import", "notes.csv", "missing.csv")
    assert r.returncode == 1
    assert "notes.csv:1: cannot tell what this table is" in r.stderr
    assert "missing.csv:0: no such file" in r.stderr
    assert "Traceback" not in r.stderr
    assert tables(tmp_path) == before


def test_export_writes_the_three_files(tmp_path: Path) -> None:
    paths = set_up_city(tmp_path)
    before = tables(tmp_path)

    r = linzhang(tmp_path, "export", "--out", "out")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("exported 23 nodes, 20 members, 3 categories to ")
    for p in paths:
        header, rows = read_csv(tmp_path / "out" / p.name)
        want_header, want_rows = read_csv(p)
        if p.name.startswith("categor"):  # the export writes the optional policy columns too
            assert header[:len(want_header)] == want_header
            header, rows = want_header, [r[:len(want_header)] for r in rows]
        assert header == want_header
        assert sorted(rows) == sorted(want_rows), p.name

    r = linzhang(tmp_path, "export", "--format", "xlsx", "--root", VILLAGE, "--out", "v.xlsx")
    assert r.returncode == 0, r.stderr
    village = [n for n in SMALL_NODES if n[0].startswith(VILLAGE)]
    assert r.stdout.startswith(f"exported {len(village)} nodes, ")
    engine = make_engine(f"sqlite:///{tmp_path / 'city.db'}")
    try:  # what was exported imports back without a change
        assert import_files(engine, [tmp_path / "v.xlsx"]).changed is False
    finally:
        engine.dispose()
    assert tables(tmp_path) == before

    r = linzhang(tmp_path, "export", "--root", "000", "--out", "none")
    assert r.returncode == 2
    assert r.stderr.strip() == "linzhang export: no node with code '000'"
