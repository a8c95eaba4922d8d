"""A 邻长's checklist as a web page, on both databases over real HTTP: the WeCom card's link
opens their own households; a tap writes what a chat press writes; 已搬离 and 有新增人员 reach
the registry as in chat; another 邻长's link, a forged, expired or closed one, and a POST
without the page's form value change nothing; the link never reaches a log line."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.dispatch import process
from bot.dispatcher.loop import Stats
from bot.dispatcher.once import pass_once
from bot.flows.types import Inbound, Press
from bot.handlers.wecom.transport import WeComTransport
from core.campaigns import links, marking
from core.campaigns.model import Campaign
from core.campaigns.services import close_campaign, start_campaign
from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.model import ChatIdentity
from core.hierarchy.queries import node_by_code
from core.logs import configure_logging
from core.settings import Settings
from tests.fakes.wechat_api import FakeWeChatApi
from tests.support.demo_city import GROUP1, LIN1, holder_of, load_demo
from tests.support.server import free_port, serve
from webhooks.app import create_app

LIN2 = GROUP1 + "002"
LIN1_HOMES = ["幸福社区3号楼101室", "幸福社区3号楼202室", "幸福社区3号楼303室"]
LIN2_HOMES = ["幸福社区4号楼101室", "幸福社区4号楼202室", "幸福社区4号楼303室"]
FORM = re.compile(r'name="form" value="([^"]+)"')
_ids = itertools.count(1)


@pytest.fixture
def site(engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock
         ) -> Iterator[dict[str, Any]]:
    load_demo(engine)
    leader1 = holder_of(engine, "neighbor_leader", LIN1)
    leader2 = holder_of(engine, "neighbor_leader", LIN2)
    with session_scope(engine) as s:
        for who, userid in ((leader1, "wc-lin1"), (leader2, "wc-lin2")):
            s.add(ChatIdentity(person_id=who.person_id, platform="wecom", external_id=userid))
        c = start_campaign(s, node_id=node_by_code(s, GROUP1).id, title="敲门行动",
                           instructions="逐户核对", outcomes=None,
                           deadline=clock.now() + timedelta(hours=8), started_by=None,
                           clock=clock)
    port = free_port()
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"), public_url=f"http://127.0.0.1:{port}")
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    with serve(app, port=port) as url, httpx.Client(base_url=url, timeout=30,
                                                   follow_redirects=False) as http:
        yield {"engine": engine, "clock": clock, "settings": st, "http": http, "url": url,
               "campaign": c.id, "leader1": leader1, "leader2": leader2, "tmp": tmp_path}


def _chat(site: dict[str, Any], userid: str, **fields: Any) -> list[dict[str, Any]]:
    """One WeCom message through the flows; the outbox rows it made."""
    uid = str(next(_ids))
    inbound = Inbound(platform="wecom", update_id=uid, chat_id=userid, sender_id=userid,
                      received_at=site["clock"].now(), **fields)
    assert process(site["engine"], inbound=inbound, payload={"id": uid}, clock=site["clock"],
                   settings=site["settings"])
    with site["engine"].connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT * FROM outbox WHERE dedupe_key LIKE :k ORDER BY id"),
            {"k": f"in:wecom:{uid}:%"}).mappings()]


def _link(site: dict[str, Any], who: str = "leader1") -> str:
    """The link a 邻长's checklist card carries, made by the flow (typed 摸排 on WeCom)."""
    userid = "wc-lin1" if who == "leader1" else "wc-lin2"
    rows = _chat(site, userid, text="摸排")
    with Session(site["engine"]) as s:
        from core.outbox import OutboxMessage

        opts = [s.get(OutboxMessage, r["id"]).options for r in rows]  # type: ignore[union-attr]
    [url] = [o["link_url"] for o in opts if o and o.get("link_url")]
    assert url.startswith(site["url"] + "/checklist/")
    return str(url)[len(site["url"]):]


def _items(site: dict[str, Any], code: str) -> list[marking.Item]:
    with Session(site["engine"]) as s:
        return marking.items_of(s, campaign_id=site["campaign"],
                                node_ids=[node_by_code(s, code).id])


def _form(site: dict[str, Any], path: str) -> str:
    page = site["http"].get(path)
    assert page.status_code == 200, page.text
    return FORM.findall(page.text)[0]


