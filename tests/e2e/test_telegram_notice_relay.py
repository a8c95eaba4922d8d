"""A 书记 sends a notice to the residents of their village with /notice on Telegram (the real
app in polling mode against the fake Bot API): residents with Telegram get it with 收到; each
邻长 gets "请转达N户" and a checklist of the households without a chat (the relay campaign);
marking them moves the notice's relay progress on the API and the dashboard; a resident a
campaign found 已搬离 is in neither list."""

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
SEC_TG, A_TG, B_TG = 9400, 9001, 9003
# Residents by their demo address: with Telegram, moved away (with Telegram too), no chat.
WITH_TG = {"幸福社区3号楼101室": 7101, "幸福社区4号楼101室": 7201}
MOVED, MOVED_TG = "幸福社区3号楼202室", 7102


def _bind(engine: Any, person_id: int, tg: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": person_id, "t": str(tg)})


def _resident(engine: Any, address: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT person_id FROM post WHERE role = 'resident'"
                                        " AND address = :a"), {"a": address}).scalar_one())


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    who = {"secretary": holder_of(engine, "secretary", VILLAGE1),
           "a": holder_of(engine, "neighbor_leader", LIN1),
           "b": holder_of(engine, "neighbor_leader", LIN2)}
    for key, tg in (("secretary", SEC_TG), ("a", A_TG), ("b", B_TG)):
        _bind(engine, who[key].person_id, tg)
    for address, tg in WITH_TG.items():
        _bind(engine, _resident(engine, address), tg)
    _bind(engine, _resident(engine, MOVED), MOVED_TG)
    with engine.begin() as conn:  # an earlier campaign's 已搬离 (core/campaigns/registry.py)
        conn.execute(sa.text("UPDATE post SET moved_at = :t WHERE address = :a"),
                     {"t": clock.now() - timedelta(days=1), "a": MOVED})
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)) as base:
            yield {"tg": tg, "engine": engine, "clock": clock, "who": who, "url": base}


def last_with(tg: FakeTelegram, chat: int, words: str, after: int = 0) -> SentMessage:
    def found() -> list[SentMessage]:
        got = [m for m in tg.sent_to(chat) if words in (m.text or "")]
        return got if len(got) > after else []
    return wait_for(found, why=f"{words!r} to {chat}")[-1]


def tap(tg: FakeTelegram, uid: int, m: SentMessage, label_part: str) -> None:
    data = next(d for label, d in buttons(m).items() if label_part in label)
    press(tg, uid, m, data)


def signed_in(w: dict[str, Any], person_id: int) -> httpx.Client:
    with write_session(w["engine"]) as s:
        token = accounts.issue_login_token(s, person_id=person_id, now=w["clock"].now(),
                                           ttl=timedelta(minutes=15))
    client = httpx.Client(base_url=w["url"], follow_redirects=False, timeout=30)
    assert client.get(f"/login/{token}").status_code == 303
    return client


def test_residents_get_it_the_rest_through_their_neighbor_leader(world: dict[str, Any]
                                                                 ) -> None:
    tg, engine, who = world["tg"], world["engine"], world["who"]
    msg(tg, SEC_TG, text="/notice", entities=[{"type": "bot_command", "offset": 0,
                                                "length": 7}])
    ask = last_with(tg, SEC_TG, "哪些人")
    press(tg, SEC_TG, ask, buttons(ask)["居民"])
    last_with(tg, SEC_TG, "请发送通知内容")
    msg(tg, SEC_TG, text="明天上午8点到12点停水，请提前储水")
    q = last_with(tg, SEC_TG, "需要大家回复")
    press(tg, SEC_TG, q, buttons(q)["需要"])
    last_with(tg, SEC_TG, "截止时间")
    msg(tg, SEC_TG, text="6小时")
    summary = last_with(tg, SEC_TG, "确认发送吗")
    press(tg, SEC_TG, summary, buttons(summary)["发送"])
    last_with(tg, SEC_TG, "通知已发出")

    # Residents with Telegram: the notice with 收到; one presses it.
    for chat in WITH_TG.values():
        copy = last_with(tg, chat, "停水")
        assert "收到" in buttons(copy)
    copy = last_with(tg, 7101, "停水")
    press(tg, 7101, copy, buttons(copy)["收到"])
    last_with(tg, 7101, "已确认收到")

    # Each 邻长: "请转达N户" (the moved household is not counted) and the relay checklist.
    last_with(tg, A_TG, "请转达1户")
    last_with(tg, B_TG, "请转达2户")
    start_a = last_with(tg, A_TG, "转达通知")
    assert "您负责的1户" in (start_a.text or "")
    tap(tg, A_TG, start_a, "开始登记")
    page = last_with(tg, A_TG, "已登记 0/1")
    assert (page.text or "").startswith("📋 转达：明天上午8点")
    labels = list(buttons(page))
    assert any("303室" in x for x in labels)
    assert not any("202室" in x or "101室" in x for x in labels)
    tap(tg, A_TG, page, "303室")
    item = last_with(tg, A_TG, "请选择结果")
    assert {"已转达", "不在家", "已搬离"} <= set(buttons(item))
    tap(tg, A_TG, item, "已转达")
    last_with(tg, A_TG, "全部1户已登记")

    tap(tg, B_TG, last_with(tg, B_TG, "转达通知"), "开始登记")
    page_b = last_with(tg, B_TG, "已登记 0/2")
    tap(tg, B_TG, page_b, "202室")
    tap(tg, B_TG, last_with(tg, B_TG, "请选择结果"), "不在家")
    last_with(tg, B_TG, "已登记 1/2")

    # The moved resident got nothing, though their Telegram is bound.
    assert not any("停水" in (m.text or "") for m in tg.sent_to(MOVED_TG))

    # The notice's relay progress moved: on the API and on the dashboard page.
    with engine.connect() as conn:
        nid = conn.execute(sa.text("SELECT id FROM notice")).scalar_one()
        households = conn.execute(sa.text(
            "SELECT count(*) FROM campaign_item i JOIN campaign c ON c.id = i.campaign_id"
            " WHERE c.notice_id = :n"), {"n": nid}).scalar_one()
    api = signed_in(world, who["secretary"].person_id)
    got = api.get(f"/api/notices/{nid}").json()
    relay = got["relay"]
    assert relay["households"] == households and relay["done"] == 2
    assert relay["by_outcome"] == {"已转达": 1, "不在家": 1, "已搬离": 0}
    assert relay["not_yet"] == households - 2
    assert got["totals"]["confirmed"] == 1
    page_html = api.get(f"/dashboard/notices/{nid}").text
    assert "邻长转达进度" in page_html and f'/dashboard/campaigns/{relay["campaign_id"]}' \
        in page_html
    board = api.get(f"/dashboard/campaigns/{relay['campaign_id']}").text
    assert "转达：明天上午8点" in board and f"/dashboard/notices/{nid}" in board
    progress = api.get(f"/api/campaigns/{relay['campaign_id']}/progress",
                       params={"node": LIN1}).json()
    assert progress["campaign"]["notice_id"] == nid
    assert [i["address"] for i in progress["items"]] == ["幸福社区3号楼303室"]
    api.close()
