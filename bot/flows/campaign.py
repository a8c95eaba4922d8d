"""A 邻长's checklist in chat (摸排 / 敲门行动): a page of households, one tap to an outcome,
a note or a photo, a household the registry missed; and the 组长's tap on a new person.

Every press answers with a fresh message for the pressed one: the page, a household's
outcomes, the next page. State lives in the items (core/campaigns), so whoever stops halfway
is shown, next time, the page with their first household not yet recorded.
"""

from __future__ import annotations

from typing import Any

from bot.flows.context import Ctx
from bot.flows.texts import t
from bot.flows.types import Button, Press
from core import conversations
from core.campaigns import links, marking, registry
from core.campaigns.marking import Item
from core.campaigns.model import NEWCOMER, Campaign
from core.campaigns.services import add_household, check_open, load, open_campaigns_for
from core.clock import as_utc
from core.errors import InvalidInput
from core.hierarchy.model import Role
from core.hierarchy.tree import normalize_phone

PAGE = 8
LABEL_MAX = 24
# A WeCom card holds 6 buttons of 10 characters: 4 households a page, the tail of each address
# on its button, every address of the page written out in the card's text.
PAGE_ON = {"wecom": 4}
LABEL_ON = {"wecom": 7}
# Where a checklist card carries the link to its web page (/checklist/<token>): WeCom's cards
# show 4 households; the web page shows them all, in large type.
LINK_ON = {"wecom"}
PRESSES = {"cmp_list", "cmp_item", "cmp_mark", "cmp_note", "cmp_add", "cmp_ok", "cmp_no"}
STATES = {"await_cmp_note", "await_cmp_newcomer", "await_cmp_address"}
WORDS = {"摸排", "敲门", "敲门行动", "摸排清单"}


def _mine(ctx: Ctx) -> list[int]:
    assert ctx.actor is not None
    return [n.id for r, n in ctx.actor.posts if r is Role.neighbor_leader]


def shown_title(lang: str | None, c: Campaign) -> str:
    """A campaign's title as people read it: a notice's relay says 转达."""
    return t(lang, "cmp_relay_title", title=c.title) if c.notice_id is not None else c.title


def _deadline(ctx: Ctx, c: Campaign) -> str:
    return as_utc(c.deadline_at).astimezone(ctx.tz).strftime("%m-%d %H:%M")


def checklist_cmd(ctx: Ctx) -> None:
    """/campaign (or 摸排): the checklist of the campaign under way, where one left off."""
    assert ctx.actor is not None
    found = open_campaigns_for(ctx.session, who=ctx.actor)
    if not found:
        ctx.say(ctx.t("cmp_none"))
    elif len(found) == 1:
        assert found[0].id is not None
        show_page(ctx, found[0], 0)
    else:
        ctx.say(ctx.t("cmp_pick", n=len(found)), buttons=tuple(
            Button(shown_title(ctx.lang, c)[:LABEL_MAX], "cmp_list", c.id or 0, 0)
            for c in found[:10]))


