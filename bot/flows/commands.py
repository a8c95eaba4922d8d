"""Slash commands for leaders and admins; every one checks role and subtree here, on the server."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from bot.flows.context import Ctx
from bot.flows.refusals import event_note
from bot.flows.types import Outbound
from core.cases import stats
from core.cases.lists import open_cases_below
from core.cases.model import STATE_LABEL_ZH, State
from core.cases.ops import EVENT_VERB_ZH
from core.cases.services import history, view
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.hierarchy.invites import invite_for, person_invite, revoke, shown_code, typed_code
from core.hierarchy.model import STRONG_PROOFS, Level
from core.hierarchy.queries import NodeRef, actor, find_people, node_by_code
from core.hierarchy.services import assign_role, bind_chat, identity_proof, unbind_chat
from core.hierarchy.tree import LEADER_ROLES, ROLE_LABEL_ZH, normalize_phone
from core.privacy import clip


def _leader_scope(ctx: Ctx, command: str) -> list[NodeRef]:
    """The nodes a leader or admin looks after; a refusal for anyone else."""
    assert ctx.actor is not None
    scopes = [n for r, n in ctx.actor.posts if r in LEADER_ROLES or r.value in ("admin",
                                                                                "department")]
    if not scopes:
        raise PermissionDenied("cmd_leaders_only", command=command)
    return scopes


def _admin_node(ctx: Ctx, command: str, code: str | None) -> NodeRef:
    """The node an admin command is about: the named one (inside their scope) or their own."""
    assert ctx.actor is not None
    scopes = ctx.actor.admin_scopes()
    if not scopes:
        raise PermissionDenied("cmd_admin_only", command=command)
    if not code:
        return scopes[0]
    node = node_by_code(ctx.session, code)
    if not ctx.actor.is_admin_of(node):
        raise PermissionDenied("node_outside", name=node.name, code=node.code)
    return node


def _case_lines(ctx: Ctx, cases: list[object]) -> list[str]:
    now = ctx.clock.now()
    lines = []
    for c in cases:
        v = view(ctx.session, case_id=c.id, now=now)  # type: ignore[attr-defined]
        due = v.deadline_at.astimezone(ctx.tz).strftime("%m-%d %H:%M") if v.deadline_at else "—"
        late = "【超时】" if v.overdue else ""
        many = ctx.t("n_supporters", n=v.supporters) if v.supporters > 1 else ""
        lines.append(f"{late}#{v.id} {STATE_LABEL_ZH[v.state]} {v.holder_name or ''} "
                     f"限{due}：{clip(v.text, 24)}{many}")
    return lines


def cases(ctx: Ctx, *, overdue: bool = False) -> None:
    """/cases and /overdue: what is theirs and below them (an admin may name a node)."""
    assert ctx.actor is not None
    command = "overdue" if overdue else "cases"
    code = ctx.inbound.args[0] if ctx.inbound.args else None
    nodes = [_admin_node(ctx, command, code)] if code else _leader_scope(ctx, command)
    now = ctx.clock.now()
    found: dict[int, object] = {}
    for node in nodes:
        for c in open_cases_below(ctx.session, node=node, now=now, overdue_only=overdue,
                                  limit=30):
            found[c.id or 0] = c
    if not found:
        ctx.say(ctx.t("no_cases"))
        return
    scope = "、".join(n.name for n in nodes)
    header = ctx.t("overdue_header" if overdue else "cases_header", scope=scope)
    ctx.say("\n".join([header, *_case_lines(ctx, list(found.values())[:30])]))


def stats_cmd(ctx: Ctx) -> None:
    """/stats [node]: the last 30 days of a subtree."""
    node = _admin_node(ctx, "stats", ctx.inbound.args[0] if ctx.inbound.args else None)
    end = ctx.clock.now()
    f = stats.figures(ctx.session, node=node, start=end - timedelta(days=30), end=end)
    rate = f"{f.resolution_rate:.1%}" if f.resolution_rate is not None else "—"
    tiers = "，".join(
        f"{ROLE_LABEL_ZH.get(_role(k), k)} {r.rate:.0%}" for k, r in f.on_time_first_reply.items()
        if r.rate is not None
    ) or "—"
    mean = f"{f.mean_rating:.1f}" if f.mean_rating is not None else "—"
    first = f"{f.median_first_reply_s / 3600:.1f}小时" if f.median_first_reply_s else "—"
    ctx.say(f"{node.name} 近30天：收到{f.received}件，办结{f.closed}件，办结率{rate}\n"
            f"按时首次答复：{tiers}\n首次答复中位数：{first}，平均满意度：{mean}")


def _role(key: str) -> Any:
    from core.hierarchy.model import Role

    try:
        return Role(key)
    except ValueError:
        return key


def case_cmd(ctx: Ctx) -> None:
    """/case <id>: a case's history, for leaders above it and admins of its subtree."""
    assert ctx.actor is not None
    args = ctx.inbound.args
    if not args or not args[0].lstrip("#").isdigit() or len(args[0].lstrip("#")) > 9:
        raise InvalidInput("usage", usage="/case <编号>")
    case_id = int(args[0].lstrip("#"))
    from core.cases.model import Case
    from core.hierarchy.queries import node_by_id

    case = ctx.session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    home = node_by_id(ctx.session, case.home_node_id)
    if not (ctx.actor.is_admin_of(home) or ctx.actor.leads(home)
            or case.holder_id == ctx.actor.person.id):
        raise PermissionDenied("case_outside", case=case_id)
    lines = [f"工单#{case_id}：{clip(case.text, 60)}（{STATE_LABEL_ZH[State(case.state)]}）"]
    for e in history(ctx.session, case_id=case_id):
        # SQLite gives the stored UTC back without its zone: it is UTC all the same.
        at = (e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC)).astimezone(ctx.tz)
        note = event_note(e.kind, e.note, e.detail, ctx.lang)
        lines.append(f"{at:%m-%d %H:%M} {EVENT_VERB_ZH.get(e.kind, e.kind)}"
                     f"{'：' + clip(note, 40) if note else ''}")
    ctx.say("\n".join(lines[:60]))


