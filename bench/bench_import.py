"""Bozhou-scale import into SQLite: time, peak memory, re-import, and chain lookup p99.

    python bench/bench_import.py [--scale 1.0] [--keep DIR]

Generates a city with shared/tools/gen_hierarchy.py, imports it into a fresh SQLite file in a
child process (so peak RSS is the import's own), imports it again unchanged, then times
resident → chain lookups. Baseline in the same run: a plain sqlite3 executemany load of the
same member rows into one table with no checks (the floor any importer has to pay).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT.parent / "shared" / "tools" / "gen_hierarchy.py"
if not GEN.exists():
    GEN = Path("/work/shared/tools/gen_hierarchy.py")


def child_import(db: str, files: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from core.db import make_engine, migrate
    from core.hierarchy.importer import import_files

    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    t = time.perf_counter()
    report = import_files(engine, files)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_mib": peak, "summary": report.summary(),
                      "phases": {k: round(v, 2) for k, v in report.phases.items()}}))


def run_child(db: str, files: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", db, *files], check=True, capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def baseline_load(members: str, db: str) -> float:
    t = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE m (name, phone, role, node_code, address, tg, openid, wecom)")
    with open(members, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        next(r)
        conn.executemany("INSERT INTO m VALUES (?,?,?,?,?,?,?,?)", r)
    conn.commit()
    conn.close()
    return time.perf_counter() - t


def chain_lookups(db: str, n: int) -> list[float]:
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa
    from sqlmodel import Session

    from core.db import make_engine
    from core.hierarchy.queries import chain_for_resident

    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT person_id FROM post WHERE role ="
                                                  " 'resident'"))]
    rng = random.Random(7)
    sample = [rng.choice(ids) for _ in range(n)]
    times = []
    with Session(engine) as session:
        for pid in sample[:200]:  # warm the page cache and statement cache
            chain_for_resident(session, pid)
        for pid in sample:
            t = time.perf_counter()
            chain = chain_for_resident(session, pid)
            times.append(time.perf_counter() - t)
            assert chain.steps
    return times


def count_rows(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_import(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--city", help="use an already generated city directory")
    ap.add_argument("--lookups", type=int, default=20000)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="linzhang-bench-"))
    city = Path(a.city) if a.city else work / "city"
    if not a.city:
        t = time.perf_counter()
        subprocess.run([sys.executable, str(GEN), str(city), "--scale", str(a.scale)], check=True,
                       capture_output=True)
        print(f"generated city at scale {a.scale} in {time.perf_counter() - t:.1f}s")
    files = [str(city / f) for f in ("nodes.csv", "members.csv", "categories.csv")]
    rows, nodes = count_rows(files[1]), count_rows(files[0])
    print(f"city: {nodes:,} nodes, {rows:,} member rows")

    base = baseline_load(files[1], str(work / "baseline.db"))
    db = str(work / "linzhang.db")
    first = run_child(db, files)
    again = run_child(db, files)
    times = chain_lookups(db, a.lookups)
    qs = statistics.quantiles(times, n=100)
    print()
    print("| measure | figure | target |")
    print("| --- | --- | --- |")
    print(f"| baseline: bare sqlite3 executemany of members.csv, no checks | {base:.1f} s | - |")
    print(f"| first import | {first['seconds']:.1f} s ({first['summary']}) | < 60 s |")
    print("phases, first import:", first["phases"])
    print("phases, re-import:", again["phases"])
    print(f"| first import peak RSS | {first['peak_mib']:.0f} MiB | < 1024 MiB |")
    print(f"| re-import unchanged | {again['seconds']:.1f} s ({again['summary']}) | "
          f"< first ({first['seconds']:.1f} s) |")
    print(f"| re-import peak RSS | {again['peak_mib']:.0f} MiB | < 1024 MiB |")
    print(f"| import / baseline | {float(first['seconds']) / base:.1f}x | - |")  # type: ignore[arg-type]
    print(f"| chain lookup p50 | {qs[49] * 1e3:.3f} ms | - |")
    print(f"| chain lookup p99 ({len(times):,} residents) | {qs[98] * 1e3:.3f} ms | < 1 ms |")
    print(f"database size: {os.path.getsize(db) / 2**20:.0f} MiB at {db}")


if __name__ == "__main__":
    main()
