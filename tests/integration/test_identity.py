"""Issue 11 §1: a chat account earns a post only through proof. Driven through the real
WeChat callback (HTTP on loopback) and the dispatcher (Telegram updates, button presses)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.dispatch import process
from bot.flows.texts import t
from bot.flows.types import Button, Inbound, Press
from bot.handlers.telegram.callback import decode, encode
from bot.handlers.xml_safe import xml_fields
from core.clock import FakeClock
from core.container import build_container
from core.settings import Settings
from tests.support.server import serve
from tests.support.wechat import (
    DOC_AES_KEY,
    DOC_APP_ID,
    DOC_TOKEN,
    WECOM_AES_KEY,
    WECOM_CORP_ID,
    WECOM_TOKEN,
    xml_of,
)
from webhooks.app import create_app

ADMIN_LI = "13900000001"  # 李强, district admin
ADMIN_ZHANG = "13900000002"  # 张娟, town admin
SECRETARY_HUANG = "13900000006"  # 黄涛, 书记 of 幸福社区
SECRETARY_MA = "13900000044"  # 马勇, 书记 of 和谐社区
RESIDENT_ZHOU = "13900000009"  # 周军, 幸福社区1号楼; its 邻长 王芳 has no account, 吴娜 is the 组长
LEADER_WU = "13900000008"
_n = itertools.count(1)


def sealed(crypto: WeChatCrypto | WeComCrypto, plain: str, *, nonce: str,
           clock: FakeClock) -> tuple[dict[str, str], bytes]:
    """(query, body) of an encrypted callback, signed at the app's (fake) time."""
    ts = str(int(clock.now().timestamp()))
    env = xml_fields(crypto.encrypt_message(plain, nonce, ts))
    query = {"msg_signature": env["MsgSignature"], "timestamp": ts, "nonce": nonce,
             "encrypt_type": "aes"}
    body = f"<xml><ToUserName><![CDATA[x]]></ToUserName><Encrypt><![CDATA[{env['Encrypt']}]]>" \
           f"</Encrypt></xml>"
    return query, body.encode()


class World:
    """The real app (WeChat callback) and the dispatcher (Telegram) on one database."""

    def __init__(self, engine: Engine, clock: FakeClock, settings: Settings,
                 http: httpx.Client) -> None:
        self.engine, self.clock, self.settings, self.http = engine, clock, settings, http
        self.crypto = WeChatCrypto(DOC_TOKEN, DOC_AES_KEY, DOC_APP_ID)
        self.wecom_crypto = WeComCrypto(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP_ID)

    def wechat(self, openid: str, text: str) -> list[str]:
        """A follower writes to the Official Account; what the bot answers them."""
        n = next(_n)
        msg = xml_of({"ToUserName": "gh", "FromUserName": openid, "CreateTime": 1700000000 + n,
                      "MsgType": "text", "Content": text, "MsgId": 880000 + n})
        query, body = sealed(self.crypto, msg, nonce=f"id{n}", clock=self.clock)
        assert self.http.post("/webhooks/wechat", params=query, content=body).text == "success"
        return self.said(f"in:wechat:{880000 + n}:%", openid)

    def wecom(self, userid: str, text: str) -> list[str]:
        """Someone writes in the WeCom app; what the bot answers them."""
        n = next(_n)
        msg = xml_of({"ToUserName": WECOM_CORP_ID, "FromUserName": userid,
                      "CreateTime": 1700000000 + n, "MsgType": "text", "Content": text,
                      "MsgId": 990000 + n, "AgentID": 1})
        query, body = sealed(self.wecom_crypto, msg, nonce=f"wc{n}", clock=self.clock)
        assert self.http.post("/webhooks/wecom", params=query, content=body).status_code == 200
        return self.said(f"in:wecom:{990000 + n}:%", userid)

    def telegram(self, sender: str, **fields: Any) -> list[str]:
        uid = f"tg{next(_n)}"
        inbound = Inbound(platform="telegram", update_id=uid, chat_id=sender, sender_id=sender,
                          received_at=self.clock.now(), **fields)
        assert process(self.engine, inbound=inbound, payload={"update_id": uid},
                       clock=self.clock, settings=self.settings)
        return self.said(f"in:telegram:{uid}:%", sender)

    def said(self, key: str, address: str) -> list[str]:
        """What one update made the bot answer in the sender's own chat."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT text FROM outbox WHERE dedupe_key LIKE :k AND address = :a"
                " AND kind != 'press_ack' ORDER BY id"), {"k": key, "a": address}).scalars())

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def person(self, phone: str) -> int:
        return int(self.rows("SELECT id FROM person WHERE phone = :p", p=phone)[0][0])

    def bound_to(self, platform: str, external_id: str) -> tuple[int, str] | None:
        got = self.rows("SELECT * FROM chat_identity WHERE platform = :p"
                        " AND external_id = :e", p=platform, e=external_id)
        return (got[0].person_id, getattr(got[0], "proof", "")) if got else None

    def link_telegram(self, phone: str, tg: str) -> None:
        """As the import does: its rows name no proof (the column's default is the import)."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO chat_identity (person_id, platform, external_id, unreachable)"
                " VALUES (:p, 'telegram', :t, false)"), {"p": self.person(phone), "t": tg})


