"""Reporting with the least friction: any message opens a case at once, or adds to the last."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import select

from bot.flows.context import Ctx
from bot.flows.join import to_attachment
from bot.flows.types import Button
from bot.notify.render import local_time
from core import conversations
from core.cases.lists import set_category
from core.cases.services import add_to_case, case_to_append_to, open_case, view
from core.clock import as_utc
from core.hierarchy.model import Category
from core.media.store import is_unsaved
from core.privacy import clip

# Obvious words → category; anything else is asked with buttons after the case is filed.
CATEGORY_WORDS: list[tuple[str, tuple[str, ...]]] = [
    ("突发事件", ("着火", "火灾", "失火", "爆炸", "塌方", "倒塌", "车祸")),
    ("安全隐患", ("隐患", "漏电", "电线", "燃气", "煤气", "漏气", "井盖", "危房", "消防通道",
                  "裂缝", "脱落")),
    ("环境保护", ("垃圾", "污水", "臭味", "噪音", "噪声", "油烟", "排污", "焚烧", "粉尘")),
    ("公共设施", ("路灯", "路面", "坑洼", "下水道", "堵塞", "电梯", "水管", "停水", "停电",
                  "健身器材", "围栏")),
    ("无证无照经营", ("摆摊", "无证", "占道经营", "黑作坊")),
    ("社会治安", ("偷", "盗", "打架", "斗殴", "可疑", "诈骗", "赌博")),
    ("纠纷调处", ("纠纷", "吵架", "矛盾", "争吵", "漏水到楼下")),
    ("社会保障", ("低保", "养老金", "医保", "补贴", "残疾")),
    ("疫情防控", ("发烧", "疫情", "核酸", "隔离")),
    ("村（居）民事务", ("证明", "户口", "办理", "开具")),
]
EMERGENCY = re.compile(
    "着火|火灾|失火|冒烟|燃气泄漏|煤气泄漏|漏气|爆炸|打架|斗殴|持刀|受伤|流血|晕倒|昏迷|"
    "救命|溺水|fire|gas leak|fight|hurt|bleeding|unconscious", re.IGNORECASE,
)


def suggest_category(text: str | None) -> str | None:
    if not text:
        return None
    for category, words in CATEGORY_WORDS:
        if any(w in text for w in words):
            return category
    return None


def report(ctx: Ctx) -> None:
    """A resident's message: append to the case they wrote to minutes ago, or open one."""
    assert ctx.actor is not None
    i = ctx.inbound
    resident = ctx.actor.person.id
    attachments = [to_attachment(m, i.platform) for m in i.media]
    text = i.text or ""
    if EMERGENCY.search(text):
        ctx.say(ctx.t("emergency"))
    recent = case_to_append_to(ctx.session, clock=ctx.clock, settings=ctx.settings,
                               resident_id=resident)
    if recent is not None:
        case = add_to_case(ctx.session, clock=ctx.clock, case_id=recent, person_id=resident,
                           text=text, attachments=attachments, via=i.platform)
        # Remember what was added, so "this is a new problem" can file it on its own.
        conversations.set_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                user_id=i.sender_id, state="last_addition",
                                data={"case_id": recent, "text": text,
                                      "media": [m.__dict__ for m in i.media]},
                                now=ctx.clock.now())
        ctx.say(ctx.t("added", case=recent), case_id=recent, buttons=(
            Button(ctx.t("new_case_button"), "new_case", recent, case.version),))
        forward_photos(ctx, case_id=recent, holder_id=case.holder_id)
        return
    category = suggest_category(text)
    homes = ctx.actor.residences()  # read with them (the same first resident post)
    case = open_case(ctx.session, clock=ctx.clock, settings=ctx.settings, resident_id=resident,
                     text=text, attachments=attachments, category=category, via=i.platform,
                     home=homes[0] if homes else None)
    # "是不是这件事？" first: joining a case needs no category; else the category question.
    from bot.flows import duplicates

    if not duplicates.offer(ctx, case) and category is None:
        ask_category(ctx, case.id or 0, case.version)
    forward_photos(ctx, case_id=case.id or 0, holder_id=case.holder_id)