def mylz_cmd(ctx: Ctx) -> None:
    """/mylz (我的邻长): who looks after the resident's 邻, with their phone numbers."""
    from bot.flows.contact import card_for_node, card_text

    assert ctx.actor is not None
    homes = ctx.actor.residences()
    if not homes:
        ctx.say(ctx.t("mylz_none"))
        return
    card = card_for_node(ctx.session, homes[0], office_hours=ctx.settings.office_hours)
    ctx.say(card_text(card, how_to_report=ctx.t("mylz_how")))


def find_cmd(ctx: Ctx) -> None:
    """/find <name|phone|code> within the admin's subtree; phones shown only to admins."""
    node = _admin_node(ctx, "find", None)
    query = " ".join(ctx.inbound.args).strip()
    if not query:
        raise InvalidInput("usage", usage="/find <姓名|手机号|编码>")
    assert ctx.actor is not None
    rows = []
    for scope in ctx.actor.admin_scopes():
        rows += find_people(ctx.session, query, within=scope, limit=20)
    if not rows:
        ctx.say(f"在{node.name}没有找到“{clip(query, 30)}”。")
        return
    lines = []
    for person, phone, posts in rows[:20]:
        where = "，".join(f"{ROLE_LABEL_ZH[r]}@{n.name}" for r, n in posts[:3])
        lines.append(f"{person.name} {phone or ''} {where}")
    ctx.say("\n".join(lines))


def assign_cmd(ctx: Ctx) -> None:
    """/assign <phone> <role> <node code>."""
    assert ctx.actor is not None
    args = ctx.inbound.args
    if len(args) != 3:
        raise InvalidInput("usage", usage="/assign <手机号> <角色> <编码>")
    _admin_node(ctx, "assign", None)
    post = assign_role(ctx.session, by=ctx.actor, phone=args[0], role=args[1], node_code=args[2])
    ctx.say(f"已任命：{args[0]} 为 {ROLE_LABEL_ZH[_role(post.role)]}（{args[2]}）。")


def bind_cmd(ctx: Ctx) -> None:
    """/bind <node code>, sent in the group chat to bind."""
    assert ctx.actor is not None
    i = ctx.inbound
    if i.chat_is_private:
        raise InvalidInput("bind_in_group")
    if not i.args:
        raise InvalidInput("usage", usage="/bind <编码>")
    b = bind_chat(ctx.session, by=ctx.actor, platform=i.platform, chat_id=i.chat_id,
                  node_code=i.args[0], title=i.chat_title, now=ctx.clock.now())
    node = node_by_code(ctx.session, i.args[0])
    ctx.say(ctx.t("bound", node=node.name, tier=b.tier))


def unbind_cmd(ctx: Ctx) -> None:
    assert ctx.actor is not None
    i = ctx.inbound
    unbind_chat(ctx.session, by=ctx.actor, platform=i.platform, chat_id=i.chat_id)
    ctx.say(ctx.t("unbound"))