@pytest.fixture
def world(engine: Engine, tmp_path, clock: FakeClock) -> Iterator[World]:  # type: ignore[no-untyped-def]
    from tests.support.demo_city import load_demo

    load_demo(engine)
    settings = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                        wechat_app_id=DOC_APP_ID, wechat_token=SecretStr(DOC_TOKEN),
                        wechat_encoding_aes_key=SecretStr(DOC_AES_KEY),
                        wecom_corp_id=WECOM_CORP_ID, wecom_agent_id="1",
                        wecom_token=SecretStr(WECOM_TOKEN),
                        wecom_encoding_aes_key=SecretStr(WECOM_AES_KEY),
                        telegram_bot_username="linzhang_bot", public_url="https://lz.example",
                        media_dir=str(tmp_path / "media"))
    c = build_container(settings, clock=clock, engine=engine)
    with serve(create_app(settings, container=c, run_jobs=False)) as url, \
            httpx.Client(base_url=url, timeout=30) as http:  # a loaded machine: no 5 s limit
        yield World(engine, clock, settings, http)


def test_a_follower_typing_a_district_admins_number_gets_no_post_and_no_sign_in(
        world: World) -> None:
    answer = world.wechat("o_intruder", ADMIN_LI)
    assert world.bound_to("wechat", "o_intruder") is None
    assert answer == [t("zh", "phone_typed")]
    assert world.rows("SELECT id FROM bind_request") == []
    login = world.wechat("o_intruder", "/login")
    assert not any("/login/" in x for x in login)
    assert world.rows("SELECT count(*) FROM login_token")[0][0] == 0
    # The same answer for a number nobody has and for a resident's: typing is no oracle.
    assert world.wechat("o_guess", "13912345678") == answer
    assert world.wechat("o_guess2", RESIDENT_ZHOU) == answer


def _ask_for_zhou(world: World) -> tuple[int, dict[str, Any]]:
    world.link_telegram(LEADER_WU, "8008")
    world.wechat("o_zhou", "楼道灯坏了三天了")
    world.wechat("o_zhou", RESIDENT_ZHOU)
    assert world.bound_to("wechat", "o_zhou") is None, "nothing bound before the 邻长 taps"
    rows = world.rows("SELECT text, actions FROM outbox WHERE person_id = :p AND kind ="
                      " 'bind_request'", p=world.person(LEADER_WU))
    assert len(rows) == 1
    text, actions = rows[0]
    assert text == "周军（幸福社区1号楼）想绑定微信，是本人吗？"
    acts = {a["label"]: a for a in (json.loads(actions) if isinstance(actions, str)
                                    else actions)}
    assert set(acts) == {"是", "不是"}
    # The buttons survive Telegram's callback data.
    yes = acts["是"]
    assert decode(encode(Button("是", yes["action"], yes["case_id"]))).action == "bind_yes"
    return int(yes["case_id"]), acts


