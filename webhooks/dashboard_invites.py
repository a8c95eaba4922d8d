"""The QR code of a person invite: what an admin forwards to a 邻长 or 书记 who uses only
WeChat or WeCom (scanning opens the web chat's `/join/<code>`, which binds that chat to them).

It draws any well-formed code without looking it up, so it tells nobody whether a code exists.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from core.container import Container

CODE = re.compile(r"j[a-z0-9]{8,40}")


def router(c: Container) -> APIRouter:
    """/invite-qr/{code}: an SVG of the invite's link."""
    r = APIRouter(tags=["invites"])

    @r.get("/invite-qr/{code}")
    async def invite_qr(request: Request, code: str) -> Response:
        import segno

        if not CODE.fullmatch(code):
            return Response("邀请码无效", status_code=404, media_type="text/plain; charset=utf-8")
        base = c.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        svg = segno.make(f"{base}/join/{code}", error="m").svg_inline(scale=8, border=2)
        return Response(svg, media_type="image/svg+xml",
                        headers={"Cache-Control": "private, no-store",
                                 "X-Content-Type-Options": "nosniff"})

    return r
