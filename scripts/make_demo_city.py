"""Write core/demo/: the small demo city (one town, two communities, one vacancy) as CSV, and
synthetic boundaries for its map (each node's box split among its children, edges wavy but
shared exactly between neighbours). `OUT` may be given as the first argument."""

import csv
import hashlib
import json
import sys
from pathlib import Path

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else (
    Path(__file__).resolve().parents[1] / "core" / "demo")
SURN = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
         "娟", "涛", "明", "超", "兰", "霞", "平", "刚", "桂英", "华", "建国", "志红", "玉兰"]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    nodes = [("341602", "", "district", "谯城区"),
             ("341602001", "341602", "town", "花戏楼街道"),
             ("341602001D01", "341602001", "department", "城市管理中队"),
             ("341602001D02", "341602001", "department", "花戏楼派出所"),
             ("341602001D06", "341602001", "department", "应急管理办公室")]
    members = []
    n = 0

    def person(role: str, code: str, address: str = "", phone: str | None = None) -> str:
        nonlocal n
        if phone is not None:
            name = next(m[0] for m in members if m[1] == phone)
            members.append((name, phone, role, code, address))
            return phone
        n += 1
        name = SURN[n % len(SURN)] + GIVEN[(n * 7) % len(GIVEN)]
        ph = f"1390000{n:04d}"
        members.append((name, ph, role, code, address))
        return ph

    person("admin", "341602")
    person("admin", "341602001")
    for dep in ("341602001D01", "341602001D02", "341602001D06"):
        person("department", dep)
    for v, vname in ((1, "幸福社区"), (2, "和谐社区")):
        vc = f"341602001{v:03d}"
        nodes.append((vc, "341602001", "village", vname))
        person("secretary", vc)
        for a in (1, 2):
            ac = f"{vc}{a:02d}"
            nodes.append((ac, vc, "area", f"{vname}第{a}片"))
            person("area_leader", ac)
            for g in (1, 2):
                gc = f"{ac}{g:02d}"
                nodes.append((gc, ac, "group", f"{vname}{a}片{g}组"))
                person("group_leader", gc)
                for lin in (1, 2):
                    lc = f"{gc}{lin:03d}"
                    building = (a - 1) * 4 + (g - 1) * 2 + lin
                    nodes.append((lc, gc, "neighborhood", f"{vname}{building}号楼"))
                    if (v, a, g, lin) == (2, 2, 2, 2):
                        pass  # the vacancy: this 邻 has no 邻长 yet
                    elif (v, a, g, lin) == (1, 1, 1, 1):
                        # The demo's first 邻长 is a person of her own, so the five panes of
                        # /demo (resident, 邻长, 组长, 书记, town admin) are five people.
                        members.append(("王芳", "13900000082", "neighbor_leader", lc, ""))
                    else:
                        person("neighbor_leader", lc)
                    for r in (1, 2, 3):
                        person("resident", lc, f"{vname}{building}号楼{r}0{r}室")
    with (OUT / "nodes.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["code", "parent_code", "level", "name"])
        w.writerows(nodes)
    with (OUT / "members.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "phone", "role", "node_code", "address", "telegram_user_id",
                    "wechat_openid", "wecom_userid"])
        w.writerows((*m, "", "", "") for m in members)
    cats = [("安全隐患", "D06"), ("突发事件", "D02"), ("疫情防控", ""), ("环境保护", "D01"),
            ("无证无照经营", "D01"), ("纠纷调处", ""), ("社会保障", ""), ("村（居）民事务", ""),
            ("社会治安", "D02"), ("公共设施", "D01"), ("其他", "")]
    with (OUT / "categories.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["category", "department_suffix"])
        w.writerows(cats)
    write_boundaries(nodes)


def _noise(a: float, b: float) -> float:
    return hashlib.sha1(f"{a:.6f},{b:.6f}".encode()).digest()[0] / 255 - 0.5


def _side(p: tuple[float, float], q: tuple[float, float], amp: float, k: int = 10
          ) -> list[list[float]]:
    (x0, y0), (x1, y1) = p, q
    pts = []
    for i in range(k):
        t = i / k
        x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
        if i:
            if x0 == x1:  # a vertical edge moves in x, a horizontal one in y
                x += amp * _noise(x0, y)
            else:
                y += amp * _noise(x, y0)
        pts.append([round(x, 6), round(y, 6)])
    return pts


def _poly(x0: float, y0: float, x1: float, y1: float, amp: float) -> dict[str, object]:
    c = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    ring: list[list[float]] = []
    for i in range(4):
        ring += _side(c[i], c[(i + 1) % 4], amp)
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def write_boundaries(nodes: list[tuple[str, str, str, str]]) -> None:
    kids: dict[str, list[tuple[str, str, str, str]]] = {}
    for row in nodes:
        kids.setdefault(row[1], []).append(row)
    feats: list[dict[str, object]] = []

    def place(code: str, box: tuple[float, float, float, float], depth: int) -> None:
        x0, y0, x1, y1 = box
        amp = min(x1 - x0, y1 - y0) * 0.06
        feats.append({"type": "Feature", "properties": {"code": code},
                      "geometry": _poly(x0, y0, x1, y1, amp if depth > 1 else 0)})
        ch = [k for k in kids.get(code, []) if k[2] != "department"]
        wide = (x1 - x0) >= (y1 - y0)
        for i, k in enumerate(ch):
            n = len(ch)
            if wide:
                b = (x0 + (x1 - x0) * i / n, y0, x0 + (x1 - x0) * (i + 1) / n, y1)
            else:
                b = (x0, y1 - (y1 - y0) * (i + 1) / n, x1, y1 - (y1 - y0) * i / n)
            place(k[0], b, depth + 1)

    feats.append({"type": "Feature", "properties": {"code": "341602"},
                  "geometry": _poly(115.72, 33.82, 115.84, 33.89, 0.01)})
    place("341602001", (115.75, 33.835, 115.81, 33.875), 1)
    feats.sort(key=lambda f: f["properties"]["code"])  # type: ignore[index]
    with (OUT / "boundaries.geojson").open("w", encoding="utf-8") as f:
        f.write('{"type":"FeatureCollection","features":[\n')
        f.write(",\n".join(json.dumps(x, separators=(",", ":")) for x in feats))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