def test_the_neighbor_leader_confirms_a_typed_resident_number_with_one_tap(
        world: World) -> None:
    rid, acts = _ask_for_zhou(world)
    out = world.telegram("8008", press=Press(acts["是"]["action"], rid, 0, query_id="q1"))
    assert "已确认，周军的账号已绑定" in out[-1]
    assert world.bound_to("wechat", "o_zhou") == (world.person(RESIDENT_ZHOU),
                                                  "resident_confirmed")
    cases = world.rows("SELECT id, text FROM cases WHERE resident_id = :p",
                       p=world.person(RESIDENT_ZHOU))
    assert [c.text for c in cases] == ["楼道灯坏了三天了"], "the words before binding routed"
    told = world.rows("SELECT text FROM outbox WHERE platform = 'wechat' AND address ="
                      " 'o_zhou' ORDER BY id")
    assert any("周军" in r.text and "欢迎" in r.text for r in told)
    assert any("1 条内容已转给邻长" in r.text for r in told)
    # A second tap changes nothing; a typed number never signs in to the dashboard.
    again = world.telegram("8008", press=Press("bind_yes", rid, 0))
    assert "已处理或已过期" in again[-1]
    assert world.wechat("o_zhou", "/login") == [t("zh", "login_needs_proof")]


def test_the_neighbor_leader_saying_no_leaves_the_account_unbound(world: World) -> None:
    rid, acts = _ask_for_zhou(world)
    out = world.telegram("8008", press=Press(acts["不是"]["action"], rid, 0))
    assert "不是周军本人" in out[-1]
    assert world.bound_to("wechat", "o_zhou") is None
    assert world.rows("SELECT state FROM bind_request")[0].state == "refused"
    told = world.rows("SELECT text FROM outbox WHERE address = 'o_zhou' ORDER BY id")
    assert told[-1].text == t("zh", "bind_refused")
    assert world.rows("SELECT id FROM cases") == []
    kept = world.rows("SELECT id FROM pending_report WHERE sender_id = 'o_zhou'")
    assert kept, "what they wrote is still kept"


def test_someone_else_cannot_answer_a_bind_request(world: World) -> None:
    rid, _ = _ask_for_zhou(world)
    world.link_telegram("13900000012", "8012")  # 马秀英, 邻长 of 2号楼, not of 周军's
    out = world.telegram("8012", press=Press("bind_yes", rid, 0))
    assert "不在您负责的范围内" in out[-1]
    assert world.bound_to("wechat", "o_zhou") is None


def _invite(world: World, admin_tg: str, phone: str) -> tuple[str, str]:
    """(the code as shown for typing, the whole code) from /invite <phone>."""
    out = world.telegram(admin_tg, command="invite", args=(phone,))
    m = re.search(r"绑定 ([A-Z0-9]{4}-[A-Z0-9]{4})", out[-1])
    assert m is not None, out
    full = re.search(r"start=(j[a-z0-9]+)", out[-1])
    assert full is not None and f"/invite-qr/{full.group(1)}" in out[-1]
    return m.group(1), full.group(1)


def test_a_person_invite_typed_on_wechat_binds_a_secretary_who_may_then_sign_in(
        world: World) -> None:
    world.link_telegram(ADMIN_LI, "7001")
    shown, full = _invite(world, "7001", SECRETARY_HUANG)
    qr = world.http.get(f"/invite-qr/{full}")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    welcome = world.wechat("o_huang", f"绑定 {shown.lower()}")
    assert any("黄涛" in x and "书记" in x for x in welcome)
    assert world.bound_to("wechat", "o_huang") == (world.person(SECRETARY_HUANG),
                                                   "person_invite")
    login = world.wechat("o_huang", "/login")
    assert any("https://lz.example/login/" in x for x in login)


