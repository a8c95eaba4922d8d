"""Every button kind, as core and the flows make it, survives each platform's round trip: the
payload the sender puts on the button comes back from the platform's press parser as the same
action, case, version and argument (the star rating included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.dispatcher.rows import Row
from bot.handlers.button_keys import decode
from bot.handlers.telegram import callback
from bot.handlers.telegram.parts import buttons_from_actions, keyboard_rows
from bot.handlers.web import transport as web_sender
from bot.handlers.wechat.transport import WeChatTransport
from bot.handlers.wecom.transport import card
from core.clock import FakeClock
from core.db import make_engine, migrate, write_session
from core.outbox import Action, Draft, enqueue_many
from core.settings import Settings

CASE, VERSION = 4321, 7
# (action, the argument its press must bring back, how it is stored): core's case buttons put
# the rating in `extra`, the flows' buttons (bot/dispatch.py) put `arg`.
KINDS: list[tuple[str, str | None, tuple[tuple[str, Any], ...]]] = [
    ("accept", None, ()), ("reply", None, ()), ("resolve", None, ()), ("escalate", None, ()),
    ("ask_more", None, ()), ("whistle", "2", (("arg", "2"),)),
    *[("confirm", str(n), (("rating", n),)) for n in range(1, 6)],
    ("not_fixed", None, ()), ("add", None, ()), ("category", "3", (("arg", "3"),)),
    ("new_case", None, ()),
    # 常用答复: the answer's number on the holder's card and on the prompt's 按此发送.
    ("canned", "1", (("arg", "1"),)), ("canned_send", "4", (("arg", "4"),)),
    # Notices: 收到 on a copy (notice id in `case_id`), and the steps of /notice.
    ("notice_ok", None, ()), ("notice_node", "0", (("arg", "0"),)),
    ("notice_aud", "nr", (("arg", "nr"),)), ("notice_cf", "y", (("arg", "y"),)),
    ("notice_dl", "h24", (("arg", "h24"),)), ("notice_go", None, ()), ("notice_x", None, ()),
    # 满意度测评: the score on each of the survey's five buttons.
    *[("survey_rate", str(n), (("arg", str(n)),)) for n in range(1, 6)],
]
IDS = [f"{a}-{arg}" if arg else a for a, arg, _ in KINDS]


def _json(action: str, extra: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return Action(action, f"按钮{action}", CASE, VERSION, extra).to_json()


def _row(actions: list[dict[str, Any]]) -> Row:
    return Row(id=1, kind="resolved", text="工单#4321 已解决，请评价", person_id=None,
               chat_binding_id=None, platform=None, address="someone", case_id=CASE,
               actions=tuple(actions),
               options={})


def _expect(press: Any, action: str, arg: str | None) -> None:
    assert (press.action, press.case_id, press.version, press.arg) == (action, CASE, VERSION, arg)


@pytest.mark.parametrize(("action", "arg", "extra"), KINDS, ids=IDS)
def test_telegram_callback_data(action: str, arg: str | None,
                                extra: tuple[tuple[str, Any], ...]) -> None:
    rows = keyboard_rows(buttons_from_actions([_json(action, extra)]))
    (_label, data), = [b for row in rows for b in row]
    _expect(callback.decode(data), action, arg)


@pytest.mark.parametrize(("action", "arg", "extra"), KINDS, ids=IDS)
def test_wecom_template_card_key(action: str, arg: str | None,
                                 extra: tuple[tuple[str, Any], ...]) -> None:
    (button,) = card(_row([_json(action, extra)]), task_id="t-1")["button_list"]
    _expect(decode(button["key"]), action, arg)


class MenuClient:
    """Records the customer-service menus the WeChat sender sends (WeChatTransport's `client`)."""

    def __init__(self) -> None:
        self.menus: list[dict[str, Any]] = []
        self.message = self

    def send_msg_menu(self, openid: str, menu: dict[str, Any]) -> dict[str, Any]:
        self.menus.append(menu)
        return {"msgid": "m1"}


@pytest.mark.parametrize(("action", "arg", "extra"), KINDS, ids=IDS)
def test_wechat_menu_id(tmp_path: Path, clock: FakeClock, action: str, arg: str | None,
                        extra: tuple[tuple[str, Any], ...]) -> None:
    client = MenuClient()
    sender = WeChatTransport(engine=make_engine(f"sqlite:///{tmp_path / 'x.db'}"),
                          settings=Settings(_env_file=None),  # type: ignore[call-arg]
                          clock=clock, client=client)  # type: ignore[arg-type]
    sender._custom("o_resident", _row([_json(action, extra)]))
    (item,) = client.menus[0]["list"]
    _expect(decode(item["id"]), action, arg)


def test_web_chat_buttons_carry_arg(tmp_path: Path, clock: FakeClock) -> None:
    """The page sends `arg` back (chat.js): every web button has its argument there."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    with write_session(engine) as s:
        enqueue_many(s, drafts=[Draft(
            text="请评价", kind="resolved", dedupe_key="k1", platform="web", address="webchat1",
            actions=tuple(Action(a, a, CASE, VERSION, extra) for a, _, extra in KINDS))],
            now=clock.now())
    assert web_sender.deliver_pending(engine, clock=clock) == 1
    with engine.connect() as conn:
        actions = conn.execute(sa.text("SELECT actions FROM web_message")).scalar_one()
    if isinstance(actions, str):
        import json

        actions = json.loads(actions)
    assert [(a["action"], a.get("arg")) for a in actions] == [(a, arg) for a, arg, _ in KINDS]