def show_page(ctx: Ctx, c: Campaign, page: int) -> None:
    """Page `page` (1-based) of the actor's households; 0: the page to resume on."""
    assert c.id is not None
    items = marking.items_of(ctx.session, campaign_id=c.id, node_ids=_mine(ctx))
    if not items:
        ctx.ack(ctx.t("cmp_none"))
        ctx.say(ctx.t("cmp_none"))
        return
    size = PAGE_ON.get(ctx.via, PAGE)
    pages = (len(items) + size - 1) // size
    if page <= 0:
        first = next((k for k, it in enumerate(items) if it.outcome is None), 0)
        page = first // size + 1
    page = min(page, pages)
    done = sum(1 for it in items if it.outcome is not None)
    if done == len(items):
        head = ctx.t("cmp_head_done", title=shown_title(ctx.lang, c), total=len(items))
    else:
        head = ctx.t("cmp_head", title=shown_title(ctx.lang, c), deadline=_deadline(ctx, c),
                     done=done,
                     total=len(items), page=page, pages=pages)
    shown = items[(page - 1) * size: page * size]
    width = LABEL_ON.get(ctx.via, LABEL_MAX)
    buttons = [Button(_label(c, it, width), "cmp_item", it.id, 0) for it in shown]
    if ctx.via in PAGE_ON:
        head += "\n" + "\n".join(_label(c, it, ADDRESS_ALL) for it in shown)
    if page > 1:
        buttons.append(Button(ctx.t("cmp_prev"), "cmp_list", c.id, page - 1))
    if page < pages:
        buttons.append(Button(ctx.t("cmp_next"), "cmp_list", c.id, page + 1))
    if ctx.via not in PAGE_ON or len(buttons) < 6:
        buttons.append(Button(ctx.t("cmp_add"), "cmp_add", c.id, items[0].node_id))
    ctx.ack(head.split("\n")[0])
    ctx.say(head, buttons=tuple(buttons), options=_link(ctx, c) if _links(ctx, page) else None)


ADDRESS_ALL = 300


def checklist_url(ctx: Ctx, c: Campaign) -> str:
    """The web page of the actor's checklist of this campaign (core/campaigns/links.py)."""
    assert ctx.actor is not None and ctx.actor.person.id is not None
    key = links.signing_key(ctx.session, settings=ctx.settings, now=ctx.clock.now())
    token = links.issue(key=key, campaign=c, person_id=ctx.actor.person.id)
    return f"{ctx.settings.own_url}/checklist/{token}"


def _links(ctx: Ctx, page: int) -> bool:
    # Telegram refuses a URL button to a private address: only with a public https PUBLIC_URL,
    # and on the first page only (the keyboard is the list there).
    return ctx.via in LINK_ON or (ctx.via == "telegram" and page == 1
                                  and ctx.settings.public_url.startswith("https://"))


def _link(ctx: Ctx, c: Campaign) -> dict[str, Any]:
    # The transport turns these into the card's link row (WeCom: horizontal_content_list).
    return {"link_url": checklist_url(ctx, c), "link_title": ctx.t("cmp_link"),
            "link_text": ctx.t("cmp_link_open")}


def _label(c: Campaign, it: Item, width: int = LABEL_MAX) -> str:
    address = it.address if len(it.address) <= width else "…" + it.address[-width:]
    if it.outcome is None:
        return f"○ {address}"
    return f"✓ {address}·{c.outcomes[it.outcome]}"


def press(ctx: Ctx, p: Press) -> None:
    """A button of a checklist or of a new person's confirmation."""
    assert ctx.actor is not None
    who, s = ctx.actor.person.id, ctx.session
    if p.action == "cmp_list":
        c = load(s, p.case_id)
        check_open(c)
        show_page(ctx, c, p.version)
    elif p.action == "cmp_item":
        item, c, _ = marking.checked(s, item_id=p.case_id, person_id=who, lock=False)
        key = "cmp_item_head" if item.outcome is None else "cmp_item_now"
        text = ctx.t(key, address=item.address,
                     outcome=c.outcomes[item.outcome] if item.outcome is not None else "",
                     note=ctx.t("cmp_note_line", note=item.note) if item.note else "")
        buttons = [Button(o, "cmp_mark", p.case_id, k) for k, o in enumerate(c.outcomes)]
        buttons += [Button(ctx.t("cmp_note"), "cmp_note", p.case_id, 0),
                    Button(ctx.t("cmp_back"), "cmp_list", c.id or 0, 0)]
        ctx.ack(item.address)
        ctx.say(text, buttons=tuple(buttons))
    elif p.action == "cmp_mark":
        _mark(ctx, p)
    elif p.action == "cmp_note":
        marking.checked(s, item_id=p.case_id, person_id=who, lock=False)
        _prompt(ctx, "await_cmp_note", "cmp_prompt_note", {"item": p.case_id})
    elif p.action == "cmp_add":
        c = load(s, p.case_id)
        check_open(c)
        _prompt(ctx, "await_cmp_address", "cmp_prompt_address",
                {"campaign": p.case_id, "node": p.version})
    elif p.action in ("cmp_ok", "cmp_no"):
        n = registry.decide_newcomer(s, newcomer_id=p.case_id, person_id=who,
                                     accept=p.action == "cmp_ok", clock=ctx.clock)
        key = "cmp_newcomer_confirmed" if p.action == "cmp_ok" else "cmp_newcomer_refused"
        ctx.ack(ctx.t(key, name=n.name))
        ctx.say(ctx.t(key, name=n.name))


