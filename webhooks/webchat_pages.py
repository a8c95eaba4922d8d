"""Web chat pages around the chat itself: the printable poster with a 邻's QR code, the demo
switcher (demo mode), and where / leads."""

from __future__ import annotations

import html
import re
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from core.container import Container
from core.hierarchy.queries import chain_for_resident
from core.hierarchy.tree import ROLE_LABEL_ZH


def router(c: Container) -> APIRouter:
    """/poster/{code}, /demo and /."""
    from webhooks.webchat import render_page

    r = APIRouter(tags=["web chat"])
    s = c.settings

    @r.get("/poster/{code}", response_class=HTMLResponse)
    async def poster(request: Request, code: str) -> Response:
        import segno

        if not re.fullmatch(r"j[A-Za-z0-9_-]{2,40}", code):
            return Response("邀请链接无效", status_code=404, media_type="text/plain")
        base = s.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        link = f"{base}/join/{code}"
        svg = segno.make(link, error="m").svg_inline(scale=8, border=2)
        with c.engine.connect() as conn:
            node = conn.execute(sa.text(
                "SELECT n.name FROM invite i JOIN node n ON n.id = i.node_id WHERE i.code = :c"),
                {"c": code}).scalar()
        body = render_page("poster.html", link=link, node=str(node or "本邻"))
        body = body.replace("{{svg}}", svg)
        return HTMLResponse(body)

    @r.get("/demo", response_class=HTMLResponse)
    async def demo(request: Request) -> Response:
        if not s.demo_mode:
            return Response("演示模式未开启", status_code=404, media_type="text/plain")
        people, panes = await run_in_threadpool(_demo_people, c)
        options = "".join(
            f'<option value="{p["id"]}">{html.escape(p["label"])}</option>' for p in people)
        frames = "".join(
            f'<section class="pane"><select data-pane>{options}</select>'
            f'<iframe src="/chat?as={pid}" data-person="{pid}" title="pane"></iframe></section>'
            for pid in panes)
        return HTMLResponse(render_page("demo.html").replace("{{panes}}", frames))

    @r.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/demo" if s.demo_mode else "/chat", status_code=307)

    return r


def _demo_people(c: Container) -> tuple[list[dict[str, Any]], list[int]]:
    """Everyone of the demo city with their posts, and the default panes: a resident, then the
    people above them up to a town admin."""
    from sqlmodel import Session

    with c.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.id, p.name, x.role, n.name, n.code FROM post x JOIN person p"
            " ON p.id = x.person_id JOIN node n ON n.id = x.node_id ORDER BY x.role <> 'resident',"
            " n.code, p.id")).all()
        people: dict[int, dict[str, Any]] = {}
        for pid, name, role, node, _code in rows:
            from core.hierarchy.model import Role

            label = f"{ROLE_LABEL_ZH.get(Role(role), role)}·{node}"
            entry = people.setdefault(pid, {"id": pid, "name": name, "labels": []})
            entry["labels"].append(label)
        first_resident = next((int(r[0]) for r in rows if r[2] == "resident"), None)
        panes: list[int] = []
        if first_resident is not None:
            panes.append(first_resident)
            with Session(bind=conn) as session:
                chain = chain_for_resident(session, first_resident)
                for step in chain.filled():
                    if step.role.value != "area_leader":  # four panes fit a laptop screen
                        panes.extend(h.id for h in step.holders[:1])
    out = [{"id": p["id"], "label": f'{p["name"]}（{"、".join(p["labels"])}）'}
           for p in people.values()]
    return out, panes[:5]
