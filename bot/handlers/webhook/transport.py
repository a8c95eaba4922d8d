"""The webhook transport: a status row (core/open311/hooks.py) POSTed to its hook's URL with
an HMAC-SHA256 signature, behind the dispatcher's Transport protocol.

What an answer means: 2xx → Done (recorded with the hook's episode ended, one transaction);
408, 429, 5xx, a refused connection, a timeout → Retry with the outbox's backoff, for a day
(`max_age`), then dead and the root admins told once; 410 → Gone: the hook is disabled, what
waits for it given up, the admins told; any other 4xx → Retry, dead after `CLIENT_ERRORS`
attempts (a receiver that refuses a body today refuses it tomorrow, but a misconfigured
proxy may be fixed within minutes).

Order: every row of one hook and case shares a key (bot/dispatcher/rows.py), so a case's
updates arrive in order, one at a time; its other cases go side by side (`parallel`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlmodel import Session

from bot.dispatcher.rows import Row
from bot.dispatcher.transport import Done, Gone, Later, Outcome, Retry, Work
from core.deliveries import WEBHOOK
from core.open311 import hooks

CLIENT_ERRORS = 4  # attempts for a 4xx other than 408, 410, 429
RETRYABLE = frozenset({408, 429})
AFTER = timedelta(seconds=1)  # the least a row waits behind an older one of its case


class WebhookTransport:
    """POSTs status rows; one httpx client for every hook (connections kept per host)."""

    platform = WEBHOOK
    counts_rows = False
    parallel = 16  # receivers at once: a slow one never holds back the rest
    max_attempts: int | None = None  # retried by age (`max_age`), not by count

    def __init__(self, *, timeout: float = 10.0, max_age: timedelta = hooks.MAX_AGE,
                 client: httpx.AsyncClient | None = None) -> None:
        self.timeout, self.max_age = timeout, max_age
        self._client = client

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a signed body goes to the URL the operator set, nowhere else.
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                             headers={"User-Agent": "linzhang-webhook/1"})
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def dead(self, session: Session, row: Row, *, error: str, now: datetime) -> None:
        """A row was given up: the root admins hear of the first of an episode."""
        if row.address is not None and row.address.isdigit():
            hooks.row_dead(session, hook_id=int(row.address), now=now, error=error)

    async def deliver(self, work: Work) -> Outcome:
        row = work.row
        if row.address is None or not row.address.isdigit():
            return Retry(f"not a hook: {row.address!r}", permanent=True)
        hook_id = int(row.address)
        if (row.address, 0) in work.done:
            return Done()  # an earlier attempt got through and was recorded
        target, before = await asyncio.to_thread(self._target, work, hook_id)
        if target is None:
            return Retry("hook removed or disabled", permanent=True)
        if before is not None:
            # An older change of this case is backing off: this one goes after it.
            return Later(max(before, work.now + AFTER), "an earlier update of the case waits")
        body = row.text.encode()
        stamp = str(int(work.now.timestamp()))
        headers = {"Content-Type": "application/json; charset=utf-8",
                   hooks.TIMESTAMP: stamp,
                   hooks.SIGNATURE: hooks.sign(secret=target.secret, timestamp=stamp,
                                               body=body)}
        try:
            answer = await self._http().post(target.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return Retry(f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Retry(f"connection: {type(exc).__name__}: {exc}"[:300])
        code = answer.status_code
        if 200 <= code < 300:
            await asyncio.to_thread(self._done, work, hook_id)
            return Done()
        if code == 410:
            await asyncio.to_thread(self._gone, work, hook_id)
            return Gone("the receiver answered 410 Gone")
        if code in RETRYABLE or code >= 500:
            return Retry(f"HTTP {code}")
        return Retry(f"HTTP {code}", max_attempts=CLIENT_ERRORS)

    def _target(self, work: Work, hook_id: int) -> tuple[hooks.Target | None, datetime | None]:
        with work.ledger.transaction() as s:
            return hooks.target(s, hook_id=hook_id), hooks.waiting_before(
                s, row_id=work.row.id, hook_id=hook_id, case_id=work.row.case_id)

    def _done(self, work: Work, hook_id: int) -> None:
        row = work.row
        with work.ledger.transaction() as s:
            work.ledger.record(row, chat_id=str(hook_id), message_id=str(row.id), session=s,
                               final=True)
            hooks.delivered(s, hook_id=hook_id)

    def _gone(self, work: Work, hook_id: int) -> None:
        with work.ledger.transaction() as s:
            hooks.gone(s, hook_id=hook_id, now=work.now, why="410 Gone")
