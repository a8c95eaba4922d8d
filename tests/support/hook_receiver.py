"""A client system's webhook receiver on loopback, for the status webhook tests: it records
every POST and answers from a plan (a status code, or seconds to stall before a 200)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.open311 import hooks
from tests.support.server import serve


@dataclass(frozen=True)
class Post:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered (0: it stalled, and nobody read its 200)

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def signed_with(self, secret: str) -> bool:
        """The receiver's check: the signature over `<timestamp>.<body>` with the secret."""
        stamp = self.headers.get(hooks.TIMESTAMP.lower())
        signature = self.headers.get(hooks.SIGNATURE.lower())
        if stamp is None or signature is None:
            return False
        return hooks.verify(secret=secret, timestamp=stamp, body=self.body, signature=signature)


class Receiver:
    """An ASGI app: `plan` is consumed one answer per POST (then 200 for good); a float in
    the plan is a stall: no answer until the sender hangs up (at most that many seconds)."""

    def __init__(self, *plan: int | float) -> None:
        self.plan: list[int | float] = list(plan)
        self.posts: list[Post] = []

    @property
    def accepted(self) -> list[Post]:
        """What it answered 2xx to, in arrival order."""
        return [p for p in self.posts if 200 <= p.status < 300]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        step = self.plan.pop(0) if self.plan else 200
        if isinstance(step, float):
            # Stall: the next message is the sender's disconnect when its timeout gives up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receive(), timeout=step)
        status = step if isinstance(step, int) else 200
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.posts.append(Post(headers, body, status if isinstance(step, int) else 0))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@contextmanager
def receiving(receiver: Receiver, *, port: int | None = None) -> Iterator[str]:
    """The receiver's URL while it serves on 127.0.0.1."""
    with serve(receiver, lifespan="off", port=port) as base:
        yield f"{base}/hooks/linzhang"
