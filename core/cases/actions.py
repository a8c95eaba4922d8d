"""What leaders do with a case: accept, reply, ask, resolve, escalate, whistle, merge,
reject, reassign. Each takes the version the button was made for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from core.cases import messages as msg
from core.cases import ops
from core.cases.messages import Notice
from core.cases.model import ACTIVE_STATES, Case, EventKind, Stage, State
from core.cases.permissions import may_act, may_whistle, refuse
from core.cases.routing import Target, category_by_name, department_for, next_target
from core.cases.services import (
    NewAttachment,
    _clean_text,
    attach,
    new_holder_text,
    resident_address,
)
from core.clock import Clock
from core.errors import Conflict, InvalidInput
from core.hierarchy.model import Category, Person, Role
from core.hierarchy.queries import (
    Actor,
    NodeRef,
    PersonRef,
    actor,
    chain_for_node,
    node_by_id,
)
from core.hierarchy.tree import LEADER_ROLES
from core.outbox import Draft

VERB_ZH = {
    "accept": "受理", "reply": "答复", "ask_more": "请居民补充", "resolve": "办结",
    "escalate": "转上级", "whistle": "吹哨", "merge": "合并", "reject": "驳回",
    "reassign": "改派",
}


@dataclass
class _Ctx:
    case: Case
    who: Actor
    home: NodeRef
    holder_node: NodeRef | None
    now: datetime
    via: str | None


def _begin(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
           action: str, via: str | None) -> _Ctx:
    """Lock the case, check the person may act on it, then that the button is current."""
    now = clock.now()
    case = ops.load(session, case_id)
    who = actor(session, person_id)
    home = node_by_id(session, case.home_node_id)
    holder_node = node_by_id(session, case.holder_node_id) if case.holder_node_id else None
    if not may_act(who, holder_id=case.holder_id, holder_role=case.holder_role,
                   holder_node=holder_node, home=home):
        raise refuse(session, case=case, person_id=person_id, action=action, at=now, via=via,
                     reason=f"您不是工单#{case_id}的承办人或其上级，不能{VERB_ZH[action]}")
    ops.check_version(session, case, version)
    return _Ctx(case, who, home, holder_node, now, via)


def _own_post(c: _Ctx) -> Target:
    """The post an acting person holds the case on when they take it over: the holder's own
    post, else their lowest leading post above it, else their office."""
    case, who = c.case, c.who
    if c.holder_node is not None and case.holder_role is not None:
        if who.holds(Role(case.holder_role), c.holder_node):
            return Target(who.person, Role(case.holder_role), c.holder_node)
        above = [(r, n) for r, n in who.posts
                 if (r in LEADER_ROLES or r is Role.department) and n.contains(c.holder_node)]
        if above:
            r, n = max(above, key=lambda p: len(p[1].path))
            return Target(who.person, r, n)
    offices = [n for n in who.admin_scopes() if n.contains(c.home)]
    n = max(offices, key=lambda n: len(n.path))
    return Target(who.person, Role.admin, n)


def _holder_name(session: Session, case: Case) -> str:
    person = session.get(Person, case.holder_id) if case.holder_id else None
    return f"{msg.role_label(case.holder_role)}{person.name if person else ''}"


def _take(session: Session, c: _Ctx, drafts: list[Draft]) -> dict[str, int]:
    """A superior or admin acting on someone else's case takes it over."""
    case = c.case
    if case.holder_id == c.who.person.id:
        return {}
    previous = case.holder_id
    ops.assign(case, _own_post(c))
    drafts += ops.to_person(case, previous, kind="taken_over",
                            text=f"{msg.title(case)}已由{_holder_name(session, case)}接手处理。")
    return {"taken_from": previous} if previous is not None else {}


def _first_answer(case: Case, now: datetime) -> None:
    if case.first_reply_at is None:
        case.first_reply_at = now
        case.first_reply_role = case.holder_role
        case.first_reply_on_time = case.deadline_at is None or now <= ops.as_utc(case.deadline_at)


