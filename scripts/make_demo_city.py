"""Write core/demo/*.csv: the small demo city (one town, two communities, one vacancy)."""

import csv
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "core" / "demo"
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
                group_leader = person("group_leader", gc)
                for lin in (1, 2):
                    lc = f"{gc}{lin:03d}"
                    building = (a - 1) * 4 + (g - 1) * 2 + lin
                    nodes.append((lc, gc, "neighborhood", f"{vname}{building}号楼"))
                    if (v, a, g, lin) == (2, 2, 2, 2):
                        pass  # the vacancy: this 邻 has no 邻长 yet
                    elif (v, a, g, lin) == (1, 1, 1, 1):
                        person("neighbor_leader", lc, phone=group_leader)  # 组长 who is also 邻长
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


if __name__ == "__main__":
    main()
