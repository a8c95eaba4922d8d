"""A served city with Open311 keys, for the Open311 tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.clock import FakeClock
from core.container import build_container
from core.db import session_scope
from core.hierarchy.model import Node, Post
from core.open311 import keys
from core.settings import Settings
from tests.cityfactory import City, build_city
from tests.support.server import serve
from webhooks.app import create_app

N1_POINT = (33.8450, 115.7790)  # the point of 一邻 (n1)
ADDRESS = "花戏楼街道东关社区3号楼2单元101"  # resident1's household, in n1


@dataclass
class Site:
    url: str
    city: City
    town_key: str  # scoped to the town
    v1_key: str  # scoped to the village 东关社区
    v2_key: str  # scoped to the village 西关社区

    @property
    def base(self) -> str:
        return f"{self.url}/open311/v2"


@contextmanager
def open311_site(engine: Engine, clock: FakeClock, tmp_path: Path) -> Iterator[Site]:
    city = build_city(engine)
    nodes: sa.Table = Node.__table__  # type: ignore[attr-defined]
    posts: sa.Table = Post.__table__  # type: ignore[attr-defined]
    with session_scope(engine) as s:
        s.execute(sa.update(nodes).where(nodes.c.id == city.nodes["n1"]).values(
            latitude=N1_POINT[0], longitude=N1_POINT[1]))
        s.execute(sa.update(posts).where(posts.c.person_id == city["resident1"]).values(
            address=ADDRESS))
        made = {name: keys.create_key(s, name=name, scope_code=code, now=clock.now())
                for name, code in (("12345热线", "341602001"), ("东关APP", "341602001001"),
                                   ("西关APP", "341602001002"))}
    st = Settings(_env_file=None, database_url=str(engine.url),  # type: ignore[call-arg]
                  media_dir=str(tmp_path / "media"))
    app = create_app(st, clock=clock, container=build_container(st, clock=clock, engine=engine),
                     run_jobs=False)
    with serve(app) as url:
        yield Site(url, city, made["12345热线"], made["东关APP"], made["西关APP"])