def _to_accepted(session: Session, c: _Ctx, drafts: list[Draft]) -> EventKind:
    """Open → accepted: the holder's first answer starts the handling deadline."""
    case = c.case
    detail = _take(session, c, drafts)
    reporting_in = case.holder_role == Role.department.value
    _first_answer(case, c.now)
    case.state = State.accepted.value
    case.accepted_at = c.now
    if reporting_in:
        case.department_reported_at = c.now
    ops.start_stage(case, Stage.handle, c.now)
    ops.touch(case, c.now)
    kind = EventKind.reported_in if reporting_in else EventKind.accepted
    ops.record(session, case, kind=kind, at=c.now, actor_id=c.who.person.id,
               from_state=State.open.value, role=case.holder_role, via=c.via, detail=detail)
    return kind


def accept(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
           via: str | None = None) -> Case:
    """Take the case on (a department liaison: report in, 报到); the handling deadline starts."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="accept", via=via)
    ops.require_state(c.case, {State.open}, "受理")
    drafts: list[Draft] = []
    kind = _to_accepted(session, c, drafts)
    case = c.case
    verb = "报到受理" if kind is EventKind.reported_in else "受理"
    drafts += ops.to_residents(session, case, kind="accepted",
                               text=f"{msg.title(case)}已由{_holder_name(session, case)}{verb}，"
                                    f"正在处理。")
    ops.send(session, drafts, c.now)
    return case


def _say(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
         text: str, via: str | None, action: str, kind: EventKind, header: str) -> Case:
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action=action, via=via)
    body = _clean_text(text, required=True)
    ops.require_state(c.case, {State.open, State.accepted}, VERB_ZH[action])
    drafts: list[Draft] = []
    case = c.case
    if case.state == State.open.value:
        _to_accepted(session, c, drafts)
    case.updated_at = c.now
    ops.record(session, case, kind=kind, at=c.now, actor_id=c.who.person.id, via=via, note=body,
               role=case.holder_role)
    drafts += ops.to_residents(session, case, kind=kind.value,
                               text=f"【{_holder_name(session, case)}{header}】{msg.title(case)}\n"
                                    f"{body}")
    ops.send(session, drafts, c.now)
    return case


def reply(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
          text: str, via: str | None = None) -> Case:
    """Answer the resident; a first answer also accepts the case."""
    return _say(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
                text=text, via=via, action="reply", kind=EventKind.replied, header="答复")


def ask_more(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
             question: str, via: str | None = None) -> Case:
    """Ask the resident for more (a photo, the exact spot); counts as the first answer."""
    return _say(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
                text=question, via=via, action="ask_more", kind=EventKind.asked_more,
                header="请您补充")


def resolve(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
            note: str | None = None, after_photos: tuple[NewAttachment, ...] = (),
            via: str | None = None) -> Case:
    """Say it is fixed; the resident has the confirm window to confirm and rate."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="resolve", via=via)
    ops.require_state(c.case, {State.open, State.accepted}, "办结")
    body = _clean_text(note, required=False)
    case, drafts = c.case, list[Draft]()
    before = case.state
    _take(session, c, drafts)
    _first_answer(case, c.now)
    case.state = State.resolved.value
    case.resolved_at = c.now
    ops.start_stage(case, Stage.confirm, c.now)
    ops.touch(case, c.now)
    event = ops.record(session, case, kind=EventKind.resolved, at=c.now,
                       actor_id=c.who.person.id, from_state=before, role=case.holder_role,
                       via=via, note=body or None)
    session.flush()
    attach(session, case, event, after_photos, purpose="after", by=c.who.person.id, now=c.now)
    window = msg.span(ops.policy_of(case).duration(Stage.confirm))
    photos = f"（附整改照片{len(after_photos)}张）" if after_photos else ""
    drafts += ops.to_residents(
        session, case, kind="resolved",
        text=(f"{msg.title(case)}：{_holder_name(session, case)}反馈已解决{photos}。"
              f"{body}\n请确认并评价（1-5星）；如未解决请点「没解决」。{window}内未确认将自动办结。"),
    )
    ops.send(session, drafts, c.now)
    return case