def _post(site: dict[str, Any], path: str, what: str, **fields: Any) -> httpx.Response:
    return site["http"].post(f"{path}/{what}", data={k: str(v) for k, v in fields.items()})


def _item_rows(site: dict[str, Any]) -> list[tuple[Any, ...]]:
    with site["engine"].connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT id, outcome, marked_by, note FROM campaign_item ORDER BY id"))]


def _counts(site: dict[str, Any]) -> list[tuple[Any, ...]]:
    with site["engine"].connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT node_id, outcome, n FROM campaign_count ORDER BY node_id, outcome"))]


def test_the_wecom_card_links_to_the_leaders_own_list(site: dict[str, Any]) -> None:
    uid = str(next(_ids))
    inbound = Inbound(platform="wecom", update_id=uid, chat_id="wc-lin1", sender_id="wc-lin1",
                      received_at=site["clock"].now(), text="摸排")
    assert process(site["engine"], inbound=inbound, payload={"id": uid}, clock=site["clock"],
                   settings=site["settings"])
    with FakeWeChatApi("wecom", site["clock"]) as api:
        st = site["settings"].model_copy(update={
            "wecom_corp_id": "ww1", "wecom_agent_id": "1", "wecom_secret": SecretStr("s"),
            "wecom_api_base": api.base_url})
        sender = WeComTransport(engine=site["engine"], settings=st, clock=site["clock"])
        for _ in range(10):
            if not asyncio.run(pass_once(site["engine"], sender=sender, clock=site["clock"],
                                         stats=Stats())):
                break
        cards = [m.body["template_card"] for m in api.sent_to("wc-lin1")
                 if m.msgtype == "template_card" and "card_action" in m.body["template_card"]]
    [card] = cards
    [line] = card["horizontal_content_list"]
    assert line["type"] == 1 and len(line["keyname"]) <= 5 and len(line["value"]) <= 26
    assert card["card_action"] == {"type": 1, "url": line["url"]}
    assert line["url"].startswith(site["url"] + "/checklist/")
    page = site["http"].get(line["url"][len(site["url"]):])
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert all(a in page.text for a in LIN1_HOMES)
    assert not any(a in page.text for a in LIN2_HOMES)  # scope: only their 邻
    assert "已登记 <strong>0/3</strong>" in page.text


def test_a_tap_on_the_page_writes_what_a_chat_press_writes(site: dict[str, Any]) -> None:
    path = _link(site)
    form = _form(site, path)
    a, b, _ = _items(site, LIN1)
    r = _post(site, path, "mark", form=form, item=a.id, outcome=0)
    assert r.status_code == 303 and r.headers["location"].startswith(path)
    r = _post(site, path, "mark", form=form, item=b.id, outcome=1, note="晚上再来")
    assert r.status_code == 303
    page = site["http"].get(r.headers["location"])
    assert "已保存：幸福社区3号楼202室 — 不在家" in page.text
    assert "已登记 <strong>2/3</strong>" in page.text
    # the same two outcomes pressed in chat, on the other 邻, by its own 邻长
    c, d, _ = _items(site, LIN2)
    for item, outcome in ((c, 0), (d, 1)):
        _chat(site, "wc-lin2", press=Press("cmp_mark", item.id, outcome))
    rows = {r[0]: r for r in _item_rows(site)}
    leader1, leader2 = site["leader1"].person_id, site["leader2"].person_id
    assert rows[a.id][1:3] == (0, leader1) and rows[b.id][1:] == (1, leader1, "晚上再来")
    assert rows[c.id][1:3] == (0, leader2) and rows[d.id][1:3] == (1, leader2)
    with Session(site["engine"]) as s:
        n1, n2 = node_by_code(s, LIN1).id, node_by_code(s, LIN2).id
    counts = _counts(site)
    assert [(o, n) for k, o, n in counts if k == n1] == [(o, n) for k, o, n in counts if k == n2]