def forward_photos(ctx: Ctx, *, case_id: int, holder_id: int | None) -> None:
    """Show the holder the resident's photos with the card: a photo sent on the same
    platform is forwarded by its file id, a stored one (web chat) from the media store."""
    from bot.flows.types import Outbound
    from core.hierarchy.queries import identities_of

    if holder_id is None:
        return
    photos = [m for m in ctx.inbound.media if m.kind == "photo" and not is_unsaved(m.file_ref)]
    voices = [m for m in ctx.inbound.media if m.kind == "voice" and m.file_ref
              and not is_unsaved(m.file_ref)]
    if not photos and not voices:
        return
    same_platform = [ext for plat, ext, gone in identities_of(ctx.session, holder_id)
                     if plat == ctx.inbound.platform and not gone]
    if voices and same_platform:
        # A voice note is forwarded by its file id on the platform it came from (the
        # dispatcher's transport sends it as a voice message).
        for m in voices:
            ctx.out.append(Outbound(text=f"工单#{case_id} 居民发来的语音", kind="case_voice",
                                    platform=ctx.inbound.platform, address=same_platform[0],
                                    case_id=case_id,
                                    options={"voice": f"{ctx.inbound.platform}:{m.file_ref}"}))
    caption = f"工单#{case_id} 居民发来的照片"
    for m in photos:
        if m.stored_ref:
            ctx.out.append(Outbound(text=caption, kind="case_photo", person_id=holder_id,
                                    case_id=case_id, photo=m.stored_ref))
        elif m.file_ref and same_platform:
            ctx.out.append(Outbound(text=caption, kind="case_photo",
                                    platform=ctx.inbound.platform, address=same_platform[0],
                                    case_id=case_id,
                                    photo=f"{ctx.inbound.platform}:{m.file_ref}"))


def category_names(ctx: Ctx) -> list[str]:
    """Category names in a stable order (a button carries the index)."""
    return list(ctx.session.exec(select(Category.name).order_by(sa.text("id"))))


def ask_category(ctx: Ctx, case_id: int, version: int) -> None:
    names = category_names(ctx)
    if not names:
        return
    buttons = tuple(Button(n, "category", case_id, version, arg=str(k))
                    for k, n in enumerate(names))
    ctx.say(ctx.t("ask_category"), buttons=buttons, case_id=case_id)


def choose_category(ctx: Ctx, case_id: int, index: str | None) -> None:
    assert ctx.actor is not None
    names = category_names(ctx)
    try:
        name = names[int(index or "")]
    except (ValueError, IndexError):
        ctx.ack(ctx.t("invalid", detail="类别无效"))
        return
    case = set_category(ctx.session, clock=ctx.clock, case_id=case_id,
                        person_id=ctx.actor.person.id, category=name, via=ctx.via)
    ctx.ack(ctx.t("category_set", category=name))
    cat = ctx.session.get(Category, case.category_id) if case.category_id else None
    if cat is not None and (cat.answer_limit or cat.handle_limit) and case.deadline_at \
            and case.stage in ("reply", "handle"):
        # The category's own limit: say when it falls, as a date and time.
        when = local_time(ctx.lang, as_utc(case.deadline_at), ctx.tz)
        ctx.say(ctx.t("category_set_due", category=name, when=when,
                      verb=ctx.t(f"n_due_{case.stage}")), case_id=case_id)
        return
    ctx.say(ctx.t("category_set", category=name), case_id=case_id)


def split_off(ctx: Ctx) -> None:
    """The last addition was a different problem: file it as its own case."""
    from bot.flows.types import Media

    assert ctx.actor is not None
    i = ctx.inbound
    conv = conversations.get_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                                   user_id=i.sender_id, now=ctx.clock.now())
    if conv is None or conv.state != "last_addition":
        ctx.ack(ctx.t("done"))
        return
    media = [Media(**m) for m in conv.data.get("media", [])]
    case = open_case(ctx.session, clock=ctx.clock, settings=ctx.settings,
                     resident_id=ctx.actor.person.id, text=conv.data.get("text") or "",
                     attachments=[to_attachment(m, i.platform) for m in media],
                     category=suggest_category(conv.data.get("text")), via=i.platform)
    conversations.clear_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                              user_id=i.sender_id)
    ctx.ack(ctx.t("split_done"))
    if case.category_id is None:
        ask_category(ctx, case.id or 0, case.version)


def my_cases(ctx: Ctx) -> None:
    from core.cases.model import STATE_LABEL_ZH, State
    from core.cases.services import cases_of_resident

    assert ctx.actor is not None
    cases = cases_of_resident(ctx.session, person_id=ctx.actor.person.id, limit=20)
    if not cases:
        ctx.say(ctx.t("my_none"))
        return
    now = ctx.clock.now()
    lines = [ctx.t("my_header")]
    for c in cases:
        v = view(ctx.session, case_id=c.id or 0, now=now)
        holder = f"，{v.holder_name}承办" if v.holder_name and v.state in (
            State.open, State.accepted) else ""
        many = ctx.t("n_supporters", n=v.supporters) if v.supporters > 1 else ""
        lines.append(f"#{v.id} {STATE_LABEL_ZH[v.state]}{holder}：{clip(v.text, 30)}{many}")
    ctx.say("\n".join(lines))