def _mark(ctx: Ctx, p: Press) -> None:
    assert ctx.actor is not None
    item, c, _ = marking.checked(ctx.session, item_id=p.case_id, person_id=ctx.actor.person.id,
                                 lock=False)
    if not 0 <= p.version < len(c.outcomes):
        raise InvalidInput("campaign_outcome_unknown", outcome=p.version)
    if c.outcomes[p.version] == NEWCOMER:
        _prompt(ctx, "await_cmp_newcomer", "cmp_prompt_newcomer", {"item": p.case_id})
        return
    marking.mark(ctx.session, item_id=p.case_id, outcome=p.version,
                 person_id=ctx.actor.person.id, clock=ctx.clock)
    ctx.ack(ctx.t("cmp_marked", address=item.address, outcome=c.outcomes[p.version]))
    ctx.say(ctx.t("cmp_marked", address=item.address, outcome=c.outcomes[p.version]))
    show_page(ctx, c, 0)


def _prompt(ctx: Ctx, state: str, key: str, data: dict[str, Any]) -> None:
    i = ctx.inbound
    conversations.set_state(ctx.session, platform=i.platform, chat_id=i.chat_id,
                            user_id=i.sender_id, state=state, data=data, now=ctx.clock.now())
    ctx.ack(ctx.t(key))
    ctx.say(ctx.t(key))


def pending_step(ctx: Ctx, state: str, data: dict[str, Any]) -> bool:
    """The words a checklist prompt waited for; False when the state is not ours."""
    if state not in STATES or ctx.inbound.command:
        return False
    assert ctx.actor is not None
    i, s, who = ctx.inbound, ctx.session, ctx.actor.person.id
    conversations.clear_state(s, platform=i.platform, chat_id=i.chat_id, user_id=i.sender_id)
    words = (i.text or "").strip()
    if state == "await_cmp_note":
        photo = next((f"{i.platform}:{m.stored_ref or m.file_ref}" for m in i.media
                      if m.kind == "photo"), None)
        item = marking.note(s, item_id=int(data["item"]), person_id=who, text=words,
                            photo=photo)
        ctx.say(ctx.t("cmp_noted", address=item.address))
        c = load(s, item.campaign_id)
    elif state == "await_cmp_newcomer":
        name, phone = _name_phone(words)
        n = marking.newcomer(s, item_id=int(data["item"]), person_id=who, name=name,
                             phone=phone, clock=ctx.clock)
        ctx.say(ctx.t("cmp_newcomer_saved", name=n.name))
        c = load(s, n.campaign_id)
    else:
        item = add_household(s, campaign_id=int(data["campaign"]), node_id=int(data["node"]),
                             address=words, person_id=who, clock=ctx.clock)
        ctx.say(ctx.t("cmp_added", address=item.address))
        c = load(s, item.campaign_id)
    show_page(ctx, c, 0)
    return True


def _name_phone(words: str) -> tuple[str, str | None]:
    """`张三 13800001234` → the name and the phone (the number may be missing)."""
    parts = words.replace("，", " ").replace(",", " ").split()
    phone = next((p for p in reversed(parts) if normalize_phone(p)), None)
    if phone is None and parts and any(ch.isdigit() for ch in parts[-1]):
        raise InvalidInput("campaign_newcomer_phone", phone=parts[-1][:20])
    name = " ".join(p for p in parts if p != phone)
    return name, phone