def test_moved_and_newcomer_reach_the_registry_as_in_chat(site: dict[str, Any]) -> None:
    path = _link(site)
    form = _form(site, path)
    a, b, c = _items(site, LIN1)
    group_leader = holder_of(site["engine"], "group_leader", GROUP1)
    assert _post(site, path, "mark", form=form, item=a.id, outcome=3).status_code == 303
    bad = _post(site, path, "newcomer", form=form, item=b.id, name="钱多多", phone="12")
    assert bad.status_code == 422 and "手机号" in bad.text
    ok = _post(site, path, "newcomer", form=form, item=b.id, name="钱多多", phone="13811112222")
    assert ok.status_code == 303
    assert "等组长确认后加入名册" in site["http"].get(ok.headers["location"]).text
    # 有新增人员 as an outcome button would skip the name: refused, as in chat
    assert _post(site, path, "mark", form=form, item=c.id, outcome=4).status_code == 422
    with site["engine"].connect() as conn:
        moved = conn.execute(sa.text(
            "SELECT COUNT(*) FROM post WHERE address = :a AND moved_at IS NOT NULL"),
            {"a": a.address}).scalar_one()
        waiting = conn.execute(sa.text(
            "SELECT name, phone, state, reported_by FROM campaign_newcomer")).all()
        told = conn.execute(sa.text(
            "SELECT text FROM outbox WHERE person_id = :p"),
            {"p": group_leader.person_id}).scalars().all()
    assert moved == 1
    assert [tuple(w) for w in waiting] == [("钱多多", "13811112222", "pending",
                                            site["leader1"].person_id)]
    assert any("钱多多" in t for t in told)
    assert [r[1] for r in _item_rows(site) if r[0] in (a.id, b.id, c.id)] == [3, 4, None]


def test_another_leaders_link_neither_sees_nor_marks_these_households(
        site: dict[str, Any]) -> None:
    theirs = _link(site, "leader2")
    page = site["http"].get(theirs)
    assert not any(a in page.text for a in LIN1_HOMES)
    assert all(a in page.text for a in LIN2_HOMES)
    form = FORM.findall(page.text)[0]
    before = _item_rows(site)
    a = _items(site, LIN1)[0]
    r = _post(site, theirs, "mark", form=form, item=a.id, outcome=0)
    assert r.status_code == 403 and "不在您的清单里" in r.text
    # leader 1's form value does not open leader 2's link either
    mine = _link(site)
    r = _post(site, theirs, "mark", form=_form(site, mine), item=_items(site, LIN2)[0].id,
              outcome=0)
    assert r.status_code == 403
    assert _item_rows(site) == before


def test_forged_expired_and_other_campaign_links_store_nothing(site: dict[str, Any]) -> None:
    path = _link(site)
    form = _form(site, path)
    before = _item_rows(site)
    body, sig = path.rsplit(".", 1)
    forged = f"{body}.{'A' * 22}" if sig != "A" * 22 else f"{body}.{'B' * 22}"
    other_person = path.replace(f".{site['leader1'].person_id}.",
                                f".{site['leader2'].person_id}.", 1)
    for bad in (forged, other_person, "/checklist/nonsense", path + "x"):
        r = site["http"].get(bad)
        assert r.status_code in (403, 404), bad
        assert "无法打开清单" in r.text and "链接" in r.text
        r = _post(site, bad, "mark", form=form, item=_items(site, LIN1)[0].id, outcome=0)
        assert r.status_code in (403, 404)
    # a link signed for a campaign that does not exist
    with Session(site["engine"]) as s:
        key = links.signing_key(s, settings=site["settings"], now=site["clock"].now())
        real = s.get(Campaign, site["campaign"])
        assert real is not None
        gone = Campaign(id=987654, deadline_at=real.deadline_at)
        ghost = links.issue(key=key, campaign=gone, person_id=site["leader1"].person_id)
    r = site["http"].get(f"/checklist/{ghost}")
    assert r.status_code == 404 and "没有这个摸排任务" in r.text
    # a household of another campaign, through this campaign's link
    with session_scope(site["engine"]) as s:
        other = start_campaign(s, node_id=node_by_code(s, LIN1).id, title="第二轮",
                               instructions="", outcomes=None,
                               deadline=site["clock"].now() + timedelta(hours=2),
                               started_by=None, clock=site["clock"])
        assert other.id is not None
        stranger = marking.items_of(s, campaign_id=other.id,
                                    node_ids=[node_by_code(s, LIN1).id])[0]
    before = _item_rows(site)
    r = _post(site, path, "mark", form=form, item=stranger.id, outcome=0)
    assert r.status_code == 403
    assert _item_rows(site) == before
    # a day after the deadline the link is spent
    site["clock"].advance(timedelta(hours=8 + 24, minutes=1))
    r = site["http"].get(path)
    assert r.status_code == 403 and "过期" in r.text
    r = _post(site, path, "mark", form=form, item=_items(site, LIN1)[0].id, outcome=0)
    assert r.status_code == 403
    assert _item_rows(site) == before