def test_a_person_invite_opened_on_telegram_binds_and_signs_in(world: World) -> None:
    world.link_telegram(ADMIN_LI, "7001")
    _, older = _invite(world, "7001", ADMIN_ZHANG)  # a town admin, below the district's
    _, full = _invite(world, "7001", ADMIN_ZHANG)  # a new invite replaces the older one
    assert world.telegram("7002", command="start", args=(older,)) == [
        "抱歉，这个邀请已被撤销，请向管理员索取新的邀请"]
    world.telegram("7002", command="start", args=(full,))
    assert world.bound_to("telegram", "7002") == (world.person(ADMIN_ZHANG), "person_invite")
    assert any("/login/" in x for x in world.telegram("7002", command="login"))


def test_used_expired_and_revoked_invites_are_refused_politely(world: World) -> None:
    world.link_telegram(ADMIN_LI, "7001")
    shown, _ = _invite(world, "7001", SECRETARY_HUANG)
    world.wechat("o_huang", f"绑定 {shown}")
    used = world.wechat("o_thief", f"绑定 {shown}")
    assert used == ["抱歉，这个邀请已经用过了，每个邀请只能用一次。如需重新绑定，请联系管理员"]
    assert world.bound_to("wechat", "o_thief") is None

    shown, _ = _invite(world, "7001", SECRETARY_MA)
    world.clock.advance(timedelta(days=7, minutes=1))
    assert world.wechat("o_ma", f"绑定 {shown}") == ["抱歉，这个邀请已过期，请联系管理员重新生成"]

    shown, _ = _invite(world, "7001", SECRETARY_MA)
    assert world.telegram("7001", command="revoke", args=(shown,)) == [
        f"邀请 {shown} 已作废。"]
    assert world.wechat("o_ma", f"绑定 {shown}") == [
        "抱歉，这个邀请已被撤销，请向管理员索取新的邀请"]
    assert world.bound_to("wechat", "o_ma") is None
    assert world.wechat("o_ma", "绑定 12") == [t("zh", "bind_code_malformed")]


def test_an_admin_cannot_invite_outside_their_subtree_or_at_their_own_rank(
        world: World) -> None:
    world.link_telegram(ADMIN_ZHANG, "7002")
    before = world.rows("SELECT count(*) FROM invite")[0][0]
    outside = world.telegram("7002", command="invite", args=(ADMIN_LI,))
    nobody = world.telegram("7002", command="invite", args=("13912345678",))
    assert outside == [f"抱歉，在您管理的范围内没有找到手机号为 {ADMIN_LI} 的人员"]
    assert nobody == ["抱歉，在您管理的范围内没有找到手机号为 13912345678 的人员"]
    # A second admin of the same town: the same rank, refused.
    with world.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO post (person_id, node_id, role) SELECT :p, id,"
                             " 'admin' FROM node WHERE code = '341602001'"),
                     {"p": world.person("13900000007")})
    peer = world.telegram("7002", command="invite", args=("13900000007",))
    assert "同级或更高级别" in peer[-1]
    # An admin of one village may not invite the other village's 书记.
    with world.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO post (person_id, node_id, role) SELECT :p, id,"
                             " 'admin' FROM node WHERE code = '341602001001'"),
                     {"p": world.person(SECRETARY_HUANG)})
    world.link_telegram(SECRETARY_HUANG, "7006")
    other = world.telegram("7006", command="invite", args=(SECRETARY_MA,))
    assert other == [f"抱歉，在您管理的范围内没有找到手机号为 {SECRETARY_MA} 的人员"]
    resident = world.telegram("7006", command="invite", args=(RESIDENT_ZHOU,))
    assert "绑定 " in resident[-1], "inside the village: allowed"
    assert world.rows("SELECT count(*) FROM invite")[0][0] == before + 1


