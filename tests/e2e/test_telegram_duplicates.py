"""A neighbour's "me too" through Telegram (fake Bot API): the offer, one tap, the card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from tests.e2e.test_telegram_story import buttons, msg, press, wait_for
from tests.fakes.telegram_api import FakeTelegram
from tests.support.demo_city import LIN1, holder_of, load_demo
from tests.support.server import serve
from webhooks.app import create_app

A_TG, B_TG, LEADER_TG = 5101, 5102, 9101


def link(engine: Any, person_id: int, tg: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'telegram', :t, false)"),
                     {"p": person_id, "t": str(tg)})


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[FakeTelegram, Any]]:
    url = f"sqlite:///{tmp_path / 'tg.db'}"
    engine = make_engine(url)
    migrate(engine)
    load_demo(engine)
    with engine.connect() as conn:
        two = conn.execute(sa.text(
            "SELECT DISTINCT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
            " WHERE x.role = 'resident' AND n.code = :c ORDER BY x.person_id LIMIT 2"),
            {"c": LIN1}).scalars().all()
    if len(two) < 2:
        with engine.connect() as conn:
            two = [two[0], *conn.execute(sa.text(
                "SELECT x.person_id FROM post x JOIN node n ON n.id = x.node_id"
                " WHERE x.role = 'resident' AND n.code LIKE :g AND x.person_id != :p"
                " ORDER BY x.id LIMIT 1"), {"g": LIN1[:-3] + "%", "p": two[0]}).scalars()]
    link(engine, two[0], A_TG)
    link(engine, two[1], B_TG)
    link(engine, holder_of(engine, "neighbor_leader", LIN1).person_id, LEADER_TG)
    with FakeTelegram() as tg:
        settings = Settings(_env_file=None, database_url=url,  # type: ignore[call-arg]
                            telegram_bot_token=SecretStr(tg.token),
                            telegram_api_base=tg.base_url, media_dir=str(tmp_path / "media"))
        container = build_container(settings, clock=clock, engine=engine)
        with serve(create_app(settings, container=container, polling=True)):
            yield tg, engine


def test_a_neighbour_says_me_too_with_one_tap(world) -> None:  # type: ignore[no-untyped-def]
    tg, engine = world
    msg(tg, A_TG, text="3号楼前面的垃圾好几天没人清理了，电话13912345678")
    card = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG) if "垃圾" in (m.text or "")],
                    why="the first card at the 邻长")[0]

    msg(tg, B_TG, text="3号楼垃圾没人清理，很臭")
    ask = wait_for(lambda: [m for m in tg.sent_to(B_TG) if "是不是这件事" in (m.text or "")],
                   why="the offer to the second resident")[0]
    labels = buttons(ask)
    pick = next(label for label in labels if label.startswith("#"))
    assert "不是，新问题" in labels
    assert "13912345678" not in pick, "another resident's phone number never shown"

    press(tg, B_TG, ask, labels[pick])
    wait_for(lambda: any("并入工单" in (m.text or "") for m in tg.sent_to(B_TG)),
             why="the supporter's answer")
    with engine.connect() as conn:
        states = dict(conn.execute(sa.text("SELECT id, state FROM cases")).all())
    assert sorted(states.values()) == ["merged", "open"], "counted once: one open case"

    # The 邻长's card now says two residents reported it; accepting it tells both.
    wait_for(lambda: any("2人反映" in (e.get("text") or "") for e in tg.edits),
             why="the card shows 2人反映")
    press(tg, LEADER_TG, card, buttons(card)["受理"])
    wait_for(lambda: len([m for m in tg.sent_to(B_TG) if "受理" in (m.text or "")]) >= 1,
             why="the supporter hears the update")