def invite_cmd(ctx: Ctx) -> None:
    """/invite [neighborhood code]: the 邻's join link and poster, for its 邻长 and above;
    /invite <phone>: a one-time invite that binds one person's chat account (admins)."""
    assert ctx.actor is not None
    code = ctx.inbound.args[0] if ctx.inbound.args else None
    if code and normalize_phone(code):
        _person_invite(ctx, code)
        return
    if code:
        node = node_by_code(ctx.session, code)
    else:
        lins = [n for r, n in ctx.actor.posts if n.level is Level.neighborhood and r.value !=
                "resident"]
        if not lins:
            raise InvalidInput("usage", usage="/invite <邻的编码>  或  /invite <手机号>")
        node = lins[0]
    inv = invite_for(ctx.session, by=ctx.actor, node=node, now=ctx.clock.now())
    link = invite_link(ctx, inv.code)
    ctx.say(ctx.t("invite", node=node.name, link=link,
                  poster=f"{_base(ctx)}/poster/{inv.code}")
            + "\n" + ctx.t("contact_card", link=f"{_base(ctx)}/card/{inv.code}"))


def _person_invite(ctx: Ctx, phone: str) -> None:
    assert ctx.actor is not None
    if not ctx.inbound.chat_is_private:
        raise InvalidInput("person_invite_private_only")
    ttl = ctx.settings.person_invite_ttl
    inv, person = person_invite(ctx.session, by=ctx.actor, phone=phone, now=ctx.clock.now(),
                                ttl=ttl)
    who = actor(ctx.session, person.id or 0)
    roles = "、".join(f"{ROLE_LABEL_ZH[r]}@{n.name}" for r, n in who.posts[:3]) or "—"
    username = ctx.settings.telegram_bot_username
    tg = f"https://t.me/{username}?start={inv.code}" if username else "（未配置）"
    ctx.say(ctx.t("person_invite", name=person.name, roles=roles,
                  days=max(1, int(ttl.total_seconds() // 86400)), telegram=tg,
                  web=f"{_base(ctx)}/join/{inv.code}", qr=f"{_base(ctx)}/invite-qr/{inv.code}",
                  code=shown_code(inv.code)))


def revoke_cmd(ctx: Ctx) -> None:
    """/revoke <invite code>: stop an invite (its maker or an admin of its node)."""
    assert ctx.actor is not None
    given = " ".join(ctx.inbound.args).strip()
    if not given:
        raise InvalidInput("usage", usage="/revoke <邀请码>")
    code = typed_code(given) or given  # the printed `K3M9-X2AB` or the code itself
    revoke(ctx.session, by=ctx.actor, code=code)
    ctx.say(ctx.t("invite_revoked", code=given[:20]))


def _base(ctx: Ctx) -> str:
    return ctx.settings.own_url


def invite_link(ctx: Ctx, code: str) -> str:
    username = ctx.settings.telegram_bot_username
    if ctx.inbound.platform == "telegram" and username:
        return f"https://t.me/{username}?start={code}"
    return f"{_base(ctx)}/join/{code}"


def help_cmd(ctx: Ctx) -> None:
    a = ctx.actor
    parts = [ctx.t("help_resident")]
    if a is not None and any(r in LEADER_ROLES for r in a.roles()):
        parts.append(ctx.t("help_leader"))
    if a is not None and a.is_admin:
        parts.append(ctx.t("help_admin"))
    ctx.say("\n\n".join(parts))


def login_cmd(ctx: Ctx) -> None:
    """/login: a one-time link into the dashboard, only in a private chat (a group would share
    it with everybody in it), and only for an account bound by a real proof."""
    from core.accounts import issue_login_token

    assert ctx.actor is not None
    if not ctx.inbound.chat_is_private:
        ctx.say("登录链接只能在与机器人的私聊中发送，请私聊我 /login")
        return
    i = ctx.inbound
    if identity_proof(ctx.session, platform=i.platform,
                      external_id=i.sender_id) not in STRONG_PROOFS:
        ctx.say(ctx.t("login_needs_proof"))
        return
    token = issue_login_token(ctx.session, person_id=ctx.actor.person.id, now=ctx.clock.now(),
                              ttl=ctx.settings.dashboard_login_ttl)
    minutes = int(ctx.settings.dashboard_login_ttl.total_seconds() // 60)
    ctx.say(f"管理后台一次性登录链接（{minutes}分钟内有效，只能用一次，请勿转发）：\n"
            f"{_base(ctx)}/login/{token}")


def report_how(ctx: Ctx) -> None:
    """The 我要反映 menu item: how to report (any text, photo, voice or location will do)."""
    ctx.say("请直接发送文字、照片、语音或位置描述您遇到的问题，我们会转给您的邻长处理。"
            if ctx.lang != "en" else
            "Just send text, photos, a voice message or your location; your neighbor leader "
            "gets it at once.")


def menu_cmd(ctx: Ctx) -> None:
    """/menu: an admin (re)creates the WeChat Official Account menu, via the outbox."""
    _admin_node(ctx, "/menu", None)
    ctx.out.append(Outbound(text="menu", kind="wechat_menu", platform="wechat",
                            address="@menu"))
    ctx.say("公众号菜单将重新创建。" if ctx.lang != "en" else "The account menu will be recreated.")
