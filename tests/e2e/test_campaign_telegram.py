"""A door-to-door campaign on Telegram, end to end: the real app in polling mode against the
fake Bot API. A 书记 starts it over the dashboard API; two 邻长 mark their households with
inline buttons, one stops halfway and resumes; a 已搬离 and a 有新增人员 reach the registry
once the 组长 confirms; the board's counts match; another 邻长's household, a closed campaign
and a deadline in the past are refused in words, with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core import accounts
from core.cases.sweep import run_sweep
from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate, write_session
from core.settings import Settings
from tests.e2e.test_telegram_story import buttons, msg, press, wait_for
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.support.demo_city import GROUP1, LIN1, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

LIN2 = GROUP1 + "002"
A_TG, B_TG, GL_TG, SEC_TG = 9001, 9003, 9002, 9400


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    who = {}
    for key, role, code, tg in (("a", "neighbor_leader", LIN1, A_TG),
                                ("b", "neighbor_leader", LIN2, B_TG),
                                ("group_leader", "group_leader", GROUP1, GL_TG),
                                ("secretary", "secretary", VILLAGE1, SEC_TG)):
        who[key] = holder_of(engine, role, code)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'telegram', :t, false)"),
                         {"p": who[key].person_id, "t": str(tg)})
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)) as base:
            yield {"tg": tg, "engine": engine, "clock": clock, "who": who, "url": base}


def signed_in(w: dict[str, Any], person_id: int) -> tuple[httpx.Client, str]:
    with write_session(w["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=person_id, now=w["clock"].now(),
                                           ttl=timedelta(minutes=15))
    client = httpx.Client(base_url=w["url"], follow_redirects=False, timeout=30)
    assert client.get(f"/login/{token}").status_code == 303
    return client, client.get("/api/me").json()["csrf_token"]


def last_with(tg: FakeTelegram, chat: int, words: str, after: int = 0) -> SentMessage:
    """The newest message to `chat` with these words, once there are more than `after`."""
    def found() -> list[SentMessage]:
        got = [m for m in tg.sent_to(chat) if words in (m.text or "")]
        return got if len(got) > after else []
    return wait_for(found, why=f"{words!r} in {chat}")[-1]


def count(tg: FakeTelegram, chat: int, words: str) -> int:
    return sum(1 for m in tg.sent_to(chat) if words in (m.text or ""))


def tap(tg: FakeTelegram, uid: int, m: SentMessage, label_part: str) -> None:
    data = next(d for label, d in buttons(m).items() if label_part in label)
    press(tg, uid, m, data)


def test_two_leaders_mark_resume_registry_and_board(world: dict[str, Any]) -> None:
    tg, engine, who = world["tg"], world["engine"], world["who"]
    api, csrf = signed_in(world, who["secretary"].person_id)
    deadline = (world["clock"].now() + timedelta(hours=4)).isoformat()

    # A deadline in the past and an empty title: a clear answer, nothing started.
    past = (world["clock"].now() - timedelta(minutes=1)).isoformat()
    r = api.post("/api/campaigns", headers={"X-CSRF-Token": csrf},
                 json={"node_code": GROUP1, "title": "敲门行动", "deadline": past})
    assert r.status_code == 422 and "截止时间已经过去" in r.text
    r = api.post("/api/campaigns", headers={"X-CSRF-Token": csrf},
                 json={"node_code": GROUP1, "title": " ", "deadline": deadline})
    assert r.status_code == 422 and "标题" in r.text
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM campaign")).scalar_one() == 0

    r = api.post("/api/campaigns", headers={"X-CSRF-Token": csrf},
                 json={"node_code": GROUP1, "title": "敲门行动", "instructions": "核对人口",
                       "deadline": deadline})
    assert r.status_code == 200, r.text
    cid = r.json()["id"]

    # Leader A: the checklist arrives, three households.
    start_a = last_with(tg, A_TG, "您负责的3户")
    tap(tg, A_TG, start_a, "开始登记")
    page = last_with(tg, A_TG, "已登记 0/3")
    tap(tg, A_TG, page, "101室")
    item = last_with(tg, A_TG, "请选择结果")
    tap(tg, A_TG, item, "已搬离")
    page = last_with(tg, A_TG, "已登记 1/3")
    tap(tg, A_TG, page, "○ 幸福社区3号楼202室")
    item = last_with(tg, A_TG, "202室\n请选择结果")
    tap(tg, A_TG, item, "有新增人员")
    last_with(tg, A_TG, "请发送新增人员的姓名和手机号")
    msg(tg, A_TG, text="钱多多 13811112222")
    last_with(tg, A_TG, "已登记新增人员 钱多多")
    page_a = last_with(tg, A_TG, "已登记 2/3")
    # ... and A stops here, halfway.

    # Leader B marks one of theirs, and tries A's third household: refused, nothing changed.
    tap(tg, B_TG, last_with(tg, B_TG, "您负责的3户"), "开始登记")
    page_b = last_with(tg, B_TG, "已登记 0/3")
    tap(tg, B_TG, page_b, "101室")
    tap(tg, B_TG, last_with(tg, B_TG, "请选择结果"), "已完成")
    last_with(tg, B_TG, "已登记 1/3")
    a_third = next(d for label, d in buttons(page_a).items() if "303室" in label)
    press(tg, B_TG, page_b, a_third)
    last_with(tg, B_TG, "不是您负责的邻")

    # The 组长 confirms the new person: a member row; the moved household is routed no more.
    ok = last_with(tg, GL_TG, "钱多多")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM person WHERE phone = '13811112222'")
                            ).scalar_one() == 0
    tap(tg, GL_TG, ok, "确认")
    last_with(tg, GL_TG, "已加入名册")
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT x.address FROM post x JOIN person p ON p.id = x.person_id"
            " WHERE p.phone = '13811112222' AND x.role = 'resident'")).one()
        moved = conn.execute(sa.text(
            "SELECT COUNT(*) FROM post WHERE address = '幸福社区3号楼101室'"
            " AND moved_at IS NOT NULL")).scalar_one()
    assert row[0] == "幸福社区3号楼202室" and moved == 1

    # A comes back: the checklist opens where they left off.
    msg(tg, A_TG, text="/campaign")
    resumed = last_with(tg, A_TG, "已登记 2/3", after=1)
    assert any("○ 幸福社区3号楼303室" in label for label in buttons(resumed))
    tap(tg, A_TG, resumed, "303室")
    tap(tg, A_TG, last_with(tg, A_TG, "303室\n请选择结果"), "不在家")
    last_with(tg, A_TG, "全部3户已登记")

    # The board matches what was pressed.
    p = api.get(f"/api/campaigns/{cid}/progress", params={"node": GROUP1}).json()
    assert p["node"]["total"] == 6 and p["node"]["done"] == 4 and p["node"]["not_yet"] == 2
    assert p["node"]["by_outcome"] == {"已完成": 1, "不在家": 1, "拒绝": 0, "已搬离": 1,
                                       "有新增人员": 1}
    kids = {k["node"]["code"]: k for k in p["children"]}
    assert kids[LIN1]["done"] == 3 and kids[LIN1]["pct"] == 100.0
    assert kids[LIN2]["done"] == 1 and kids[LIN2]["not_yet"] == 2
    lin = api.get(f"/api/campaigns/{cid}/progress", params={"node": LIN1}).json()
    assert [i["outcome"] for i in lin["items"]] == ["已搬离", "有新增人员", "不在家"]
    assert api.get(f"/dashboard/campaigns/{cid}/export.xlsx",
                   params={"node": GROUP1}).status_code == 200

    # Half time: B (behind) is nagged, A (done) is not; at the deadline the 组长 hears of B.
    world["clock"].advance(timedelta(hours=2, minutes=1))
    run_sweep(engine, clock=world["clock"])
    last_with(tg, B_TG, "已过半时间，您还有2户")
    world["clock"].advance(timedelta(hours=2))
    run_sweep(engine, clock=world["clock"])
    told = last_with(tg, GL_TG, "已到截止时间")
    assert who["b"].name in (told.text or "") and who["a"].name not in (told.text or "")
    assert count(tg, A_TG, "已过半") == 0

    # Closed: a press is refused in words and changes nothing.
    assert api.post(f"/api/campaigns/{cid}/close",
                    headers={"X-CSRF-Token": csrf}).status_code == 200
    page_b = last_with(tg, B_TG, "已登记 1/3")
    tap(tg, B_TG, page_b, "202室")
    last_with(tg, B_TG, "已经结束")
    after = api.get(f"/api/campaigns/{cid}/progress", params={"node": GROUP1}).json()
    assert after["node"]["done"] == 4
    api.close()
