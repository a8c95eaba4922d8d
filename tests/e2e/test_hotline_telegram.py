"""Issue 16's line end to end: an operator files a case for a caller who has only a phone;
the 邻长 answers in Telegram (the real app polling a fake Bot API server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from core import accounts
from core.clock import FakeClock
from core.db import write_session
from tests.e2e.test_telegram_story import LEADER_TG, buttons, msg, press, private, wait_for
from tests.support.demo_city import LIN1, holder_of
from tests.support.telegram_world import demo_city, link_telegram, telegram_app


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[dict[str, Any]]:
    url, engine = demo_city(tmp_path)
    link_telegram(engine, (("neighbor_leader", LIN1, LEADER_TG),))
    with telegram_app(engine, url, tmp_path, clock) as (tg, base):
        yield {"tg": tg, "engine": engine, "clock": clock, "url": base}


def test_a_phone_only_callers_case_is_answered_by_the_neighbor_leader_in_telegram(
        world: dict[str, Any]) -> None:
    tg, engine, clock = world["tg"], world["engine"], world["clock"]
    caller = holder_of(engine, "resident", LIN1)  # no chat account at all
    operator = holder_of(engine, "secretary", LIN1[:12])
    with write_session(engine) as s:
        token = accounts.issue_login_token(s, person_id=operator.person_id, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    with closing(httpx.Client(base_url=world["url"], follow_redirects=False,
                              timeout=30)) as op:
        assert op.get(f"/login/{token}").status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', op.get("/dashboard/hotline").text)
        assert csrf is not None
        done = op.post("/dashboard/hotline", data={"csrf": csrf.group(1), "phone": caller.phone,
                                                    "words": "三号楼电梯困人了，已经半小时"})
        assert done.status_code == 303
        receipt = op.get(done.headers["location"]).text
    assert 'id="hl-read"' in receipt  # no chat: the operator reads the receipt out

    card = wait_for(lambda: [m for m in tg.sent_to(LEADER_TG)
                             if "电梯困人" in (m.text or "")], why="the card at the 邻长")[0]
    # The 邻长 is told the caller has no chat (not that they blocked the bot).
    assert "居民没有聊天账号（电话反映）" in (card.text or "") and "屏蔽" not in (card.text or "")
    press(tg, LEADER_TG, card, buttons(card)["受理"])
    wait_for(lambda: any("已受理" in (e.get("text") or "") for e in tg.edits),
             why="the card edited to show it was accepted")
    msg(tg, LEADER_TG, text="物业已到场，人已救出",
        reply_to_message={"message_id": card.message_id, "date": 1700000000,
                          "chat": private(LEADER_TG), "text": card.text})

    def answered() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT e.actor_id, e.via, e.note FROM case_event e WHERE e.kind = 'replied'")))
    row = wait_for(answered, why="the 邻长's answer on the case")[0]
    assert (row.actor_id, row.via, row.note) == (
        holder_of(engine, "neighbor_leader", LIN1).person_id, "telegram", "物业已到场，人已救出")
    with engine.connect() as conn:
        opened = conn.execute(sa.text("SELECT actor_id, via FROM case_event"
                                      " WHERE kind = 'opened'")).one()
        to_caller = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE person_id = :p"
                                         " AND kind = 'case_opened'"),
                                 {"p": caller.person_id}).scalar_one()
    assert tuple(opened) == (operator.person_id, "phone") and to_caller == 0
