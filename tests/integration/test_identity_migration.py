"""0010_identity: chat accounts bound before proofs were recorded get a conservative proof."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from core.db import alembic_config, make_engine, migrate


def test_old_accounts_get_a_conservative_proof(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0009")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO person (id, name, phone, language) VALUES"
                             " (1, '李强', '13900000001', 'zh'), (2, '居民', NULL, 'zh')"))
        conn.execute(sa.text(
            "INSERT INTO chat_identity (person_id, platform, external_id, unreachable) VALUES"
            " (1, 'wechat', 'o_maybe_typed', false), (1, 'telegram', '7001', false),"
            " (1, 'wecom', 'liqiang', false), (2, 'wechat', 'o_poster', false)"))
    migrate(engine)
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text("SELECT external_id, proof FROM chat_identity")).all())
    engine.dispose()
    # A WeChat account of a person with a phone may have come from the old typed-number
    # fallback: it acts as a resident only and never signs in until re-bound by an invite.
    assert got == {"o_maybe_typed": "legacy_phone", "7001": "legacy", "liqiang": "legacy",
                   "o_poster": "invite"}
