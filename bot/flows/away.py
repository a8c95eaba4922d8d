"""/away and /back: a leader's absence with a stand-in, set by themselves or by an admin."""

from __future__ import annotations

from bot.flows.context import Ctx
from bot.notify.render import local_time, role_label
from core.cases import away
from core.clock import as_utc
from core.errors import InvalidInput, NotFound
from core.hierarchy.queries import person_by_phone
from core.hierarchy.tree import normalize_phone


def _whom(ctx: Ctx, args: list[str]) -> tuple[int, list[str]]:
    """The person an /away or /back is about: a leading phone number names someone else (an
    admin's command, scope-checked in core), else the sender."""
    assert ctx.actor is not None
    if args and normalize_phone(args[0]) and not away.looks_like_until(args[0]):
        phone = normalize_phone(args[0])
        assert phone is not None
        pid = person_by_phone(ctx.session, phone)
        if pid is None:
            raise NotFound("away_stand_in_unknown", text=args[0][:20])
        return pid, args[1:]
    return ctx.actor.person.id, args


def _name(ctx: Ctx, person_id: int) -> str:
    from core.hierarchy.model import Person

    p = ctx.session.get(Person, person_id)
    return p.name if p else ""


def away_cmd(ctx: Ctx) -> None:
    """/away 3d [stand-in] · /away 12-05 · /away <phone> 3d [stand-in] (admins)."""
    assert ctx.actor is not None
    who, rest = _whom(ctx, list(ctx.inbound.args))
    if not rest:
        running = away.active(ctx.session, person_id=who, now=ctx.clock.now())
        if running is None:
            ctx.say(ctx.t("away_usage"))
            return
        ctx.say(ctx.t("away_status", who=_name(ctx, who),
                      until=local_time(ctx.lang, as_utc(running.ends_at), ctx.tz),
                      stand_in=_name(ctx, running.stand_in_id)))
        return
    if len(rest) > 2:
        raise InvalidInput("usage", usage="/away 3d [代办人手机号或姓名]")
    done = away.set_away(ctx.session, clock=ctx.clock, tz=ctx.tz, setter_id=ctx.actor.person.id,
                         person_id=who, until=rest[0], stand_in=rest[1] if len(rest) > 1 else None)
    ctx.say(ctx.t("away_set", who=_name(ctx, who),
                  until=local_time(ctx.lang, as_utc(done.away.ends_at), ctx.tz),
                  role=role_label(ctx.lang, done.away.stand_in_role),
                  stand_in=done.stand_in.name, n=done.handed))


def back_cmd(ctx: Ctx) -> None:
    """/back · /back <phone> (admins): the absence ends now and the cases come back."""
    assert ctx.actor is not None
    who, rest = _whom(ctx, list(ctx.inbound.args))
    if rest:
        raise InvalidInput("usage", usage="/back")
    done = away.end_away(ctx.session, clock=ctx.clock, setter_id=ctx.actor.person.id,
                         person_id=who)
    ctx.say(ctx.t("away_back", who=_name(ctx, who), stand_in=done.stand_in.name,
                  n=done.handed))