def test_a_closed_campaign_is_shown_read_only(site: dict[str, Any]) -> None:
    path = _link(site)
    form = _form(site, path)
    with session_scope(site["engine"]) as s:
        close_campaign(s, campaign_id=site["campaign"], person_id=None, clock=site["clock"])
    before = _item_rows(site)
    page = site["http"].get(path)
    assert page.status_code == 200 and "已经结束，清单只能查看" in page.text
    assert "<form" not in page.text and all(a in page.text for a in LIN1_HOMES)
    r = _post(site, path, "mark", form=form, item=_items(site, LIN1)[0].id, outcome=0)
    assert r.status_code == 409 and "已经结束" in r.text
    assert _item_rows(site) == before


def test_a_post_without_the_pages_form_value_is_refused(site: dict[str, Any]) -> None:
    path = _link(site)
    form = _form(site, path)
    item = _items(site, LIN1)[0].id
    before = _item_rows(site)
    assert _post(site, path, "mark", item=item, outcome=0).status_code == 403
    assert _post(site, path, "mark", form=form[:-1] + "x", item=item, outcome=0
                 ).status_code == 403
    cross = site["http"].post(f"{path}/mark", data={"form": form, "item": item, "outcome": 0},
                              headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and "页面已失效" in cross.text
    assert _item_rows(site) == before
    assert _post(site, path, "mark", form=form, item=item, outcome=0).status_code == 303


def test_the_link_never_reaches_a_log_line(site: dict[str, Any]) -> None:
    path = _link(site)
    token = path.rsplit("/", 1)[1]
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(stream=buf, fmt="json")
        # what uvicorn's access log writes for the page and its POST, and a client's debug line
        access = logging.getLogger("tests.access")
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", f"{path}/mark",
                    "1.1", 303)
        logging.getLogger("wechatpy").warning("send %s", {"url": site["url"] + path})
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    text = buf.getvalue()
    assert token not in text and token.rsplit(".", 1)[1] not in text
    assert text.count("/checklist/***") == 3


def test_telegram_gets_a_url_button_on_the_first_page_with_a_public_https_address(
        site: dict[str, Any]) -> None:
    from bot.handlers.telegram.api import inline_keyboard
    from bot.handlers.telegram.parts import buttons_from_actions

    with session_scope(site["engine"]) as s:
        s.add(ChatIdentity(person_id=site["leader1"].person_id, platform="telegram",
                           external_id="7001"))
    uid = str(next(_ids))

    def first_page(settings: Settings) -> dict[str, Any]:
        inbound = Inbound(platform="telegram", update_id=f"{uid}{settings.public_url[:5]}",
                          chat_id="7001", sender_id="7001", received_at=site["clock"].now(),
                          text="摸排")
        assert process(site["engine"], inbound=inbound, payload={"id": inbound.update_id},
                       clock=site["clock"], settings=settings)
        from core.outbox import OutboxMessage

        with Session(site["engine"]) as s:
            rows = list(s.execute(sa.select(OutboxMessage).where(
                OutboxMessage.dedupe_key.like(  # type: ignore[union-attr]
                    f"in:telegram:{inbound.update_id}:%"))).scalars())
        [page] = [r for r in rows if r.actions]
        return {"options": page.options or {}, "actions": page.actions}

    private = first_page(site["settings"])  # http://127.0.0.1: Telegram would refuse it
    assert "link_url" not in private["options"]
    public = first_page(site["settings"].model_copy(
        update={"public_url": "https://linzhang.example"}))
    url = public["options"]["link_url"]
    assert url.startswith("https://linzhang.example/checklist/")
    markup = inline_keyboard(buttons_from_actions(public["actions"]),
                             link=("网页清单", url)).to_dict()
    assert markup["inline_keyboard"][0] == [{"text": "网页清单", "url": url}]
    assert all("callback_data" in b for row in markup["inline_keyboard"][1:] for b in row)
    # the link's token works on this deployment whatever address it was built with
    path = "/checklist/" + url.rsplit("/checklist/", 1)[1]
    assert site["http"].get(path).status_code == 200