def test_an_old_wechat_account_bound_by_a_typed_number_acts_as_a_resident_only(
        world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO chat_identity (person_id, platform, external_id, unreachable, proof)"
            " VALUES (:p, 'wechat', 'o_old', false, 'legacy_phone')"),
            {"p": world.person(ADMIN_LI)})
    assert world.wechat("o_old", "/stats") == [t("zh", "leader_needs_invite")]
    assert world.wechat("o_old", "/login") == [t("zh", "login_needs_proof")]
    # Their admin's person invite upgrades the same account.
    world.link_telegram(ADMIN_LI, "7001")
    with world.engine.begin() as conn:  # the district admin's own invite comes from the CLI
        conn.execute(sa.text("INSERT INTO post (person_id, node_id, role) SELECT :p, id,"
                             " 'admin' FROM node WHERE code = '341602'"),
                     {"p": world.person("13900000007")})
    world.link_telegram("13900000007", "7007")
    # 赵桂英 is now a district admin too, of the same rank: refused; nothing changes.
    assert "同级或更高级别" in world.telegram("7007", command="invite", args=(ADMIN_LI,))[-1]
    assert world.bound_to("wechat", "o_old") == (world.person(ADMIN_LI), "legacy_phone")


def test_a_leader_who_first_scanned_a_poster_takes_that_account_over_by_invite(
        world: World) -> None:
    world.link_telegram(ADMIN_LI, "7001")
    poster = world.telegram("7001", command="invite", args=("3416020010010101001",))
    lin_code = re.search(r"start=(j[a-z0-9]+)", poster[-1])
    assert lin_code is not None
    world.telegram("7006", command="start", args=(lin_code.group(1),))
    throwaway, proof = world.bound_to("telegram", "7006") or (0, "")
    assert proof == "invite" and throwaway != world.person(SECRETARY_HUANG)
    _, full = _invite(world, "7001", SECRETARY_HUANG)
    world.telegram("7006", command="start", args=(full,))
    assert world.bound_to("telegram", "7006") == (world.person(SECRETARY_HUANG),
                                                  "person_invite")
    assert world.rows("SELECT count(*) FROM post WHERE person_id = :p", p=throwaway)[0][0] == 0
    assert any("/login/" in x for x in world.telegram("7006", command="login"))


def test_typing_numbers_cannot_page_a_neighbor_leader_without_end(world: World) -> None:
    world.link_telegram(LEADER_WU, "8008")
    for n in range(5):
        assert world.wechat(f"o_spam{n}", RESIDENT_ZHOU) == [t("zh", "phone_typed")]
    asked = world.rows("SELECT count(*) FROM outbox WHERE kind = 'bind_request'")[0][0]
    assert asked == 3


def test_a_person_invite_typed_in_wecom_binds_a_neighbor_leader(world: World) -> None:
    world.link_telegram(ADMIN_LI, "7001")
    shown, _ = _invite(world, "7001", "13900000017")  # 高勇, 邻长 of 3号楼
    assert world.wecom("gaoyong", RESIDENT_ZHOU) == [t("zh", "phone_typed")]
    assert world.bound_to("wecom", "gaoyong") is None
    welcome = world.wecom("gaoyong", f"绑定{shown}")
    assert any("高勇" in x and "邻长" in x for x in welcome)
    assert world.bound_to("wecom", "gaoyong") == (world.person("13900000017"), "person_invite")


def test_with_no_reachable_neighbor_leader_the_group_leader_is_asked(world: World) -> None:
    world.link_telegram(LEADER_WU, "8008")  # 吴娜, 组长 above 2号楼, whose 邻长 has no account
    world.wechat("o_zhu", "13900000013")  # 朱洋, 幸福社区2号楼
    asked = world.rows("SELECT person_id, text FROM outbox WHERE kind = 'bind_request'")
    assert [(r.person_id, r.text) for r in asked] == [
        (world.person(LEADER_WU), "朱洋（幸福社区2号楼）想绑定微信，是本人吗？")]
    rid = world.rows("SELECT id FROM bind_request")[0].id
    world.telegram("8008", press=Press("bind_yes", rid, 0))
    assert world.bound_to("wechat", "o_zhu") == (world.person("13900000013"),
                                                 "resident_confirmed")
