"""Notices on both databases, through the services, the flows (bot/dispatch) and the sweep:
refusals that leave nothing half-sent, receipts read from the outbox, the households a 邻长
is asked to pass it on to, the typed "收到" / "1" rule, and quiet hours for the re-ping."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.dispatch import process
from bot.flows.types import Inbound
from core import outbox
from core.cases.policy import CasePolicy
from core.clock import FakeClock
from core.db import session_scope, write_session
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.queries import actor, node_by_code
from core.notices import services
from core.notices.audience import relay_households
from core.notices.sweep import run_notice_sweep
from core.settings import Settings
from tests.support.demo_city import GROUP1, LIN1, VILLAGE1, holder_of, load_demo

_ids = itertools.count(1)
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def city(engine: Engine) -> Engine:
    load_demo(engine)
    return engine


def rows(engine: Engine) -> tuple[int, int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(  # type: ignore[return-value]
            "SELECT (SELECT count(*) FROM notice), (SELECT count(*) FROM notice_recipient),"
            " (SELECT count(*) FROM notice_event),"
            " (SELECT count(*) FROM outbox WHERE kind LIKE 'notice%')")).one())


def send(engine: Engine, clock: FakeClock, *, who: int | None, node: str = VILLAGE1,
         audience: tuple[str, ...] = ("neighbor_leader",), text: str = "周六大扫除",
         confirm: bool = True, deadline: datetime | None = None) -> services.Sent:
    with write_session(engine) as s:
        return services.send(
            s, who=actor(s, who) if who else None, node=node_by_code(s, node),
            audience=audience, text=text, confirm=confirm,
            deadline=deadline or clock.now() + timedelta(hours=8), now=clock.now(),
            reping=timedelta(hours=4), policy=CasePolicy())


@pytest.mark.parametrize(("kw", "error", "key"), [
    ({"text": "   "}, InvalidInput, "notice_text_empty"),
    ({"text": "x" * 2001}, InvalidInput, "notice_text_long"),
    ({"deadline": datetime(2020, 1, 1, tzinfo=UTC)}, InvalidInput, "notice_deadline_past"),
    ({"audience": ()}, InvalidInput, "notice_audience_empty"),
    ({"audience": ("secretary",)}, InvalidInput, "notice_audience_role"),
    ({"audience": ("mayor",)}, InvalidInput, "notice_audience_role"),
    # A 邻 has no 组长 below it: an audience with nobody in it sends nothing.
    ({"node": LIN1, "audience": ("group_leader",)}, InvalidInput, "notice_nobody"),
    ({"node": "341602002"}, NotFound, "node_code_unknown"),
])
def test_bad_input_is_refused_whole(city: Engine, clock: FakeClock, kw: dict[str, Any],
                                    error: type[Exception], key: str) -> None:
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    before = rows(city)
    with pytest.raises(error) as exc:
        send(city, clock, who=sec, **kw)
    if key:
        assert getattr(exc.value, "key", None) == key
    assert rows(city) == before


def test_scope_is_the_senders_own_subtree(city: Engine, clock: FakeClock) -> None:
    group_leader = holder_of(city, "group_leader", GROUP1).person_id
    neighbor_leader = holder_of(city, "neighbor_leader", LIN1).person_id
    before = rows(city)
    with pytest.raises(PermissionDenied):
        send(city, clock, who=group_leader, node=VILLAGE1)  # above their 组
    with pytest.raises(PermissionDenied):
        send(city, clock, who=neighbor_leader, node=LIN1, audience=("resident",))
    assert rows(city) == before
    sent = send(city, clock, who=group_leader, node=GROUP1)
    assert sent.recipients >= 1 and set(sent.by_role) == {"neighbor_leader"}


def test_receipts_follow_the_outbox_and_the_presses(city: Engine, clock: FakeClock) -> None:
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    sent = send(city, clock, who=sec)
    with city.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text(
            "SELECT id FROM outbox WHERE dedupe_key LIKE :k ORDER BY id"),
            {"k": f"notice{sent.notice_id}:p%"})]
        people = [int(x) for x in conn.execute(sa.text(
            "SELECT person_id FROM notice_recipient WHERE notice_id = :n ORDER BY id"),
            {"n": sent.notice_id}).scalars()]
    assert len(ids) == sent.recipients == len(people)
    with write_session(city) as s:
        for i in ids[:-1]:
            outbox.mark_sent(s, message_id=i, now=clock.now())
        outbox.mark_failed(s, message_id=ids[-1], now=clock.now(), error="403",
                           permanent=True)
        assert services.confirm(s, notice_id=sent.notice_id, person_id=people[0],
                                via="telegram", now=clock.now())
        assert not services.confirm(s, notice_id=sent.notice_id, person_id=people[0],
                                    via="telegram", now=clock.now())
        with pytest.raises(PermissionDenied):
            services.confirm(s, notice_id=sent.notice_id, person_id=sec, via="web",
                             now=clock.now())
    with session_scope(city) as s:
        st = services.status(s, notice_id=sent.notice_id, viewer_scopes=None)
        village = node_by_code(s, VILLAGE1)
        with pytest.raises(NotFound):  # outside the viewer's scope: as if it did not exist
            services.status(s, notice_id=sent.notice_id,
                            viewer_scopes=[node_by_code(s, GROUP1)])
    t = st.totals
    assert (t.recipients, t.delivered, t.confirmed, t.unreachable) == (
        len(people), len(people) - 1, 1, 1)
    assert sum(c.recipients for _k, c in st.children) == len(people)
    assert all(k.parent_id == village.id for k, _c in st.children)


def test_a_press_after_the_deadline_is_refused(city: Engine, clock: FakeClock) -> None:
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    sent = send(city, clock, who=sec, deadline=clock.now() + timedelta(hours=1))
    with session_scope(city) as s:
        someone = int(s.execute(sa.text("SELECT person_id FROM notice_recipient LIMIT 1"))
                      .scalar_one())
    clock.advance(timedelta(hours=1, seconds=1))
    with write_session(city) as s, pytest.raises(Conflict):
        services.confirm(s, notice_id=sent.notice_id, person_id=someone, via="web",
                         now=clock.now())
    run_notice_sweep(city, clock=clock)
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT state FROM notice")).scalar_one() == "closed"
        assert conn.execute(sa.text("SELECT count(confirmed_at) FROM notice_recipient")
                            ).scalar_one() == 0


def test_residents_without_a_chat_are_relayed_by_their_neighbor_leader(
        city: Engine, clock: FakeClock) -> None:
    lz = holder_of(city, "neighbor_leader", LIN1).person_id
    with session_scope(city) as s:
        homes = relay_households(s, node=node_by_code(s, LIN1))
        residents = s.execute(sa.text(
            "SELECT count(DISTINCT coalesce(x.address, 'p' || x.person_id)) FROM post x"
            " JOIN node n ON n.id = x.node_id WHERE n.code = :c AND x.role = 'resident'"),
            {"c": LIN1}).scalar_one()
    assert lz in homes and len(homes[lz]) == residents > 0
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    with session_scope(city) as s:
        shown = services.preview(s, who=actor(s, sec), node=node_by_code(s, VILLAGE1),
                                 audience=("resident",))
    sent = send(city, clock, who=sec, audience=("resident",))
    assert sent.relay_households >= residents
    # The count shown before sending is the count sent (two readings of one rule).
    assert (shown.recipients, shown.by_role, shown.relay_households) == (
        sent.recipients, sent.by_role, sent.relay_households)
    with city.connect() as conn:
        text = conn.execute(sa.text("SELECT text FROM outbox WHERE person_id = :p AND"
                                    " kind = 'notice'"), {"p": lz}).scalar_one()
    assert f"请转达{len(homes[lz])}户" in text


def inbound(engine: Engine, clock: FakeClock, external: str, text: str) -> list[str]:
    uid = f"u{next(_ids)}"
    msg = Inbound(platform="wechat", update_id=uid, chat_id=external, sender_id=external,
                  received_at=clock.now(), text=text, message_id=uid)
    assert process(engine, inbound=msg, payload={"MsgId": uid}, clock=clock, settings=SETTINGS)
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT text FROM outbox WHERE dedupe_key LIKE :k"
                                         " ORDER BY id"), {"k": f"in:wechat:{uid}:%"}).scalars())


def test_typed_1_waits_when_a_case_asks_fixed(city: Engine, clock: FakeClock) -> None:
    """"收到" always confirms; "1" confirms unless a case of theirs waits for "fixed?"."""
    from core.cases import actions
    from core.cases import services as cases
    from tests.casehelpers import do

    resident = holder_of(city, "resident", LIN1)
    lz = holder_of(city, "neighbor_leader", LIN1).person_id
    with city.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'wechat', 'oRES1', false)"),
                     {"p": resident.person_id})
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    send(city, clock, who=sec, node=LIN1, audience=("resident",))
    with write_session(city) as s:
        opened = cases.open_case(s, clock=clock, settings=SETTINGS,
                                 resident_id=resident.person_id, text="路灯不亮", via="wechat")
        case_id, version = opened.id, opened.version
    do(city, actions.resolve, clock=clock, case_id=case_id, person_id=lz, version=version)
    replies = inbound(city, clock, "oRES1", "1")
    assert any("收到" in r and f"工单#{case_id}" in r for r in replies), replies
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(confirmed_at) FROM notice_recipient")
                            ).scalar_one() == 0
        assert conn.execute(sa.text("SELECT state FROM cases WHERE id = :c"),
                            {"c": case_id}).scalar_one() == "resolved"
    assert any("已确认收到" in r for r in inbound(city, clock, "oRES1", "收到"))
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(confirmed_at) FROM notice_recipient")
                            ).scalar_one() == 1


def test_typed_1_confirms_when_nothing_else_asks(city: Engine, clock: FakeClock) -> None:
    lz = holder_of(city, "neighbor_leader", LIN1).person_id
    with city.begin() as conn:
        conn.execute(sa.text("INSERT INTO chat_identity (person_id, platform, external_id,"
                             " unreachable) VALUES (:p, 'wechat', 'oLZ1', false)"), {"p": lz})
    send(city, clock, who=holder_of(city, "secretary", VILLAGE1).person_id)
    assert any("已确认收到" in r for r in inbound(city, clock, "oLZ1", "1"))
    # With nothing waiting any more, "1" is ordinary words again (not a receipt).
    assert not any("确认" in r for r in inbound(city, clock, "oLZ1", "1"))


def test_the_reping_waits_for_the_end_of_quiet_hours(city: Engine) -> None:
    # 20:00 in Shanghai: the re-ping falls due at 00:00, in quiet hours (22:00–07:00).
    clock = FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    sent = send(city, clock, who=sec, deadline=clock.now() + timedelta(hours=20))
    clock.advance(timedelta(hours=4, minutes=1))
    assert run_notice_sweep(city, clock=clock).repinged == 0
    with city.connect() as conn:
        due = conn.execute(sa.text("SELECT next_due_at FROM notice")).scalar_one()
        assert conn.execute(sa.text("SELECT count(*) FROM outbox WHERE kind ="
                                    " 'notice_reping'")).scalar_one() == 0
    due = due if isinstance(due, datetime) else datetime.fromisoformat(str(due))
    assert due.replace(tzinfo=UTC) == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 07:00 local
    clock.set(datetime(2026, 11, 23, 23, 0, 1, tzinfo=UTC))
    assert run_notice_sweep(city, clock=clock).repinged == 1
    assert run_notice_sweep(city, clock=clock).repinged == 0  # once only
    with city.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outbox WHERE kind ="
                                    " 'notice_reping'")).scalar_one() == sent.recipients


def test_the_api_refuses_bad_input_whole(city: Engine, clock: FakeClock, db_url: str,
                                         tmp_path: Any) -> None:
    import httpx

    from core import accounts
    from core.container import build_container
    from tests.support.server import serve
    from webhooks.app import create_app

    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=city),
                     run_jobs=False)
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    with session_scope(city) as s:
        token = accounts.issue_login_token(s, person_id=sec, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    good = {"node_code": VILLAGE1, "audience": ["neighbor_leader"], "text": "停水通知",
            "confirm": True, "deadline": (clock.now() + timedelta(hours=5)).isoformat()}
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as b:
        assert b.get(f"/login/{token}").status_code == 303
        h = {"X-CSRF-Token": b.get("/api/me").json()["csrf_token"]}
        before = rows(city)
        for change, words in (({"text": " "}, "不能为空"),
                              ({"deadline": "2020-01-01T00:00:00+08:00"}, "已经过去"),
                              ({"deadline": "2026-12-30T18:00:00"}, "时区"),
                              ({"node_code": LIN1, "audience": ["group_leader"]}, "没有这类人员"),
                              ({"audience": []}, "至少选择"),
                              ({"photo": "ab/cd/abcd1234.jpg"}, "")):
            r = b.post("/api/notices", json={**good, **change}, headers=h)
            assert r.status_code == 422, (change, r.text)
            assert words in r.text, (change, r.text)
        assert rows(city) == before
        assert b.post("/api/notices", json=good).status_code == 403  # no CSRF token
        r = b.post("/api/notices", json=good, headers=h)
        assert r.status_code == 200, r.text
        got = b.get(f"/api/notices/{r.json()['id']}").json()
        assert got["totals"]["recipients"] == r.json()["recipients"] > 0
        assert got["state"] == "open" and got["confirm"] is True
        assert b.get("/api/notices/999999").status_code == 404


def test_the_roster_names_each_recipient_and_the_export_lists_them(
        city: Engine, clock: FakeClock, db_url: str, tmp_path: Any) -> None:
    import io

    import httpx
    from openpyxl import load_workbook

    from core import accounts
    from core.container import build_container
    from tests.support.server import serve
    from webhooks.app import create_app

    sec = holder_of(city, "secretary", VILLAGE1).person_id
    sent = send(city, clock, who=sec)
    with city.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text(
            "SELECT id FROM outbox WHERE dedupe_key LIKE :k ORDER BY id"),
            {"k": f"notice{sent.notice_id}:p%"})]
        first = conn.execute(sa.text(
            "SELECT r.person_id, p.name FROM notice_recipient r JOIN person p"
            " ON p.id = r.person_id WHERE r.notice_id = :n ORDER BY r.id LIMIT 1"),
            {"n": sent.notice_id}).one()
    with write_session(city) as s:
        for i in ids[:-1]:
            outbox.mark_sent(s, message_id=i, now=clock.now())
        outbox.mark_failed(s, message_id=ids[-1], now=clock.now(), error="403",
                           permanent=True)
        services.confirm(s, notice_id=sent.notice_id, person_id=first.person_id,
                         via="telegram", now=clock.now())
    with session_scope(city) as s:
        people = services.roster(s, notice_id=sent.notice_id, viewer_scopes=None)
        with pytest.raises(NotFound):
            services.roster(s, notice_id=sent.notice_id, viewer_scopes=[node_by_code(s, GROUP1)])
    states = [p.state for p in people]
    assert len(people) == sent.recipients
    assert (states.count("confirmed"), states.count("unreachable"),
            states.count("waiting")) == (1, 1, sent.recipients - 2)
    assert next(p for p in people if p.state == "confirmed").name == first.name

    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=city),
                     run_jobs=False)
    with session_scope(city) as s:
        token = accounts.issue_login_token(s, person_id=sec, now=clock.now(),
                                           ttl=timedelta(minutes=15))
        # The other community's 书记: a dashboard of their own, not this notice.
        neighbour = holder_of(city, "secretary", "341602001002").person_id
        other = accounts.issue_login_token(s, person_id=neighbour, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    path = f"/dashboard/notices/{sent.notice_id}/export.xlsx"
    with serve(app) as url:
        with httpx.Client(base_url=url, timeout=30) as anonymous:
            assert anonymous.get(path).status_code in (303, 401)
        with httpx.Client(base_url=url, timeout=30) as b:
            assert b.get(f"/login/{token}").status_code == 303
            html = b.get(f"/dashboard/notices/{sent.notice_id}").text
            assert "导出名单" in html and 'http-equiv="refresh"' in html  # open: reloads
            r = b.get(path)
            assert r.status_code == 200, r.text
            assert "attachment" in r.headers["content-disposition"]
        with httpx.Client(base_url=url, timeout=30) as g:
            assert g.get(f"/login/{other}").status_code == 303
            assert g.get(path).status_code == 404
    book = load_workbook(io.BytesIO(r.content), read_only=True)
    summary = [list(x) for x in book["回执"].iter_rows(values_only=True)]
    names = [list(x) for x in book["名单"].iter_rows(values_only=True)]
    assert summary[1][:5] == ["合计", sent.recipients, sent.recipients - 1, 1, 1]
    assert names[0][:4] == ["姓名", "岗位", "所在", "状态"]
    assert len(names) == sent.recipients + 1
    confirmed = [x for x in names if x[3] == "已确认"]
    assert [x[0] for x in confirmed] == [first.name] and confirmed[0][5] == "Telegram"
    assert sum(x[3] == "联系不上" for x in names) == 1


def test_the_dashboard_form_sends_a_photo_and_a_document_or_nothing(
        city: Engine, clock: FakeClock, db_url: str, tmp_path: Any) -> None:
    import io
    import json
    import re

    import httpx
    from PIL import Image

    from core import accounts
    from core.container import build_container
    from core.media.store import MediaStore
    from tests.support.server import serve
    from webhooks.app import create_app

    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=city),
                     run_jobs=False)
    sec = holder_of(city, "secretary", VILLAGE1).person_id
    with session_scope(city) as s:
        token = accounts.issue_login_token(s, person_id=sec, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PNG")
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    fields = {"node_code": VILLAGE1, "audience": "neighbor_leader", "text": "防汛值班表见附件",
              "confirm": "1"}
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as b:
        assert b.get(f"/login/{token}").status_code == 303
        form = b.get("/dashboard/notices").text
        assert 'enctype="multipart/form-data"' in form and 'name="photo"' in form
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        before = rows(city)
        # A "photo" that is not one: refused with a sentence, nothing sent.
        r = b.post("/dashboard/notices", data={**fields, "csrf": csrf},
                   files={"photo": ("x.jpg", b"not an image at all", "image/jpeg")})
        assert r.status_code == 303 and "msg=" in r.headers["location"]
        assert rows(city) == before
        r = b.post("/dashboard/notices", data={**fields, "csrf": csrf},
                   files={"photo": ("duty.png", buf.getvalue(), "image/png"),
                          "document": ("值班表.pdf", pdf, "application/pdf")})
        assert r.status_code == 303 and "/dashboard/notices/" in r.headers["location"], r.text
    with city.connect() as conn:
        photo, document = conn.execute(sa.text(
            "SELECT photo, document FROM notice ORDER BY id DESC LIMIT 1")).one()
        options = [o for o in conn.execute(sa.text(
            "SELECT options FROM outbox WHERE kind LIKE 'notice%'")).scalars()]
    assert photo and document and document.endswith(".pdf")
    store = MediaStore.from_settings(st)
    assert store.exists(photo) and store.open(document) == pdf
    decoded = [o if isinstance(o, dict) else json.loads(o) for o in options]
    assert decoded and all(o.get("photo") == photo for o in decoded)
