"""Signing in to the demo: `linzhang demo` prints ready links for its three people, `linzhang
set-password --db` works on the demo's database, the login page offers the three people in
demo mode only, and the chat's /login link is a link to the address the server serves on."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.clock import FakeClock
from core.container import build_container
from core.db import make_engine, migrate
from core.settings import Settings
from linzhang import cli
from tests.e2e.test_dashboard_browser import _chromium_or_skip
from tests.support.demo_city import TOWN, holder_of, load_demo
from tests.support.server import free_port, serve
from webhooks.app import create_app

LINK = re.compile(r"^  (\S+) (\S+): (http://\S+/login/\S+)$", re.MULTILINE)


def _app_on(db: Path, tmp_path: Path, **extra: Any) -> Any:
    st = Settings(_env_file=None, database_url=f"sqlite:///{db}",  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), **extra)
    engine = make_engine(st.database_url)
    migrate(engine)
    return create_app(st, container=build_container(st, clock=FakeClock(), engine=engine),
                      run_jobs=False), engine


def test_demo_prints_sign_in_links_and_set_password_works_on_its_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")  # not the demo's
    port = free_port()
    assert cli.main(["demo", "--db", "demo.db", "--port", str(port), "--no-serve"]) == 0
    out = capsys.readouterr().out
    links = LINK.findall(out)
    assert [label for label, _, _ in links] == ["社区书记", "街道管理员", "区管理员"]
    assert all(url.startswith(f"http://127.0.0.1:{port}/login/") for _, _, url in links)
    assert "linzhang set-password --db demo.db" in out

    phone = "13900000002"  # the town admin of core/demo/members.csv
    monkeypatch.setattr("sys.stdin", io.StringIO("演示密码demo123\n"))
    assert cli.main(["set-password", "--db", "demo.db", "--password-stdin", phone]) == 0
    assert not (tmp_path / "other.db").exists()

    app, engine = _app_on(tmp_path / "demo.db", tmp_path)
    try:
        with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            r = http.post("/login", data={"phone": phone, "password": "演示密码demo123"})
            assert r.status_code == 303 and r.headers["location"] == "/dashboard"
            page = http.get("/dashboard")
            assert page.status_code == 200 and "张娟" in page.text
        with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            # A printed link signs its person in too (the path, on this test's server).
            path = links[2][2].split(f":{port}", 1)[1]
            r = http.get(path)
            assert r.status_code == 303
            assert links[2][1] in http.get("/dashboard").text
    finally:
        engine.dispose()


def test_the_login_page_offers_the_three_demo_people_only_in_demo_mode(tmp_path: Path) -> None:
    for demo in (True, False):
        db = tmp_path / f"{demo}.db"
        app, engine = _app_on(db, tmp_path, demo_mode=demo)
        load_demo(engine)
        try:
            with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
                page = http.get("/login").text
                hrefs = re.findall(r'<a class="button demo-login" href="(/login/[^"]+)">', page)
                if not demo:
                    assert hrefs == [] and "demo-login" not in page
                    continue
                assert len(hrefs) == 3
                names = []
                for href in hrefs:
                    with httpx.Client(base_url=url, timeout=30) as one:
                        r = one.get(href)
                        assert r.status_code == 303, r.text
                        names.append(one.get("/dashboard").text)
                admin = holder_of(engine, "admin", TOWN)
                assert admin.name in names[1]
                assert http.get(hrefs[0]).status_code == 403  # each link works once
        finally:
            engine.dispose()


def test_the_chat_login_answer_is_a_link_to_the_public_url(tmp_path: Path) -> None:
    _chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.e2e.test_dashboard_browser import ARGS, CHROMIUM

    port = free_port()
    public = f"http://127.0.0.1:{port}"
    app, engine = _app_on(tmp_path / "app.db", tmp_path, demo_mode=True, public_url=public,
                          port=port + 1)  # PUBLIC_URL wins over the listening port
    load_demo(engine)
    admin = holder_of(engine, "admin", TOWN)
    try:
        with serve(app, port=port) as url, sync_api.sync_playwright() as p:
            assert url == public
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                context = browser.new_context(viewport={"width": 390, "height": 844})
                chat = context.new_page()
                chat.goto(f"{url}/chat?as={admin.person_id}")
                chat.fill("#text", "/login")
                chat.click("#send")
                link = chat.locator(f'.msg.outbound a[href^="{public}/login/"]')
                link.wait_for(timeout=10_000)
                assert link.inner_text() == link.get_attribute("href")
                with context.expect_page() as opened:
                    link.click()
                dash = opened.value
                dash.wait_for_load_state()
                assert dash.url == f"{public}/dashboard"
                assert admin.name in dash.content()
            finally:
                browser.close()
    finally:
        engine.dispose()
