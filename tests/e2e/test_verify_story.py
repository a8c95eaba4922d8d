"""核查 before closing, through Telegram and the dashboard: the real app against the fake Bot
API. A category marked 需核查: the 邻长's 已解决 goes to the 组长 with the photos on the card
before the resident is asked; 退回重办 three times climbs a tier. An escalated case: the 片长's
已解决 waits for the 书记, who checks it on the dashboard; only then is the resident asked."""

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
from core.hierarchy.importer import import_files
from core.settings import Settings
from tests.e2e.test_telegram_story import buttons, msg, press, wait_for
from tests.fakes.telegram_api import FakeTelegram, SentMessage
from tests.support.demo_city import AREA1, LIN1, VILLAGE1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

RESIDENT, LEADER, GROUP_LEADER, AREA_LEADER = 5201, 9201, 9202, 9203
TG = {"resident": RESIDENT, "neighbor_leader": LEADER, "group_leader": GROUP_LEADER,
      "area_leader": AREA_LEADER}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FakeTelegram, Any, FakeClock, str]]:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    cats = tmp_path / "categories.csv"
    cats.write_text("类别,责任部门,需核查\n公共设施,D01,是\n", encoding="utf-8")
    import_files(engine, [cats])
    codes = {"resident": LIN1, "neighbor_leader": LIN1, "group_leader": LIN1[:-3],
             "area_leader": AREA1}
    for role, tg in TG.items():
        who = holder_of(engine, role, codes[role])
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                                 " unreachable) VALUES (:p, 'telegram', :t, false)"),
                         {"p": who.person_id, "t": str(tg)})
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)) as base:
            yield tg, engine, clock, base


def case_row(engine: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, state, stage, holder_role, version FROM cases"
                                    )).one()


def newest_card(tg: FakeTelegram, uid: int, needle: str) -> SentMessage:
    cards = [m for m in tg.sent_to(uid) if needle in (m.text or "") and buttons(m)]
    assert cards, [m.text for m in tg.sent_to(uid)]
    return cards[-1]


def stars(tg: FakeTelegram) -> list[SentMessage]:
    return [m for m in tg.sent_to(RESIDENT) if any("★" in b for b in buttons(m))]


def resolve_in_chat(tg: FakeTelegram, uid: int) -> None:
    card = wait_for(lambda: [m for m in tg.sent_to(uid) if "路灯" in (m.text or "")
                             and "已解决" in buttons(m)], why="a card with 已解决")[-1]
    press(tg, uid, card, buttons(card)["已解决"])


def sent_backs(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM case_event WHERE kind ="
                                        " 'sent_back'")).scalar_one())


def send_back_in_chat(tg: FakeTelegram, uid: int, reason: str, engine: Any) -> None:
    before = sent_backs(engine)
    # The card of this round (each 已解决 sends the verifier a fresh one).
    card = wait_for(lambda: [m for m in tg.sent_to(uid) if m.method.lower() == "sendmessage"
                             and "待核查" in (m.original_text or "")][before:],
                    why="the 核查 card")[0]
    def prompts() -> int:
        return sum("退回重办的原因" in (m.text or "") for m in tg.sent_to(uid))

    asked = prompts()
    press(tg, uid, card, buttons(card)["退回重办"])
    wait_for(lambda: prompts() > asked, why="the prompt for a reason")
    msg(tg, uid, text=reason)
    wait_for(lambda: sent_backs(engine) > before, why="the send-back")


