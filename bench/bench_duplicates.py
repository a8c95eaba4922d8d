"""Duplicate suggestion at Bozhou scale: how long "是不是这件事？" takes for a new report.

    python bench/bench_duplicates.py [--cases 1000000] [--open-share 0.05] [--probes 500]

Loads N cases (SQLite, bulk SQL) over 1,000 组 of one neighborhood each, `open-share` of them
still open, each with words from a list of everyday problems and a place within ~300 m of its
组's centre. Then, for `probes` new reports (one per random 组, similar words or not, with a
place), times core.cases.duplicates.candidates() — the same 组's open cases through the
(state, node_path) index plus the 3×3 geo cells through (geo_cell, state), jieba + rapidfuzz.
Baseline in the same run: a full scan of the cases table for the 组's open cases (SQLite
NOT INDEXED), each scored the same way — what the lookup costs without its indexes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.bench_deadlines import COLS, build_city  # noqa: E402
from core.cases import duplicates  # noqa: E402
from core.cases.policy import CasePolicy  # noqa: E402
from core.db import make_engine, migrate  # noqa: E402
from core.hierarchy.tree import subtree_bounds  # noqa: E402

PROBLEMS = ["楼道里堆满杂物", "门口路灯坏了晚上很黑", "垃圾好几天没人清理", "下水道堵塞污水漫出来",
            "小区里有人占道摆摊", "楼上漏水到楼下", "广场舞噪音太大", "电动车在楼道充电",
            "路面有个大坑", "井盖松动很危险", "健身器材坏了", "野狗很多吓到小孩",
            "停车乱占消防通道", "排水沟有臭味", "树枝快断了掉下来", "墙上有小广告"]
PLACES = ["3号楼", "5号楼", "东门", "西门", "菜市场旁", "幼儿园门口", "2单元", "村委会前"]
BOZHOU = (33.87, 115.78)


def text(rng: random.Random) -> str:
    return f"{rng.choice(PLACES)}{rng.choice(PROBLEMS)}"


def centre(g: int) -> tuple[float, float]:
    # 1,000 组 on a 32×32 grid, 2 km apart.
    return BOZHOU[0] + (g // 32) * 0.018, BOZHOU[1] + (g % 32) * 0.022


def near(rng: random.Random, c: tuple[float, float], metres: float) -> tuple[float, float]:
    d, a = metres * math.sqrt(rng.random()), rng.random() * 2 * math.pi
    return (c[0] + d * math.cos(a) / 111_000,
            c[1] + d * math.sin(a) / (111_000 * math.cos(math.radians(c[0]))))


def load(engine: sa.Engine, homes: list, n: int, open_share: float, rng: random.Random) -> float:
    cols = [*COLS, "latitude", "longitude", "geo_cell", "closed_at"]
    pj = json.dumps(CasePolicy().to_json())
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    now = datetime.now(UTC)
    t = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        sql = f"INSERT INTO cases ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        cur.execute("BEGIN")
        chunk: list[tuple] = []
        for i in range(n):
            g = i % len(homes)
            nb, resident, leader, _, path = homes[g]
            lat, lon = near(rng, centre(g), 300)
            is_open = rng.random() < open_share
            opened = (now - timedelta(minutes=i % 500_000)).strftime(fmt)
            chunk.append((resident, resident, nb, path, text(rng),
                          "open" if is_open else "closed", 1, leader, "neighbor_leader", nb,
                          leader, "neighbor_leader", "reply" if is_open else None, opened,
                          None, None, 0, 0, 0, opened, opened, pj, lat, lon,
                          duplicates.geo_cell(lat, lon), None if is_open else opened))
            if len(chunk) == 50_000:
                cur.executemany(sql, chunk)
                chunk = []
        if chunk:
            cur.executemany(sql, chunk)
        cur.execute("COMMIT")
        cur.execute("INSERT INTO case_follower (case_id, person_id)"
                    " SELECT id, resident_id FROM cases WHERE state = 'open'")
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t


def full_scan(session: Session, case_id: int) -> int:
    """Baseline: every case row read to find the 组's open ones, each scored."""
    case = session.execute(sa.text("SELECT text, node_path FROM cases WHERE id = :c"),
                           {"c": case_id}).one()
    group_path = "/".join(case.node_path.rstrip("/").split("/")[:-1]) + "/"
    low, high = subtree_bounds(group_path)
    rows = session.execute(sa.text(
        "SELECT id, text FROM cases NOT INDEXED WHERE state IN ('open', 'accepted')"
        " AND node_path >= :lo AND node_path < :hi AND id != :c"),
        {"lo": low, "hi": high, "c": case_id}).all()
    return sum(1 for r in rows
               if duplicates.similarity(case.text, r.text) >= duplicates.SAME_GROUP_SCORE)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--open-share", type=float, default=0.05)
    ap.add_argument("--probes", type=int, default=500)
    args = ap.parse_args()
    rng = random.Random(15)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'dupes.db'}")
        migrate(engine)
        homes = build_city(engine)
        s = load(engine, homes, args.cases, args.open_share, rng)
        with engine.connect() as conn:
            n_open = conn.execute(sa.text(
                "SELECT count(*) FROM cases WHERE state = 'open'")).scalar_one()
        print(f"loaded {args.cases:,} cases ({n_open:,} open, ~{n_open // len(homes)} per 组)"
              f" in {s:.1f}s", flush=True)
        duplicates.similarity("预热", "jieba 词典")  # load jieba's dictionary once
        probes = []
        with engine.begin() as conn:
            # The newcomer reporting: a neighbour who follows none of the open cases.
            newcomer = conn.execute(sa.text(
                "INSERT INTO person (name, language) VALUES ('newcomer', 'zh') RETURNING id"
            )).scalar_one()
            for _ in range(args.probes):
                g = rng.randrange(len(homes))
                nb, _resident, _leader, _, path = homes[g]
                lat, lon = near(rng, centre(g), 300)
                cid = conn.execute(sa.text(
                    "INSERT INTO cases (resident_id, opened_by_id, home_node_id, node_path, text,"
                    " state, version, opened_at, updated_at, policy, latitude, longitude,"
                    " geo_cell, nags_sent, stage_renewals, escalations) VALUES (:r, :r, :nb, :p,"
                    " :t, 'merged', 1, :at, :at, '{}', :la, :lo, :cell, 0, 0, 0) RETURNING id"),
                    {"r": newcomer, "nb": nb, "p": path, "t": text(rng),
                     "at": datetime.now(UTC), "la": lat, "lo": lon,
                     "cell": duplicates.geo_cell(lat, lon)}).scalar_one()
                probes.append(cid)
        fast, slow, found = [], [], []
        with Session(engine) as session:
            for cid in probes:
                t = time.perf_counter()
                got = duplicates.candidates(session, case_id=cid)
                fast.append((time.perf_counter() - t) * 1000)
                found.append(len(got))
            for cid in probes[: max(20, args.probes // 10)]:
                t = time.perf_counter()
                full_scan(session, cid)
                slow.append((time.perf_counter() - t) * 1000)
        print(f"duplicate suggestion (indexed, jieba+rapidfuzz): p50 {pct(fast, 50):.2f} ms"
              f"  p99 {pct(fast, 99):.2f} ms  max {max(fast):.2f} ms  over {len(fast)} reports;"
              f" {statistics.mean(found):.1f} candidates offered on average")
        print(f"baseline full scan of the 组's open cases (NOT INDEXED): p50 {pct(slow, 50):.1f}"
              f" ms  p99 {pct(slow, 99):.1f} ms  over {len(slow)} reports")
        print(f"target: p99 < 20 ms -> {'met' if pct(fast, 99) < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
