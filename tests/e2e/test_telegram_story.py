"""The whole story on Telegram: the real app in polling mode against a fake Bot API server.

Updates are pushed into the fake, fetched by our getUpdates loop, handled, and everything the
bot says comes back out through the outbox sender within Telegram's limits. Deadlines run on
the fake clock; only message delivery waits, in bounded polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from core.clock import FakeClock
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.support.demo_city import LIN1, holder_of
from tests.support.poll import poll
from tests.support.telegram_world import demo_city, link_telegram, telegram_app

RESIDENT_TG, LEADER_TG, GROUP_LEADER_TG = 5001, 9001, 9002


def wait_for(what: Callable[[], Any], *, timeout: float = 20.0, why: str = "") -> Any:
    return poll(what, timeout=timeout, what=why or str(what))


def user(uid: int, name: str = "王") -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": name, "language_code": "zh"}


def private(uid: int) -> dict[str, Any]:
    return {"id": uid, "type": "private", "first_name": "王"}


def msg(tg: FakeTelegram, uid: int, **fields: Any) -> int:
    mid = int(time.monotonic() * 1000) % 10**9
    return tg.push_update({"message": {"message_id": mid, "date": 1700000000,
                                       "chat": private(uid), "from": user(uid), **fields}})


def press(tg: FakeTelegram, uid: int, card: SentMessage, data: str) -> int:
    return tg.push_update({"callback_query": {
        "id": f"q{time.monotonic_ns()}", "from": user(uid), "chat_instance": "ci", "data": data,
        "message": {"message_id": card.message_id, "date": 1700000000, "chat": private(uid),
                    "text": card.text},
    }})


def buttons(m: SentMessage) -> dict[str, str]:
    rows = (m.reply_markup or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[FakeTelegram, Any, FakeClock]]:
    url, engine = demo_city(tmp_path)
    link_telegram(engine, (("neighbor_leader", LIN1, LEADER_TG),
                           ("group_leader", LIN1[:-3], GROUP_LEADER_TG)))
    with telegram_app(engine, url, tmp_path, clock) as (tg, _base):
        yield tg, engine, clock


def test_from_first_message_to_escalation(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, clock = world
    resident = holder_of(engine, "resident", LIN1)

    # A stranger reports; they are asked to share their phone, and nothing is lost.
    msg(tg, RESIDENT_TG, text="楼道灯坏了三天了")
    ask = wait_for(lambda: [m for m in tg.sent_to(RESIDENT_TG) if "二维码" in (m.text or "")],
                   why="how to join")[0]
    assert (ask.reply_markup or {}).get("keyboard"), "a share-my-phone keyboard"

    msg(tg, RESIDENT_TG, contact={"phone_number": "+86" + resident.phone, "first_name": "王",
                                  "user_id": RESIDENT_TG})
    card = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if "楼道灯坏了" in (m.text or "")],
                    why="the case card at the 邻长")[0]
    assert {"受理", "解决不了，转上级"} <= set(buttons(card))
    assert "住址" in (card.text or "") and resident.phone not in (card.text or "")
    wait_for(lambda: any("欢迎" in (m.text or "") for m in tg.sent_to(RESIDENT_TG)),
             why="welcome")

    # The 邻长 accepts with the button: the press is acknowledged and the card edited.
    press(tg, LEADER_TG, card, buttons(card)["受理"])
    wait_for(lambda: tg.answers, why="answerCallbackQuery")
    wait_for(lambda: any("已受理" in (e.get("text") or "") for e in tg.edits),
             why="the card edited to show it was accepted")

    # Answering by replying to the card relays the answer to the resident.
    msg(tg, LEADER_TG, text="明天上午来换灯泡",
        reply_to_message={"message_id": card.message_id, "date": 1700000000,
                          "chat": private(LEADER_TG), "text": card.text})
    wait_for(lambda: any("明天上午来换灯泡" in (m.text or "") for m in tg.sent_to(RESIDENT_TG)),
             why="the answer at the resident")

    # A photo sent next is added to the case and forwarded to the 邻长 by its file id.
    msg(tg, RESIDENT_TG, photo=[{"file_id": "AgADphoto1", "file_unique_id": "ph1",
                                 "width": 800, "height": 600, "file_size": 50000}])
    forwarded = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG)
                                  if m.method.lower() == "sendphoto"], why="the photo")
    assert "工单#" in (forwarded[0].text or "")

    # A second problem goes unanswered past the 4-hour deadline: the 组长 gets it.
    clock.advance(timedelta(minutes=15))
    msg(tg, RESIDENT_TG, text="单元门口的垃圾三天没人收")
    wait_for(lambda: any("垃圾" in (m.text or "") for m in tg.sent_to(LEADER_TG)),
             why="second card")
    clock.advance(timedelta(hours=4, minutes=1))
    wait_for(lambda: any("垃圾" in (m.text or "") for m in tg.sent_to(GROUP_LEADER_TG)),
             why="escalation to the 组长")
    assert tg.too_many == [], "the sender never earned a 429"


def test_a_blocked_leader_is_marked_unreachable(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, _clock = world
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": resident.person_id, "t": str(RESIDENT_TG)})
    tg.block(LEADER_TG)
    msg(tg, RESIDENT_TG, text="电梯坏了，老人下不了楼")

    def unreachable() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT unreachable FROM chat_identity WHERE external_id = :t"),
                {"t": str(LEADER_TG)}).scalar_one())

    wait_for(unreachable, why="the blocked 邻长 marked unreachable")
    # The next tier hears of it instead.
    wait_for(lambda: any("电梯" in (m.text or "") or "无法联系" in (m.text or "")
                         for m in tg.sent_to(GROUP_LEADER_TG)), why="the 组长 told")


ADMIN_TG = 9100


def document(tg: FakeTelegram, uid: int, name: str, data: bytes, caption: str | None) -> int:
    file_id = f"doc-{name}-{time.monotonic_ns()}"
    tg.add_file(file_id, data, file_path=f"documents/{name}")
    doc = {"file_id": file_id, "file_unique_id": file_id[-12:], "file_name": name,
           "mime_type": "text/csv", "file_size": len(data)}
    fields: dict[str, Any] = {"document": doc}
    if caption:
        fields["caption"] = caption
    return msg(tg, uid, **fields)


def test_an_admin_imports_and_exports_in_chat(world) -> None:  # type: ignore[no-untyped-def]
    from tests.support.demo_city import TOWN

    tg, engine, _clock = world
    admin = holder_of(engine, "admin", TOWN)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": admin.person_id, "t": str(ADMIN_TG)})
    good = ("name,phone,role,node_code,address\n"
            f"新居民,13811112222,resident,{LIN1},幸福社区3号楼505室\n").encode()
    document(tg, ADMIN_TG, "members.csv", good, "/import")
    wait_for(lambda: any("导入成功" in (m.text or "") for m in tg.sent_to(ADMIN_TG)),
             why="import ok")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM person WHERE phone = '13811112222'"
                                    )).scalar_one() == 1

    bad = ("name,phone,role,node_code\n"
           f"坏号码,12345,resident,{LIN1}\n好人,13811113333,mayor,{LIN1}\n").encode()
    msg(tg, ADMIN_TG, text="/import")
    wait_for(lambda: any("CSV" in (m.text or "") for m in tg.sent_to(ADMIN_TG)),
             why="asked for the file")
    document(tg, ADMIN_TG, "members.csv", bad, None)
    failed = wait_for(lambda: [m for m in tg.sent_to(ADMIN_TG) if "导入失败" in (m.text or "")],
                      why="import rejected")[0]
    assert "members.csv:2" in (failed.text or "") and "members.csv:3" in (failed.text or "")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM person WHERE phone = '13811113333'"
                                    )).scalar_one() == 0

    msg(tg, ADMIN_TG, text="/export")
    sent = wait_for(lambda: [m for m in tg.sent_to(ADMIN_TG) if m.method.lower() == "senddocument"],
                    why="the workbook")
    assert "导出完成" in (sent[0].text or "")
