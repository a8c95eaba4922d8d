"""boundaries.geojson (FORMATS.md): a node's shape on the map, read all or nothing with the
other import files, stored as given (for export) and cut down (for the map)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.settings import Settings

GEO_SUFFIXES = (".geojson",)
# (file, feature number, reason): importer.Errors.add with unit "feature ".
Sink = Callable[[str, int, str], None]


class NodeBoundary(SQLModel, table=True):
    __tablename__ = "node_boundary"

    node_id: int = Field(sa_column=sa.Column(
        sa.Integer, sa.ForeignKey("node.id", ondelete="CASCADE"), primary_key=True))
    geometry: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # as imported
    shape: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # cut down, for the map
    west: float
    south: float
    east: float
    north: float


B: sa.Table = NodeBoundary.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 32 * 2**20
    max_points: int = 50_000
    map_points: int = 400

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(s.boundary_max_bytes, s.boundary_max_points, s.boundary_map_points)


@dataclass(frozen=True)
class Boundary:
    code: str
    geometry: dict[str, Any]


def is_boundaries(path: Path) -> bool:
    return path.suffix.lower() in GEO_SUFFIXES


def _ring_error(ring: Any) -> str | None:
    if not isinstance(ring, list) or len(ring) < 4:
        return "a ring needs at least 4 positions (the first repeated at the end)"
    for pos in ring:
        if (not isinstance(pos, list) or len(pos) < 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           and math.isfinite(v) for v in pos[:2])):
            return f"a position is not [longitude, latitude]: {json.dumps(pos)[:60]}"
        if not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
            return (f"position {pos[0]}, {pos[1]} is outside WGS 84 longitude/latitude "
                    "(longitude first)")
    if ring[0][:2] != ring[-1][:2]:
        return "a ring is not closed (its last position must repeat the first)"
    return None


def _geometry_error(geom: Any, max_points: int) -> str | None:
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geom.get("type") if isinstance(geom, dict) else None
        return f"geometry must be a Polygon or MultiPolygon, not {kind!r}"
    coords = geom.get("coordinates")
    polygons = [coords] if geom["type"] == "Polygon" else coords
    if not isinstance(polygons, list) or not polygons:
        return "geometry has no coordinates"
    points = 0
    for poly in polygons:
        if not isinstance(poly, list) or not poly:
            return "a polygon has no rings"
        for ring in poly:
            bad = _ring_error(ring)
            if bad:
                return bad
            points += len(ring)
    if points > max_points:
        return f"the shape has {points} points, more than {max_points} (BOUNDARY_MAX_POINTS)"
    return None


def read(path: Path, *, known: Callable[[str], bool], limits: Limits,
         on_error: Sink) -> list[Boundary]:
    """The features of one file; a bad feature (or a whole bad file, feature 0) goes to
    `on_error` and is left out."""
    name = path.name
    size = path.stat().st_size
    if size > limits.max_bytes:
        on_error(name, 0, f"the file is {size} bytes, more than {limits.max_bytes} "
                 "(BOUNDARY_MAX_BYTES); simplify the shapes or split the file")
        return []
    try:
        doc = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        on_error(name, 0, f"not a GeoJSON file ({exc})")
        return []
    except RecursionError:  # arrays nested thousands deep: no geometry looks like that
        on_error(name, 0, "not a GeoJSON file (nested too deep)")
        return []
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" \
            or not isinstance(doc.get("features"), list):
        on_error(name, 0, "not a GeoJSON FeatureCollection")
        return []
    out: list[Boundary] = []
    first: dict[str, int] = {}
    for n, f in enumerate(doc["features"], start=1):
        props = f.get("properties") if isinstance(f, dict) else None
        code = props.get("code") if isinstance(props, dict) else None
        if not isinstance(f, dict) or f.get("type") != "Feature":
            on_error(name, n, "not a GeoJSON Feature")
        elif not isinstance(code, str) or not code.strip():
            on_error(name, n, "properties.code is missing (the node's code)")
        elif not known(code.strip()):
            on_error(name, n, f"unknown node code {code.strip()}")
        elif code.strip() in first:
            on_error(name, n, f"duplicate code {code.strip()} (first on feature "
                     f"{first[code.strip()]})")
        elif bad := _geometry_error(f.get("geometry"), limits.max_points):
            on_error(name, n, bad)
        else:
            first[code.strip()] = n
            out.append(Boundary(code.strip(), f["geometry"]))
    return out


def read_files(paths: list[Path], *, known: Callable[[str], bool], on_error: Sink,
               limits: Limits | None = None) -> list[Boundary]:
    """Every file's features, under the deployment's limits unless given."""
    limits = limits or Limits.from_settings(Settings())
    return [b for p in paths for b in read(p, known=known, limits=limits, on_error=on_error)]


def _rings(geom: dict[str, Any]) -> list[list[list[list[float]]]]:
    return [geom["coordinates"]] if geom["type"] == "Polygon" else list(geom["coordinates"])


def simplified(geom: dict[str, Any], budget: int) -> dict[str, Any]:
    """At most about `budget` points, spread over the rings by their size; ~1 m precision."""
    polys = _rings(geom)
    total = sum(len(r) for p in polys for r in p) or 1
    out = []
    for poly in polys:
        rings = []
        for ring in poly:
            keep = max(4, budget * len(ring) // total)
            step = max(1, math.ceil((len(ring) - 1) / (keep - 1)))
            pts = [*ring[:-1:step], ring[-1]]
            rings.append([[round(x, 5), round(y, 5)] for x, y, *_ in pts])
        out.append(rings)
    return {"type": "MultiPolygon", "coordinates": out}


def _bbox(geom: dict[str, Any]) -> tuple[float, float, float, float]:
    xs = [pt[0] for p in _rings(geom) for r in p for pt in r]
    ys = [pt[1] for p in _rings(geom) for r in p for pt in r]
    return min(xs), min(ys), max(xs), max(ys)


def write(conn: sa.Connection, items: Iterable[Boundary], ids: dict[str, int],
          *, limits: Limits | None = None) -> int:
    """Store the shapes (a node's new shape replaces its old one); how many were written."""
    limits = limits or Limits.from_settings(Settings())
    rows = []
    for b in items:
        w, s, e, n = _bbox(b.geometry)
        rows.append({"node_id": ids[b.code],
                     "geometry": json.dumps(b.geometry, ensure_ascii=False,
                                            separators=(",", ":")),
                     "shape": json.dumps(simplified(b.geometry, limits.map_points),
                                         separators=(",", ":")),
                     "west": w, "south": s, "east": e, "north": n})
    for i in range(0, len(rows), 500):
        chunk = rows[i:i + 500]
        conn.execute(B.delete().where(B.c.node_id.in_([r["node_id"] for r in chunk])))
        conn.execute(B.insert(), chunk)
    return len(rows)


def export(conn: sa.Connection, out: Path, *, low: str | None = None,
           high: str | None = None) -> int | None:
    """Write boundaries.geojson (one feature a line, by code); None when no node has a shape."""
    n_table = sa.table("node", sa.column("id"), sa.column("code"), sa.column("path"))
    q = (sa.select(n_table.c.code, B.c.geometry).join(n_table, n_table.c.id == B.c.node_id)
         .order_by(n_table.c.code))
    if low is not None and high is not None:
        q = q.where(n_table.c.path >= low, n_table.c.path < high)
    rows = conn.execute(q).all()
    if not rows:
        return None
    with out.open("w", encoding="utf-8") as f:
        f.write('{"type":"FeatureCollection","features":[\n')
        for i, (code, geometry) in enumerate(rows):
            feature = (f'{{"type":"Feature","properties":{{"code":{json.dumps(code)}}},'
                       f'"geometry":{geometry}}}')
            f.write(feature + (",\n" if i < len(rows) - 1 else "\n"))
        f.write("]}\n")
    return len(rows)


def shapes(conn: sa.Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The map's cut-down shapes of these nodes (the children on screen, never a whole city)."""
    out: dict[int, dict[str, Any]] = {}
    for i in range(0, len(ids), 900):
        for nid, shape in conn.execute(
                sa.select(B.c.node_id, B.c.shape).where(B.c.node_id.in_(ids[i:i + 900]))):
            out[int(nid)] = json.loads(shape)
    return out
