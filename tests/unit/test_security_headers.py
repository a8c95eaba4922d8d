"""The page policy names exactly the hosts a deployment's map needs."""

from __future__ import annotations

import pytest

from core.settings import Settings
from webhooks.security_headers import media_type_of, page_policy


def _img_src(**kw: str | None) -> str:
    policy = page_policy(Settings(_env_file=None, **kw))  # type: ignore[call-arg]
    return next(d for d in policy.split("; ") if d.startswith("img-src"))


@pytest.mark.parametrize(("tile_url", "want"), [
    (None, "img-src 'self' data:"),
    ("https://tiles.example/{z}/{x}/{y}.png", "img-src 'self' data: https://tiles.example"),
    ("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
     "img-src 'self' data: https://*.tile.openstreetmap.org"),
    ("https://webrd0{s}.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}",
     "img-src 'self' data: https://*.is.autonavi.com"),
    ("http://127.0.0.1:8080/{z}/{x}/{y}.png", "img-src 'self' data: http://127.0.0.1:8080"),
    ("javascript:alert(1)//{z}", "img-src 'self' data:"),
])
def test_images_come_from_us_and_the_tile_server_only(tile_url: str | None, want: str) -> None:
    assert _img_src(tile_url=tile_url) == want


def test_a_leaflet_host_may_serve_leaflet_itself() -> None:
    policy = page_policy(Settings(_env_file=None,  # type: ignore[call-arg]
                                  leaflet_url="https://unpkg.com/leaflet@1.9.4/dist"))
    assert "script-src 'self' https://unpkg.com;" in policy
    assert "style-src 'self' https://unpkg.com;" in policy


def test_only_known_media_types_show_inline() -> None:
    assert media_type_of("ab/cd/x.ogg", "audio/ogg") == ("audio/ogg",
                                                        {"Content-Disposition": "inline"})
    assert media_type_of("ab/cd/x.jpg", "text/html")[0] == "image/jpeg"
    assert media_type_of("ab/cd/x.html", "text/html") == (
        "application/octet-stream", {"Content-Disposition": "attachment"})
