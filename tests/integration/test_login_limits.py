"""Dashboard sign-in limits over real HTTP count a phone number however it is written, and
input that is no number at all under one key per address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from core import accounts
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.settings import Settings
from tests.cityfactory import build_city
from tests.support.server import serve
from webhooks.app import create_app

SPELLINGS = ["+86 139-0000-0004", "0086 139 0000 0004", "139-0000-0004", "(139) 0000 0004",
             "＋８６ １３９０００００００４"]


@pytest.fixture
def dash(engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[str]:
    city = build_city(engine)
    with session_scope(engine) as s:
        accounts.set_password(s, person_id=city["secretary"], password="shuji-2026",
                              now=clock.now(), by=None)
    settings = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                        media_dir=str(tmp_path / "media"))
    container = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, clock=clock, container=container, run_jobs=False)) as url:
        yield url


def test_spellings_of_one_number_share_its_tries(dash: str) -> None:
    with httpx.Client(base_url=dash, follow_redirects=False, timeout=30) as b:
        for spelling in SPELLINGS:
            r = b.post("/login", data={"phone": spelling, "password": "guess-guess"})
            assert r.status_code == 403, (spelling, r.status_code)
        # Locked: neither the plain number nor another spelling signs in, even rightly.
        for spelling in ("13900000004", "139 0000 0004"):
            r = b.post("/login", data={"phone": spelling, "password": "shuji-2026"})
            assert r.status_code == 429 and "尝试次数过多" in r.text
        assert b.get("/api/me").status_code == 401


def test_full_width_digits_sign_in_as_the_same_number(dash: str) -> None:
    with httpx.Client(base_url=dash, follow_redirects=False, timeout=30) as b:
        r = b.post("/login", data={"phone": "１３９００００ ０００４", "password": "shuji-2026"})
        assert r.status_code == 303


def test_input_that_is_no_number_counts_under_one_key_per_address(dash: str) -> None:
    with httpx.Client(base_url=dash, follow_redirects=False, timeout=30) as b:
        for junk in ("abc", "12345", "١٣٩٠٠٠٠٠٠٠٤", "+1 555 0100", "x" * 40):
            assert b.post("/login", data={"phone": junk, "password": "p" * 8}
                          ).status_code == 403
        assert b.post("/login", data={"phone": "zzz", "password": "p" * 8}).status_code == 429
        # A real number from the same address still has its own tries.
        assert b.post("/login", data={"phone": "13900000004", "password": "shuji-2026"}
                      ).status_code == 303