def hand_over(session: Session, case: Case, target: Target, *, now: datetime, stage: Stage,
              kind: EventKind, actor_id: int | None, via: str | None, note: str | None,
              detail: dict[str, object], intro: str, notices: list[Notice] | None = None,
              mirrors: dict[int, list[int]] | None = None,
              followers: list[int] | None = None) -> list[Draft]:
    """Give the case to a new holder with a fresh deadline, and say so to everyone concerned.
    With `notices`, the new holder's message joins them (the sweep digests them per person)."""
    before_state, before_role = case.state, case.holder_role
    previous = case.holder_id
    ops.assign(case, target)
    case.state = State.open.value
    ops.start_stage(case, stage, now)
    ops.touch(case, now)
    ops.record(session, case, kind=kind, at=now, actor_id=actor_id, from_state=before_state,
               role=before_role, via=via, note=note, detail={"from": previous, **detail})
    tz = ops.policy_of(case).tz
    why = f"\n原因：{note}" if note else ""
    text = new_holder_text(case, target, intro=intro, tz=tz,
                           address=resident_address(session, case)) + why
    actions = msg.holder_actions(case, may_whistle=target.role in (Role.secretary, Role.admin))
    drafts: list[Draft] = []
    if notices is None:
        drafts += ops.to_person(case, target.person.id, kind=kind.value, text=text,
                                actions=actions)
    else:
        assert case.id is not None
        notices.append(msg.Notice(
            person_id=target.person.id, case_id=case.id, version=case.version, kind=kind.value,
            text=text, line=f"{intro}：{msg.title(case)}，{msg.deadline_phrase(case, tz)}",
            actions=actions,
        ))
    drafts += ops.to_residents(
        session, case, kind="progress", people=followers,
        text=f"{msg.title(case)}已转交{msg.role_label(target.role.value)}{target.person.name}处理。",
    )
    drafts += ops.to_chats(case, ops.mirror_bindings(session, target.node, mirrors),
                           kind="mirror", text=text)
    return drafts


def escalate(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
             reason: str, via: str | None = None) -> Case:
    """解决不了，转上级: hand the case to the next filled tier, with a reason."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="escalate", via=via)
    why = _clean_text(reason, required=True)
    ops.require_state(c.case, {State.open, State.accepted}, "转上级")
    case = c.case
    assert case.holder_role is not None and c.holder_node is not None
    target = next_target(chain_for_node(session, c.home), role=case.holder_role,
                         node=c.holder_node, holder_id=case.holder_id or -1)
    if target is None:
        raise Conflict(f"工单#{case_id}已在最高一级，无法再转上级；可吹哨转职能部门或由管理员改派")
    case.escalations += 1
    drafts = hand_over(session, case, target, now=c.now, stage=Stage.reply,
                       kind=EventKind.escalated, actor_id=c.who.person.id, via=via, note=why,
                       detail={"auto": False}, intro="转上级工单")
    ops.send(session, drafts, c.now)
    return case


def whistle(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
            category: str | None = None, reason: str | None = None,
            via: str | None = None) -> Case:
    """吹哨报到: hand the case to the department that the category names, under the case's
    town (or district); its liaison must report in within the department deadline."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="whistle", via=via)
    case = c.case
    if not may_whistle(c.who, home=c.home):
        raise refuse(session, case=case, person_id=person_id, action="whistle", at=c.now,
                     via=via, reason="只有村(社区)书记或乡镇、区县管理员可以吹哨")
    ops.require_state(case, {State.open, State.accepted}, "吹哨")
    if category:
        cat = category_by_name(session, category)
        case.category_id = cat.id
    elif case.category_id is not None:
        found = session.get(Category, case.category_id)
        assert found is not None
        cat = found
    else:
        raise InvalidInput("请选择问题类别，以确定由哪个职能部门接单")
    target = department_for(session, home=c.home, category=cat)
    case.department_node_id = target.node.id
    case.department_reported_at = None
    drafts = hand_over(session, case, target, now=c.now, stage=Stage.department,
                       kind=EventKind.whistled, actor_id=c.who.person.id, via=via,
                       note=_clean_text(reason, required=False) or None,
                       detail={"department": target.node.code, "category": cat.name},
                       intro="吹哨报到")
    ops.send(session, drafts, c.now)
    return case


