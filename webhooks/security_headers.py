"""Headers that keep our pages from being turned against their reader, on every response.

Pages: scripts and styles only from our own origin (no inline script, no inline event handler,
no inline style), images from us, `data:` and the map's tile server, fetches to us only, never
framed by another site. Only the web chat page may be framed, and only by our own `/demo`.
Stored files (photos, voice, video) are served as what they are (`nosniff`), inside a sandbox,
so a file that pretends to be audio cannot run as a page of ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings

# The login link (/login/<token>), the join link (/join/<code>) and a 邻长's checklist link
# (/checklist/<token>) carry secrets in the path:
# they never leave for another site in a Referer (map tiles get our origin only; see geo.js).
REFERRER_POLICY = "same-origin"
MEDIA_POLICY = ("default-src 'none'; img-src 'self'; media-src 'self'; "
                "style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'")
MEDIA_PREFIXES = ("/media/", "/chat/media/")
FRAMEABLE = ("/chat",)  # the web chat page, shown in /demo's panes

# What a stored file may be served as; anything else is a download, never a page.
_INLINE = ("image/jpeg", "image/png", "image/webp", "image/gif", "audio/ogg", "audio/mpeg",
           "audio/mp4", "audio/amr", "audio/webm", "audio/wav", "video/mp4", "video/webm",
           "video/quicktime")
_BY_SUFFIX = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
              "webp": "image/webp", "gif": "image/gif", "ogg": "audio/ogg", "oga": "audio/ogg",
              "opus": "audio/ogg", "mp3": "audio/mpeg", "m4a": "audio/mp4", "amr": "audio/amr",
              "wav": "audio/wav", "weba": "audio/webm", "webm": "video/webm",
              "mp4": "video/mp4", "mov": "video/quicktime"}


def media_type_of(ref: str, stored: str | None = None) -> tuple[str, dict[str, str]]:
    """The type a stored file is served as, and the headers that go with it: a known picture,
    sound or film shows inline; anything else (a PDF, a document, an unknown type) is an
    attachment of type application/octet-stream."""
    mime = (stored or "").split(";", 1)[0].strip().lower()
    if mime not in _INLINE:
        mime = _BY_SUFFIX.get(ref.rsplit(".", 1)[-1].lower(), "")
    if mime in _INLINE:
        return mime, {"Content-Disposition": "inline"}
    return "application/octet-stream", {"Content-Disposition": "attachment"}


def _origin(url: str | None) -> str | None:
    """The CSP source of a URL template: scheme://host[:port], with `{s}` as a wildcard."""
    if not url:
        return None
    parts = urlsplit(url.replace("{s}", "subdomain-wildcard"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc.rsplit("@", 1)[-1]
    if "subdomain-wildcard" in host:
        # CSP allows a wildcard only as the whole first label: tile-{s}.x.org → *.x.org
        host = "*." + host.split(".", 1)[-1]
    return f"{parts.scheme}://{host}"


def page_policy(settings: Settings, *, frame_ancestors: str = "'none'") -> str:
    """The Content-Security-Policy of our pages, for this deployment's tile and Leaflet hosts."""
    tiles = _origin(settings.tile_url)
    leaflet = _origin(settings.leaflet_url)

    def src(*extra: str | None) -> str:
        return " ".join(["'self'", *(x for x in extra if x)])

    return "; ".join([
        "default-src 'self'",
        f"script-src {src(leaflet)}",
        f"style-src {src(leaflet)}",
        f"img-src {src('data:', tiles, leaflet)}",
        "media-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ])


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response, unless a route set its own."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        common = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", REFERRER_POLICY)]
        self.page = [*common, ("Content-Security-Policy", page_policy(settings)),
                     ("X-Frame-Options", "DENY")]
        self.frameable = [*common, ("Content-Security-Policy",
                                    page_policy(settings, frame_ancestors="'self'")),
                          ("X-Frame-Options", "SAMEORIGIN")]
        self.media = [*common, ("Content-Security-Policy", MEDIA_POLICY),
                      ("X-Frame-Options", "DENY")]

    def _for(self, path: str) -> Iterable[tuple[str, str]]:
        if path.startswith(MEDIA_PREFIXES):
            return self.media
        if path in FRAMEABLE:
            return self.frameable
        return self.page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._for(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: Any, settings: Settings) -> None:
    """Wrap the app; added last, so it also covers answers of the other middlewares."""
    app.add_middleware(SecurityHeaders, settings=settings)
