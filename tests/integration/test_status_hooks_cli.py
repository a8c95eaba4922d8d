"""The 12345 system files over Open311, reads the status back and receives the signed
webhook of each change; the operator's CLI sets, lists and removes hooks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.dispatcher.loop import Dispatcher
from bot.handlers.webhook.transport import WebhookTransport
from core.cases import actions
from core.db import session_scope
from core.open311 import hooks
from tests.casehelpers import do, get
from tests.fakes.timer import VirtualTime
from tests.integration.test_cli_import import linzhang, set_up_city
from tests.open311site import N1_POINT, Site, open311_site
from tests.support.hook_receiver import Receiver, receiving
from tests.support.open311_client import GeoReport


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def site(engine: Engine, vt: VirtualTime, tmp_path: Path) -> Iterator[Site]:
    with open311_site(engine, vt, tmp_path) as s:
        yield s


def deliver(engine: Engine, vt: VirtualTime) -> None:
    async def go() -> None:
        transport = WebhookTransport(timeout=5)
        try:
            stats = await Dispatcher(engine=engine, transport=transport, clock=vt, timer=vt
                                     ).drain(max_seconds=600)
            assert stats.errors == []
        finally:
            await transport.close()

    asyncio.run(go())


def test_the_hotline_reads_the_status_and_receives_each_change_signed(
        site: Site, engine: Engine, vt: VirtualTime) -> None:
    r = Receiver(500)  # its first answer is a hiccup: retried, nothing lost
    with receiving(r) as url:
        with session_scope(engine) as s:
            secret = hooks.set_hook(s, client="12345热线", url=url, scope_wide=False,
                                    now=vt.now())
        client = GeoReport(site.base, site.town_key, fmt="json")
        services = {x["service_name"]: x["service_code"] for x in client.services()}
        sid = client.post_request(service_code=services["公共设施"], lat=str(N1_POINT[0]),
                                  long=str(N1_POINT[1] + 0.0005),
                                  description="路灯不亮了")["service_request_id"]
        vt.advance(timedelta(minutes=30))
        do(engine, actions.reply, clock=vt, case_id=int(sid), person_id=site.city["leader1"],
           version=get(engine, int(sid)).version, text="明天上午来修")
        vt.advance(timedelta(hours=20))
        do(engine, actions.resolve, clock=vt, case_id=int(sid),
           person_id=site.city["leader1"], version=get(engine, int(sid)).version,
           note="已换灯泡")
        deliver(engine, vt)
    assert client.request(sid)["status"] == "closed"
    got = [p.json for p in r.accepted]
    assert all(p.signed_with(secret) for p in r.accepted)
    assert [(b["seq"], b["status"]) for b in got] == [
        (1, "open"), (2, "open"), (3, "open"), (4, "closed")]
    # The webhook says what GET servicerequestupdates says, update for update.
    ups = client.updates()
    assert [(b["update_id"], b["update_status"], b["description"], b["updated_datetime"])
            for b in got[1:]] == [
        (u["update_id"], u["status"], u["description"] or "", u["updated_datetime"])
        for u in ups]


def test_the_cli_sets_lists_and_removes_hooks(tmp_path: Path) -> None:
    set_up_city(tmp_path)
    made = linzhang(tmp_path, "open311", "key", "create", "--name", "12345",
                    "--scope", "341602001")
    assert made.returncode == 0, made.stderr
    for bad in ("ftp://example.org/hook", "example.org/hook", "http://", "javascript:alert(1)"):
        r = linzhang(tmp_path, "open311", "hook", "set", "--client", "12345", "--url", bad)
        assert r.returncode == 1 and "http:// or https://" in r.stderr and not r.stdout, bad
    unknown = linzhang(tmp_path, "open311", "hook", "set", "--client", "nobody",
                       "--url", "https://example.org/hook")
    assert unknown.returncode == 1 and "nobody" in unknown.stderr
    ok = linzhang(tmp_path, "open311", "hook", "set", "--client", "12345",
                  "--url", "https://12345.example.org/linzhang", "--scope-wide")
    assert ok.returncode == 0, ok.stderr
    secret = ok.stdout.strip()
    assert secret.startswith("lzwh_") and "not shown again" in ok.stderr
    listed = linzhang(tmp_path, "open311", "hook", "list")
    assert listed.returncode == 0
    assert "12345\thttps://12345.example.org/linzhang\tscope-wide" in listed.stdout
    assert secret not in listed.stdout and secret[5:15] not in listed.stdout
    with closing(sqlite3.connect(tmp_path / "city.db")) as db:
        [(stored,)] = db.execute("SELECT secret FROM open311_hook").fetchall()
    assert stored == secret  # kept as handed out, to sign with (README, "Status webhooks")
    assert linzhang(tmp_path, "open311", "hook", "remove", "--client", "12345").returncode == 0
    again = linzhang(tmp_path, "open311", "hook", "remove", "--client", "12345")
    assert again.returncode == 1 and "no webhook" in again.stderr

