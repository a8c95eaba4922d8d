"""One inbound, several answers: the web chat shows them in the order they were written (the
receipt "已收到…编号…" before the category question), even though the clock moved while the
flow ran."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.handlers.web.inbound import handle
from core.clock import FakeClock
from core.container import build_container
from core.settings import Settings
from tests.support.demo_city import LIN1, holder_of, load_demo


class TickingClock(FakeClock):
    """A fake clock that moves a second each time it is read (a real flow takes time)."""

    def now(self) -> datetime:
        return self.advance(timedelta(seconds=1))


def test_receipt_comes_before_the_category_question(engine: Engine, tmp_path: Path) -> None:
    load_demo(engine)
    resident = holder_of(engine, "resident", LIN1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'web', 'w1', false)"),
                     {"p": resident.person_id})
    settings = Settings(_env_file=None, media_dir=str(tmp_path / "m"))  # type: ignore[call-arg]
    c = build_container(settings, clock=TickingClock(), engine=engine)
    handle(c, chat_id="w1", client_id="order-000001", text="门口有一堆东西挡着")
    with engine.connect() as conn:
        texts = list(conn.execute(sa.text(
            "SELECT text FROM web_message WHERE chat_id = 'w1' AND direction = 'outbound'"
            " ORDER BY id")).scalars())
    receipt = next(i for i, t in enumerate(texts) if t.startswith("已收到"))
    question = next(i for i, t in enumerate(texts) if "类别" in t)
    assert receipt < question, texts
