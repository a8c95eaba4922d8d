"""The JSON API's request and response shapes: what /openapi.json describes."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime as _datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, Field

from core import accounts
from core.hierarchy.queries import NodeRef


def _utc(d: _datetime) -> _datetime:
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


# Every time the API gives is an RFC 3339 date-time with its offset; SQLite hands stored UTC
# times back without one, which would not be a valid `date-time` for /openapi.json's readers.
datetime: TypeAlias = Annotated[_datetime, AfterValidator(_utc)]


class NodeOut(BaseModel):
    id: int
    code: str
    name: str
    level: str

    @classmethod
    def of(cls, n: NodeRef) -> NodeOut:
        return cls(id=n.id, code=n.code, name=n.name, level=n.level.value)


class MeOut(BaseModel):
    person_id: int
    name: str
    scopes: list[NodeOut]
    csrf_token: str = Field(description="send as X-CSRF-Token with every POST")


class ThresholdsOut(BaseModel):
    unresolved: tuple[int, int, int] = Field(description="yellow, orange, red")
    overdue: tuple[int, int, int]
    hysteresis: float


class InsideOut(BaseModel):
    node: NodeOut
    level: Literal["green", "yellow", "orange", "red"]
    unresolved: int
    overdue: int


class TileOut(BaseModel):
    node: NodeOut
    level: Literal["green", "yellow", "orange", "red"]
    unresolved: int
    overdue: int
    has_children: bool
    latitude: float | None
    longitude: float | None
    inside: list[InsideOut] = Field(default_factory=list,
                                    description="the tile's own children and their colours")
    boundary: dict[str, Any] | None = Field(
        None, description="the node's shape (boundaries.geojson) as a GeoJSON MultiPolygon, "
        "cut down to about BOUNDARY_MAP_POINTS points; null when it has none")


class MapOut(BaseModel):
    node: NodeOut
    level: Literal["green", "yellow", "orange", "red"]
    unresolved: int
    overdue: int
    breadcrumbs: list[NodeOut]
    thresholds: ThresholdsOut
    tiles: list[TileOut]


class CaseRowOut(BaseModel):
    id: int
    state: str
    text: str
    category: str | None
    holder_name: str | None
    holder_role: str | None
    opened_at: datetime
    deadline_at: datetime | None
    overdue: bool
    rating: int | None


class CasePageOut(BaseModel):
    items: list[CaseRowOut]
    next_before: int | None = Field(description="pass as `before` for the next page")


class EventOut(BaseModel):
    id: int
    at: datetime
    kind: str
    actor_id: int | None
    role: str | None
    holder_id: int | None
    from_state: str | None
    to_state: str | None
    note: str | None
    via: str | None


class AttachmentOut(BaseModel):
    id: int
    kind: str
    purpose: str
    url: str | None
    thumb_url: str | None
    mime: str | None
    caption: str | None
    latitude: float | None
    longitude: float | None


class HoldingOut(BaseModel):
    person_id: int | None
    name: str | None
    role: str | None
    since: datetime
    until: datetime | None


class CaseOut(BaseModel):
    id: int
    version: int
    state: str
    text: str
    category: str | None
    holder_id: int | None
    holder_name: str | None
    holder_role: str | None
    stage: str | None
    deadline_at: datetime | None
    overdue: bool
    opened_at: datetime
    rating: int | None
    merged_into_id: int | None
    may_act: bool
    events: list[EventOut]
    attachments: list[AttachmentOut]
    holders: list[HoldingOut]


class ActionIn(BaseModel):
    version: int = Field(ge=0, le=2**31 - 1)
    text: str | None = Field(default=None, description="reply text, or the reason / note")
    into_case_id: int | None = Field(default=None, ge=0, le=2**31 - 1,
                                     description="merge: the case to merge into")


class TierOut(BaseModel):
    """First answers of the cases that came to this tier, each by the tier's own deadline:
    total = on_time + late + missed (missed: the sweep handed it up unanswered)."""

    role: str
    on_time: int
    late: int
    missed: int
    total: int
    rate: float | None
    escalations: int


class LeaderOut(BaseModel):
    person_id: int
    name: str
    rated: int
    mean: float


class CategoryOut(BaseModel):
    name: str | None
    received: int
    closed: int


class WeekOut(BaseModel):
    """A Monday-to-Sunday week (local); the range's first and last weeks count only the days
    inside the range."""

    start: datetime
    received: int
    closed: int
    overdue_replies: int


class FiguresOut(BaseModel):
    node: NodeOut
    start: datetime
    end: datetime
    received: int
    closed: int
    rejected: int
    merged: int
    resolution_rate: float | None = Field(description="办结率")
    median_first_reply_s: float | None
    median_close_s: float | None
    mean_rating: float | None
    tiers: list[TierOut]
    rating_by_neighbor_leader: list[LeaderOut] = Field(description=(
        "ratings credited to the 邻长 who resolved the case: the `leaders` best- then "
        "worst-rated, best first (default 50 each)"))
    weeks: list[WeekOut]
    categories: list[CategoryOut] = Field(default_factory=list, description=(
        "cases received per category, most first (name null: not categorised)"))
    from_rollup: bool = Field(False, description=(
        "towns and districts over whole days are read from daily per-village rollups, "
        "refreshed every minute (medians within 2 %); villages and below are counted live"))
    as_of: datetime | None = Field(None, description="when the rollups were last refreshed")


class RankOut(BaseModel):
    rank: int | None
    node: NodeOut
    received: int
    closed: int
    resolution_rate: float | None
    on_time_rate: float | None
    mean_rating: float | None
    score: float


class RankingOut(BaseModel):
    level: str
    min_cases: int
    ranked: list[RankOut]
    too_few: list[RankOut]


class PasswordIn(BaseModel):
    phone: str
    password: str = Field(min_length=accounts.MIN_PASSWORD)


class OkOut(BaseModel):
    ok: bool = True