def merge(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
          into_case_id: int, via: str | None = None) -> Case:
    """Fold a duplicate into another case; the duplicate's residents follow the other one."""
    if into_case_id == case_id:
        raise InvalidInput("不能把工单合并到它自己")
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="merge", via=via)
    ops.require_state(c.case, set(ACTIVE_STATES), "合并")
    target = ops.load(session, into_case_id)
    ops.require_state(target, set(ACTIVE_STATES), "接收合并")
    t_home = node_by_id(session, target.home_node_id)
    t_node = node_by_id(session, target.holder_node_id) if target.holder_node_id else None
    if not (may_act(c.who, holder_id=target.holder_id, holder_role=target.holder_role,
                    holder_node=t_node, home=t_home) or c.who.leads(t_home)):
        raise refuse(session, case=c.case, person_id=person_id, action="merge", at=c.now,
                     via=via, reason=f"工单#{into_case_id}不在您的辖区，不能合并过去")
    case = c.case
    before = case.state
    case.state = State.merged.value
    case.merged_into_id = into_case_id
    case.close_reason = "merged"
    ops.stop_clock(case)
    ops.touch(case, c.now)
    ops.record(session, case, kind=EventKind.merged, at=c.now, actor_id=c.who.person.id,
               from_state=before, role=case.holder_role, via=via,
               detail={"into": into_case_id})
    newcomers = [p for p in ops.followers(session, case_id)
                 if p not in ops.followers(session, into_case_id)]
    ops.follow(session, into_case_id, newcomers)
    target.updated_at = c.now
    ops.record(session, target, kind=EventKind.merged_in, at=c.now, actor_id=c.who.person.id,
               role=target.holder_role, via=via, detail={"from": case_id})
    ops.send(session, ops.to_residents(
        session, case, kind="merged", with_buttons=False,
        text=(f"{msg.title(case)}与{msg.title(target)}是同一问题，已合并；"
              f"后续进展会在工单#{into_case_id}中通知您。"),
    ), c.now)
    return case


def reject(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
           reason: str, via: str | None = None) -> Case:
    """Turn the case down with a reason the residents see (spam, not in scope)."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="reject", via=via)
    why = _clean_text(reason, required=True)
    ops.require_state(c.case, set(ACTIVE_STATES), "驳回")
    case = c.case
    before = case.state
    case.state = State.rejected.value
    case.reject_reason = why
    case.close_reason = "rejected"
    case.closed_at = c.now
    ops.stop_clock(case)
    ops.touch(case, c.now)
    ops.record(session, case, kind=EventKind.rejected, at=c.now, actor_id=c.who.person.id,
               from_state=before, role=case.holder_role, via=via, note=why)
    ops.send(session, ops.to_residents(
        session, case, kind="rejected", with_buttons=False,
        text=f"{msg.title(case)}未予受理，原因：{why}",
    ), c.now)
    return case


def reassign(session: Session, *, clock: Clock, case_id: int, person_id: int, version: int,
             to_person_id: int, reason: str, via: str | None = None) -> Case:
    """An admin gives the case to somebody else in their subtree, who must answer afresh."""
    c = _begin(session, clock=clock, case_id=case_id, person_id=person_id, version=version,
               action="reassign", via=via)
    case = c.case
    if not c.who.is_admin_of(c.home):
        raise refuse(session, case=case, person_id=person_id, action="reassign", at=c.now,
                     via=via, reason="只有管理员可以改派工单")
    ops.require_state(case, {State.open, State.accepted}, "改派")
    why = _clean_text(reason, required=True)
    if to_person_id == case.holder_id:
        raise InvalidInput("该人员已是承办人")
    target = _post_for(actor(session, to_person_id), c)
    previous = case.holder_id
    drafts = hand_over(session, case, target, now=c.now, stage=Stage.reply,
                       kind=EventKind.reassigned, actor_id=c.who.person.id, via=via, note=why,
                       detail={}, intro="改派工单")
    drafts += ops.to_person(case, previous, kind="reassigned_away",
                            text=f"{msg.title(case)}已由管理员改派给{target.person.name}。"
                                 f"原因：{why}")
    ops.send(session, drafts, c.now)
    return case


def _post_for(person: Actor, c: _Ctx) -> Target:
    """The post a reassigned case is held on: the person's post in the case's chain, else a
    department or leader post inside the admin's subtree."""
    scopes = [n for n in c.who.admin_scopes() if n.contains(c.home)]
    candidates = [
        (r, n) for r, n in person.posts
        if (r in LEADER_ROLES or r in (Role.department, Role.admin))
        and any(s.contains(n) for s in scopes)
    ]
    if not candidates:
        raise InvalidInput(f"{person.person.name}在您的辖区内没有职务，不能接单")
    on_path = [(r, n) for r, n in candidates if n.contains(c.home)]
    r, n = max(on_path or candidates, key=lambda p: len(p[1].path))
    return Target(PersonRef(person.person.id, person.person.name), r, n)
