"""Where a posted request belongs: by coordinates (the deepest boundary holding the point,
else the nearest 邻 point close by), by address_id (a grid code), by address_string (a
household's address, 人房关联), else the town office of the key's subtree."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.cases.duplicates import distance_m
from core.errors import NotFound
from core.hierarchy.boundaries import B
from core.hierarchy.model import Level, Node, Post, Role
from core.hierarchy.queries import NodeRef, ancestors, node_by_code, node_by_id
from core.hierarchy.tree import subtree_bounds

N: sa.Table = Node.__table__  # type: ignore[attr-defined]
POST: sa.Table = Post.__table__  # type: ignore[attr-defined]
# A 邻 is a handful of houses: its point stands for a place within a few hundred metres.
NEAR_M = 300.0
_DEG = NEAR_M / 111_000 * 2  # a box comfortably wider than NEAR_M at Chinese latitudes


class PlacedBy(StrEnum):
    coordinates = "coordinates"
    address_id = "address_id"
    address = "address"
    office = "office"  # nothing placed it: the town office of the key's subtree


@dataclass(frozen=True)
class Placement:
    node: NodeRef
    by: PlacedBy
    given: str | None  # what the request named a place by: "coordinates", "address" or None


def _inside_ring(lon: float, lat: float, ring: list[list[float]]) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def contains(geometry: dict[str, Any], lat: float, lon: float) -> bool:
    """Whether a GeoJSON Polygon or MultiPolygon holds the point (holes excluded)."""
    polys = ([geometry["coordinates"]] if geometry.get("type") == "Polygon"
             else geometry.get("coordinates", []))
    for rings in polys:
        if rings and _inside_ring(lon, lat, rings[0]) and not any(
                _inside_ring(lon, lat, hole) for hole in rings[1:]):
            return True
    return False


def _by_boundary(session: Session, scope: NodeRef, lat: float, lon: float) -> int | None:
    low, high = subtree_bounds(scope.path)
    q = (sa.select(B.c.node_id, B.c.geometry, N.c.path).join(N, N.c.id == B.c.node_id)
         .where(N.c.path >= low, N.c.path < high)
         .where(B.c.west <= lon, B.c.east >= lon, B.c.south <= lat, B.c.north >= lat))
    best: tuple[int, int] | None = None  # (depth, node id): the deepest boundary wins
    for node_id, geometry, path in session.execute(q):
        if contains(json.loads(geometry), lat, lon):
            depth = path.count("/")
            if best is None or depth > best[0]:
                best = (depth, node_id)
    return best[1] if best else None


def _by_point(session: Session, scope: NodeRef, lat: float, lon: float) -> int | None:
    low, high = subtree_bounds(scope.path)
    q = (sa.select(N.c.id, N.c.latitude, N.c.longitude)
         .where(N.c.path >= low, N.c.path < high, N.c.level == Level.neighborhood.value)
         .where(N.c.latitude.between(lat - _DEG, lat + _DEG))
         .where(N.c.longitude.between(lon - _DEG, lon + _DEG)))
    near = [(distance_m((lat, lon), (a, b)), nid) for nid, a, b in session.execute(q)]
    near = [x for x in near if x[0] <= NEAR_M]
    return min(near)[1] if near else None


def _by_address(session: Session, scope: NodeRef, address: str) -> int | None:
    wanted = "".join(address.split())
    if not wanted:
        return None
    low, high = subtree_bounds(scope.path)
    # Spaces do not tell two households apart: compare the addresses without them.
    squeezed = sa.func.replace(POST.c.address, " ", "")
    q = (sa.select(POST.c.node_id).join(N, N.c.id == POST.c.node_id)
         .where(POST.c.role == Role.resident.value, POST.c.moved_at.is_(None))
         .where(N.c.path >= low, N.c.path < high, squeezed == wanted)
         .order_by(POST.c.id).limit(1))
    return session.execute(q).scalar_one_or_none()


def _by_code(session: Session, scope: NodeRef, code: str) -> int | None:
    try:
        node = node_by_code(session, code.strip())
    except NotFound:
        return None
    return node.id if scope.contains(node) else None


def office_of(session: Session, scope: NodeRef) -> NodeRef:
    """The town office for a scope: the scope itself when it is a town or district, else the
    nearest town (or district) above it."""
    if scope.level in (Level.town, Level.district):
        return scope
    for node in reversed(ancestors(session, scope)):
        if node.level in (Level.town, Level.district):
            return node
    return scope


def place(session: Session, *, scope: NodeRef, lat: float | None, lon: float | None,
          address_id: str | None, address: str | None) -> Placement:
    """The node a request goes to, and how it was found."""
    found: tuple[int, PlacedBy] | None = None
    if lat is not None and lon is not None:
        nid = _by_boundary(session, scope, lat, lon) or _by_point(session, scope, lat, lon)
        found = (nid, PlacedBy.coordinates) if nid else None
    if found is None and address_id:
        nid = _by_code(session, scope, address_id)
        found = (nid, PlacedBy.address_id) if nid else None
    if found is None and address:
        nid = _by_address(session, scope, address)
        found = (nid, PlacedBy.address) if nid else None
    given = ("coordinates" if lat is not None and lon is not None else
             "address" if address_id or address else None)
    if found is None:
        return Placement(office_of(session, scope), PlacedBy.office, given)
    return Placement(node_by_id(session, found[0]), found[1], given)
