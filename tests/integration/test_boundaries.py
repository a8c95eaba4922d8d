"""boundaries.geojson in `linzhang import` / `linzhang export` (FORMATS.md): good shapes are
stored and come back unchanged, a bad feature is named by number and nothing is written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core.errors import ImportRejected
from core.hierarchy.exporter import export_files
from core.hierarchy.importer import import_files
from tests.citydata import AREA, TOWN, VILLAGE, VILLAGE_B, count, write_small_city


def square(x: float, y: float, d: float = 0.01) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d],
                                                [x, y + d], [x, y]]]}


def feature(code: Any, geometry: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"code": code}, "geometry": geometry}


def write_geo(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                    encoding="utf-8")
    return path


def geometries(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT n.code, b.geometry FROM node_boundary b JOIN node n ON n.id = b.node_id")
        return {code: json.loads(g) for code, g in rows}


def test_shapes_import_with_the_city_and_export_back_unchanged(engine: Engine,
                                                               tmp_path: Path) -> None:
    city = write_small_city(tmp_path)
    multi = {"type": "MultiPolygon", "coordinates": [square(115.77, 33.84)["coordinates"],
                                                     square(115.80, 33.84)["coordinates"]]}
    geo = write_geo(tmp_path / "boundaries.geojson", [
        feature(VILLAGE, square(115.75, 33.85, 0.02)), feature(AREA, multi)])
    report = import_files(engine, [*city, geo])
    assert report.boundaries == 2
    assert geometries(engine) == {VILLAGE: square(115.75, 33.85, 0.02), AREA: multi}

    out = tmp_path / "out"
    exported = export_files(engine, out)
    assert out / "boundaries.geojson" in exported.files
    first = (out / "boundaries.geojson").read_text(encoding="utf-8")
    assert [f["properties"]["code"] for f in json.loads(first)["features"]] == [VILLAGE, AREA]
    # Round trip: the exported files load into the same shapes, and export the same text.
    import_files(engine, sorted(out.iterdir()))
    again = tmp_path / "again"
    export_files(engine, again)
    assert (again / "boundaries.geojson").read_text(encoding="utf-8") == first


def test_a_reimport_replaces_a_nodes_shape(engine: Engine, tmp_path: Path) -> None:
    import_files(engine, write_small_city(tmp_path))
    import_files(engine, [write_geo(tmp_path / "a.geojson", [
        feature(VILLAGE, square(115.75, 33.85))])])
    import_files(engine, [write_geo(tmp_path / "b.geojson", [
        feature(VILLAGE, square(115.70, 33.80))])])
    assert geometries(engine) == {VILLAGE: square(115.70, 33.80)}


def test_bad_features_are_named_by_number_and_nothing_is_written(engine: Engine,
                                                                 tmp_path: Path) -> None:
    import_files(engine, write_small_city(tmp_path))
    import_files(engine, [write_geo(tmp_path / "old.geojson", [
        feature(VILLAGE_B, square(115.70, 33.80))])])
    before = geometries(engine)
    open_ring = square(115.75, 33.85)
    open_ring["coordinates"][0].pop()
    geo = write_geo(tmp_path / "boundaries.geojson", [
        feature(VILLAGE, square(115.75, 33.85)),  # good, but the file as a whole is refused
        feature("999999999999", square(115.75, 33.85)),
        feature(AREA, open_ring),
        feature(TOWN, {"type": "Point", "coordinates": [115.7, 33.8]}),
        feature(VILLAGE_B, square(33.85, 115.75)),  # latitude first
        feature(VILLAGE, square(115.75, 33.85)),
    ])
    with pytest.raises(ImportRejected) as exc:
        import_files(engine, [geo])
    assert exc.value.report().splitlines() == [
        "boundaries.geojson:feature 2: unknown node code 999999999999",
        "boundaries.geojson:feature 3: a ring is not closed (its last position must repeat "
        "the first)",
        "boundaries.geojson:feature 4: geometry must be a Polygon or MultiPolygon, not 'Point'",
        "boundaries.geojson:feature 5: position 33.85, 115.75 is outside WGS 84 "
        "longitude/latitude (longitude first)",
        f"boundaries.geojson:feature 6: duplicate code {VILLAGE} (first on feature 1)",
    ]
    assert geometries(engine) == before


def test_a_file_over_the_size_limit_is_refused(engine: Engine, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import_files(engine, write_small_city(tmp_path))
    monkeypatch.setenv("BOUNDARY_MAX_BYTES", "100")
    geo = write_geo(tmp_path / "boundaries.geojson", [feature(VILLAGE, square(115.75, 33.85))])
    with pytest.raises(ImportRejected) as exc:
        import_files(engine, [geo])
    assert exc.value.report().startswith("boundaries.geojson:feature 0: the file is ")
    assert "BOUNDARY_MAX_BYTES" in exc.value.report()
    assert count(engine, "node_boundary") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_file_that_is_not_geojson_is_refused_as_a_whole(engine: Engine, tmp_path: Path) -> None:
    import_files(engine, write_small_city(tmp_path))
    for text, why in (("{", "not a GeoJSON file"), ("[" * 100_000, "nested too deep"),
                      ('{"type": "Feature"}', "not a GeoJSON FeatureCollection")):
        (tmp_path / "b.geojson").write_text(text, encoding="utf-8")
        with pytest.raises(ImportRejected) as exc:
            import_files(engine, [tmp_path / "b.geojson"])
        assert exc.value.report().startswith("b.geojson:feature 0: ")
        assert why in exc.value.report()


def test_a_new_node_and_its_shape_arrive_in_one_import(engine: Engine, tmp_path: Path) -> None:
    city = write_small_city(tmp_path)
    geo = write_geo(tmp_path / "boundaries.geojson", [feature(VILLAGE, square(115.75, 33.85))])
    import_files(engine, [geo, *city])  # the order of the files does not matter
    assert list(geometries(engine)) == [VILLAGE]


def test_the_map_api_sends_only_the_childrens_shapes_cut_down(engine: Engine, db_url: str,
                                                              tmp_path: Path) -> None:
    from datetime import timedelta

    import httpx

    from core import accounts
    from core.clock import FakeClock
    from core.container import build_container
    from core.db import session_scope
    from core.settings import Settings
    from tests.support.demo_city import holder_of
    from tests.support.server import serve
    from webhooks.app import create_app

    city = write_small_city(tmp_path)
    # A 片 drawn with 20,000 points; the village around it with few.
    n = 20_000
    ring = [[115.75 + 0.01 * math.cos(2 * math.pi * i / n),
             33.85 + 0.01 * math.sin(2 * math.pi * i / n)] for i in range(n)]
    ring.append(ring[0])
    geo = write_geo(tmp_path / "boundaries.geojson", [
        feature(VILLAGE, square(115.70, 33.80, 0.1)),
        feature(AREA, {"type": "Polygon", "coordinates": [ring]})])
    import_files(engine, [*city, geo])
    clock = FakeClock()
    st = Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    admin = holder_of(engine, "admin", TOWN)
    with session_scope(engine) as s:
        token = accounts.issue_login_token(s, person_id=admin.person_id, now=clock.now(),
                                           ttl=timedelta(minutes=15))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get(f"/login/{token}").status_code == 303
        town = http.get("/api/map").json()
        shapes = {t["node"]["code"]: t["boundary"] for t in town["tiles"]}
        assert shapes[VILLAGE]["type"] == "MultiPolygon"  # the village, not its 片
        assert all(code != AREA for code in shapes)
        village = http.get("/api/map", params={"node": VILLAGE}).json()
        area = next(t["boundary"] for t in village["tiles"] if t["node"]["code"] == AREA)
        points = sum(len(r) for p in area["coordinates"] for r in p)
        assert 16 <= points <= st.boundary_map_points + 2, points


def test_the_cli_imports_and_exports_the_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from linzhang import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'city.db'}")
    city = write_small_city(tmp_path)
    write_geo(tmp_path / "boundaries.geojson", [feature(VILLAGE, square(115.75, 33.85))])
    assert cli.main(["import", *(p.name for p in city), "boundaries.geojson"]) == 0
    assert "boundaries 1" in capsys.readouterr().out
    assert cli.main(["export", "--out", "out"]) == 0
    assert "out/boundaries.geojson" in capsys.readouterr().out
    got = json.loads((tmp_path / "out" / "boundaries.geojson").read_text(encoding="utf-8"))
    assert got["features"] == [feature(VILLAGE, square(115.75, 33.85))]
    write_geo(tmp_path / "bad.geojson", [feature("nope", square(115.75, 33.85))])
    assert cli.main(["import", "bad.geojson"]) == 1
    assert "bad.geojson:feature 1: unknown node code nope" in capsys.readouterr().err
