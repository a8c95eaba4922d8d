"""Buttons pressed on the real platforms' fakes move the case: Telegram's callback_query, and
WeChat's message-menu taps with WeCom's template-card events. The stars rate the case."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.cases import actions
from core.db import write_session
from tests.e2e.test_telegram_story import LEADER_TG, RESIDENT_TG, buttons, msg, press, wait_for
from tests.e2e.test_telegram_story import world as tg_world  # noqa: F401  (fixture)
from tests.e2e.test_wechat_story import LEADER, RESIDENT
from tests.e2e.test_wechat_story import World as WxWorld
from tests.e2e.test_wechat_story import world as wx_world  # noqa: F401  (fixture)
from tests.support.demo_city import LIN1, holder_of


def _case(engine: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT id, state, rating, category_id, version, holder_id FROM cases"
            " ORDER BY id DESC")).first()


def _link(engine: Any, person_id: int, platform: str, external: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, :pl, :t, false)"),
                     {"p": person_id, "pl": platform, "t": external})


def test_telegram_presses_move_the_case_and_rate_it(tg_world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    tg, engine, _clock = tg_world
    _link(engine, holder_of(engine, "resident", LIN1).person_id, "telegram", str(RESIDENT_TG))
    msg(tg, RESIDENT_TG, text="门口有一堆东西挡着")
    ask = wait_for(lambda: [m for m in tg.sent_to(RESIDENT_TG) if "类别" in (m.text or "")],
                   why="the category question")[0]
    press(tg, RESIDENT_TG, ask, buttons(ask)["安全隐患"])
    wait_for(lambda: _case(engine).category_id is not None, why="the category chosen")
    card = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if "挡着" in (m.text or "")],
                    why="the card")[0]
    press(tg, LEADER_TG, card, buttons(card)["受理"])
    wait_for(lambda: _case(engine).state == "accepted", why="accepted")
    # An open case's card already offers 已解决; the accepted card is the one without 受理.
    wait_for(lambda: "受理" not in buttons(tg.message(LEADER_TG, card.message_id)),  # type: ignore[arg-type]
             why="the card edited")
    press(tg, LEADER_TG, card, buttons(tg.message(LEADER_TG, card.message_id))["已解决"])  # type: ignore[arg-type]
    wait_for(lambda: _case(engine).state == "resolved", why="resolved")
    rate = wait_for(lambda: [m for m in tg.sent_to(RESIDENT_TG) if "★★★" in buttons(m)],
                    why="the rating buttons")[-1]
    press(tg, RESIDENT_TG, rate, buttons(rate)["★★★"])
    wait_for(lambda: _case(engine).state == "closed", why="closed")
    assert _case(engine).rating == 3
    assert not any("1到5星" in (m.text or "") for m in tg.sent_to(RESIDENT_TG))
    # /mylz is in the residents' command menu.
    wait_for(lambda: any(c["command"] == "mylz" for cmds in tg.commands.values()
                         for c in cmds), why="the command menu")


def test_wechat_menu_and_wecom_card_presses_move_the_case(wx_world: WxWorld) -> None:  # noqa: F811
    w = wx_world
    _link(w.engine, holder_of(w.engine, "resident", LIN1).person_id, "wechat", RESIDENT)

    def menu(has: str) -> dict[str, str]:
        got = [m for m in w.oa.sent_to(RESIDENT) if m.msgtype == "msgmenu"
               and any(i["content"] == has for i in m.body["msgmenu"]["list"])]
        return {i["content"]: i["id"] for i in got[-1].body["msgmenu"]["list"]} if got else {}

    def tap(label: str) -> None:
        items = wait_for(lambda: menu(label), why=f"a menu with {label}")
        w.resident(MsgType="text", Content=label, bizmsgmenuid=items[label])

    w.resident(MsgType="text", Content="门口有一堆东西挡着")
    tap("安全隐患")
    wait_for(lambda: _case(w.engine).category_id is not None, why="the category chosen")
    card = wait_for(lambda: [m for m in w.wecom.sent_to(LEADER)
                             if m.msgtype == "template_card" and "挡着" in m.text],
                    why="the card at the 邻长")[0]
    keys = {b["text"]: b["key"] for b in card.body["template_card"]["button_list"]}
    w.leader(LEADER, MsgType="event", Event="template_card_event", EventKey=keys["受理"],
             TaskId=card.body["template_card"]["task_id"], CardType="button_interaction",
             ResponseCode="rc-1")
    wait_for(lambda: _case(w.engine).state == "accepted", why="accepted")
    c = _case(w.engine)
    with write_session(w.engine) as s:  # the 邻长 resolves on the dashboard
        actions.resolve(s, clock=w.clock, case_id=c.id, person_id=c.holder_id,
                        version=c.version)
    tap("没解决")
    wait_for(lambda: _case(w.engine).state != "resolved", why="reopened")
    c = _case(w.engine)
    with write_session(w.engine) as s:
        actions.resolve(s, clock=w.clock, case_id=c.id, person_id=c.holder_id,
                        version=c.version)
    wait_for(lambda: len([m for m in w.oa.sent_to(RESIDENT) if m.msgtype == "msgmenu"
                          and "★★★★" in m.text + str(m.body)]) >= 2, why="asked to rate again")
    tap("★★★★")
    wait_for(lambda: _case(w.engine).state == "closed", why="closed")
    assert _case(w.engine).rating == 4