def test_a_check_sent_back_three_times_climbs_a_tier(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, clock, _ = world
    msg(tg, RESIDENT, text="小区门口的路灯坏了",
        photo=[{"file_id": "AgADlamp", "file_unique_id": "lamp1", "width": 800, "height": 600,
                "file_size": 40000}], caption="小区门口的路灯坏了")
    wait_for(lambda: [m for m in tg.sent_to(LEADER) if "路灯" in (m.text or "")],
             why="the 邻长's card")

    # The 邻长 says it is solved: it goes to the 组长 for 核查, not to the resident.
    resolve_in_chat(tg, LEADER)
    wait_for(lambda: case_row(engine).stage == "verify", why="the case waits for 核查")
    card = wait_for(lambda: [m for m in tg.sent_to(GROUP_LEADER) if "待核查" in (m.text or "")],
                    why="the 核查 card at the 组长")[-1]
    assert set(buttons(card)) == {"核查通过", "退回重办"}
    assert "整改前照片1张" in (card.text or "")
    wait_for(lambda: [m for m in tg.sent_to(GROUP_LEADER) if m.method.lower() == "sendphoto"
                      and "整改前照片" in (m.text or "")], why="the photo before on the card")
    assert case_row(engine).state == "accepted" and not stars(tg)

    # 退回重办 twice: back to the 邻长 with the reason each time.
    for n in (1, 2):
        send_back_in_chat(tg, GROUP_LEADER, f"灯还是不亮{n}", engine)
        wait_for(lambda n=n: any(f"退回重办（第{n}次）：灯还是不亮{n}" in (m.text or "")
                                 for m in tg.sent_to(LEADER)), why=f"send-back {n} at 邻长")
        row = case_row(engine)
        assert (row.state, row.stage, row.holder_role) == ("accepted", "handle",
                                                           "neighbor_leader")
        clock.advance(timedelta(minutes=5))
        resolve_in_chat(tg, LEADER)
        wait_for(lambda: case_row(engine).stage == "verify", why="back to 核查")

    # The third time it climbs a tier by itself: the 组长 who checked it must handle it now.
    send_back_in_chat(tg, GROUP_LEADER, "灯还是不亮3", engine)
    wait_for(lambda: case_row(engine).holder_role == "group_leader"
             and case_row(engine).stage == "reply", why="up a tier, to the 组长")
    with engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind FROM case_event ORDER BY id")).scalars().all()
    assert kinds.count("sent_back") == 3 and kinds[-1] == "escalated"
    # The 组长's own 已解决 is checked by the 片长, who approves with one tap.
    resolve_in_chat(tg, GROUP_LEADER)
    wait_for(lambda: case_row(engine).holder_role == "area_leader"
             and case_row(engine).stage == "verify", why="核查 by the 片长")
    assert not stars(tg)
    card = wait_for(lambda: [m for m in tg.sent_to(AREA_LEADER)
                             if "核查通过" in buttons(m)], why="the 片长's 核查 card")[-1]
    press(tg, AREA_LEADER, card, buttons(card)["核查通过"])
    wait_for(lambda: stars(tg), why="the resident asked to confirm and rate")
    row = case_row(engine)
    assert (row.state, row.stage, row.holder_role) == ("resolved", "confirm", "group_leader")


def test_the_secretary_checks_an_area_leaders_resolution_on_the_dashboard(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, clock, base = world
    msg(tg, RESIDENT, text="楼道里有人乱扔垃圾")  # 环境保护: only its escalations need 核查
    wait_for(lambda: [m for m in tg.sent_to(LEADER) if "垃圾" in (m.text or "")],
             why="the 邻长's card")
    # Nobody answers: up to the 组长, then the 片长, by the sweep.
    for role in ("group_leader", "area_leader"):
        clock.advance(timedelta(hours=4, minutes=1))
        wait_for(lambda role=role: case_row(engine).holder_role == role, why=f"up to {role}")
    card = wait_for(lambda: [m for m in tg.sent_to(AREA_LEADER) if "垃圾" in (m.text or "")
                             and "已解决" in buttons(m)], why="the 片长's card")[-1]
    press(tg, AREA_LEADER, card, buttons(card)["已解决"])
    wait_for(lambda: case_row(engine).stage == "verify", why="核查 by the 书记")
    row = case_row(engine)
    assert row.holder_role == "secretary" and not stars(tg)

    secretary = holder_of(engine, "secretary", VILLAGE1)
    with write_session(engine) as s:  # the app's own writer lock: no 'database is locked'
        token = accounts.issue_login_token(s, person_id=secretary.person_id, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    with httpx.Client(base_url=base, timeout=30) as web:
        assert web.get(f"/login/{token}").status_code == 303
        page = web.get(f"/dashboard/cases/{row.id}").text
        forms = page.split("<h2>处理</h2>")[1].split("</section>")[0]
        assert "核查通过" in forms and "退回重办" in forms and "转上级" not in forms
        csrf = web.get("/api/me").json()["csrf_token"]
        # A send-back without a reason loses nothing: refused, the case still waits.
        r = web.post(f"/dashboard/cases/{row.id}/send_back",
                     data={"version": row.version, "csrf": csrf, "text": " "})
        assert r.status_code == 303 and "msg=" in r.headers["location"]
        assert case_row(engine).stage == "verify"
        r = web.post(f"/dashboard/cases/{row.id}/verify_ok",
                     data={"version": row.version, "csrf": csrf})
        assert r.status_code == 303 and "ok=verify_ok" in r.headers["location"]
        timeline = web.get(f"/dashboard/cases/{row.id}").text.split("处理记录")[1]
        assert "已解决，报上级核查" in timeline and "核查通过" in timeline
    row = case_row(engine)
    assert (row.state, row.stage, row.holder_role) == ("resolved", "confirm", "area_leader")
    wait_for(lambda: stars(tg), why="the resident asked to confirm and rate")
    wait_for(lambda: any("核查通过" in (m.text or "") for m in tg.sent_to(AREA_LEADER)),
             why="the 片长 hears it passed")


def test_a_plain_case_is_resolved_without_a_check(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine, _, _ = world
    msg(tg, RESIDENT, text="楼道里有人乱扔垃圾")  # 环境保护: not marked 需核查, not escalated
    wait_for(lambda: [m for m in tg.sent_to(LEADER) if "垃圾" in (m.text or "")],
             why="the 邻长's card")
    card = wait_for(lambda: [m for m in tg.sent_to(LEADER) if "垃圾" in (m.text or "")
                             and "已解决" in buttons(m)], why="a card with 已解决")[-1]
    press(tg, LEADER, card, buttons(card)["已解决"])
    wait_for(lambda: case_row(engine).state == "resolved", why="resolved at once")
    wait_for(lambda: stars(tg), why="the resident is asked")
