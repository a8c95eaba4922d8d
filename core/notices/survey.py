"""满意度测评: a notice to the residents of a subtree asking each to rate their own 邻长 with
1–5 buttons, one answer per resident (a second press changes it), and the results per 邻长.

It rides on the notices: the notice row (`survey` set), its resident recipients (those with a
chat; nobody is asked to pass it on: the 邻长 is the one being rated) and the notifier's copies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.policy import CasePolicy
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.hierarchy.model import Node, Post, Role
from core.hierarchy.queries import Actor, NodeRef
from core.hierarchy.tree import subtree_bounds
from core.notices import services
from core.notices.model import ANSWER, NOTICE, RECIPIENT, Notice, NoticeState

N: sa.Table = Node.__table__  # type: ignore[attr-defined]
POST: sa.Table = Post.__table__  # type: ignore[attr-defined]
SCORES = range(1, 6)


def start(session: Session, *, who: Actor | None, node: NodeRef, text: str, now: datetime,
          policy: CasePolicy) -> services.Sent:
    """Send the survey to every resident with a chat in `node`'s subtree (the sender's own
    subtree only); refused whole when nobody there could answer."""
    return services.send(session, who=who, node=node, audience=[Role.resident.value],
                         text=text, confirm=False, deadline=None, now=now,
                         reping=timedelta(0), policy=policy, survey=True)


def leader_of(session: Session, neighborhood_id: int) -> int | None:
    """The 邻长 of a 邻 (the first by id when a 邻 has two)."""
    return session.execute(sa.select(sa.func.min(POST.c.person_id)).where(
        POST.c.node_id == neighborhood_id, POST.c.role == Role.neighbor_leader.value)
    ).scalar_one_or_none()


def answer(session: Session, *, notice_id: int, person_id: int, score: int,
           now: datetime) -> str:
    """A resident's press: "new" (first answer), "changed" (another score than before) or
    "same"; refused for a person the survey was not sent to, or a closed survey."""
    notice = session.get(Notice, notice_id)
    if notice is None or not notice.survey:
        raise NotFound("survey_unknown", notice=notice_id)
    if score not in SCORES:
        raise InvalidInput("survey_score_bad")
    rec = session.execute(sa.select(RECIPIENT.c.id, RECIPIENT.c.node_id).where(
        RECIPIENT.c.notice_id == notice_id, RECIPIENT.c.person_id == person_id,
        RECIPIENT.c.role == Role.resident.value)).first()
    if rec is None:
        raise PermissionDenied("survey_not_yours")
    if notice.state != NoticeState.open.value:
        raise Conflict("survey_closed")
    before = session.execute(sa.select(ANSWER.c.score).where(
        ANSWER.c.notice_id == notice_id, ANSWER.c.person_id == person_id)).first()
    if before is not None:
        if int(before.score) == score:
            return "same"
        session.execute(sa.update(ANSWER).where(
            ANSWER.c.notice_id == notice_id, ANSWER.c.person_id == person_id).values(
            score=score, changed_at=now))
        return "changed"
    leader = leader_of(session, int(rec.node_id))
    if leader is None:
        raise Conflict("survey_no_leader")
    path = session.execute(sa.select(N.c.path).where(N.c.id == rec.node_id)).scalar_one()
    # The primary key (survey, resident) is what makes a press count once, even raced.
    session.execute(sa.insert(ANSWER).values(
        notice_id=notice_id, person_id=person_id, leader_id=leader, node_path=path,
        score=score, answered_at=now))
    # The notice's receipts count answers as confirmations (its status page shows them).
    session.execute(sa.update(RECIPIENT).where(RECIPIENT.c.id == rec.id).values(
        confirmed_at=now, confirmed_via="survey"))
    return "new"


@dataclass(frozen=True)
class Result:
    answers: int
    mean: float
    node_path: str = ""  # the 邻 of the (first) resident who answered

    def needs_adjusting(self, *, below: float, min_answers: int) -> bool:
        """需调整: enough answers, and their mean under the threshold."""
        return self.answers >= min_answers and self.mean < below


def results(session: Session, *, scope: NodeRef, start: datetime, end: datetime,
            leaders: Iterable[int] | None = None) -> dict[int, Result]:
    """Per 邻长: the answers about them to surveys started in [start, end) in the scope."""
    low, high = subtree_bounds(scope.path)
    q = (sa.select(ANSWER.c.leader_id, sa.func.count(), sa.func.avg(ANSWER.c.score),
                   sa.func.min(ANSWER.c.node_path))
         .join(NOTICE, NOTICE.c.id == ANSWER.c.notice_id)
         .where(NOTICE.c.survey.is_(True), NOTICE.c.created_at >= start,
                NOTICE.c.created_at < end, ANSWER.c.node_path >= low,
                ANSWER.c.node_path < high)
         .group_by(ANSWER.c.leader_id))
    if leaders is not None:
        q = q.where(ANSWER.c.leader_id.in_(list(leaders)))
    return {int(pid): Result(int(n), float(avg), str(path))
            for pid, n, avg, path in session.execute(q)}
