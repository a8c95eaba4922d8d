"""A fake WeChat (公众号) and WeCom API server on 127.0.0.1, speaking the same HTTP API.

One instance plays one platform (`kind="oa"` or `"wecom"`). It hands out access tokens (and
counts how often), enforces what the real servers enforce — the 48-hour customer-service
window on the OA as WeChat documents it (客服消息下发规则: a user's message allows 5
customer-service messages within 48 hours, a menu tap / follow / scan 3 within a minute;
quotas do not add up; 45015 when none is open, 45047 past it), 30/min
and 1,000/h per member on WeCom (excess silently dropped, as WeCom does: the test asserts
`dropped == []`), a template card's `task_id` unique on the app for ever (42014), its
`sub_title_text` at most 112 characters, the `response_code` a button card's send answers good
for one update within 72 h — and records everything sent. `lose_next_answer` plays a send
that WeCom carried out but whose answer never came back.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from core.clock import Clock

WINDOW = timedelta(hours=48)
CS_PER_MESSAGE = 5  # customer-service messages the OA allows per message of the user
EVENT_QUOTA, EVENT_WINDOW = 3, timedelta(minutes=1)  # per menu tap, follow or scan
SUB_TITLE_LIMIT = 112
CODE_LIFETIME = timedelta(hours=72)


@dataclass
class Sent:
    to: str
    msgtype: str
    body: dict[str, Any]
    at: datetime

    @property
    def text(self) -> str:
        b = self.body
        if self.msgtype == "text":
            return str(b["text"]["content"])
        if self.msgtype == "msgmenu":
            return str(b["msgmenu"]["head_content"])
        if self.msgtype == "template_card":
            c = b["template_card"]
            return f"{c['main_title'].get('title', '')}\n{c.get('sub_title_text', '')}"
        if self.msgtype == "template":
            return json.dumps(b.get("data", {}), ensure_ascii=False)
        return ""


@dataclass
class FakeWeChatApi:
    kind: str  # "oa" | "wecom"
    clock: Clock
    media: dict[str, bytes] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    dropped: list[Sent] = field(default_factory=list)
    card_updates: list[dict[str, Any]] = field(default_factory=list)
    menus: list[dict[str, Any]] = field(default_factory=list)
    appchats: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens_issued: int = 0
    token_requests: int = 0
    # Set: token requests are held until it is released (two refreshes overlap for sure).
    token_gate: threading.Event | None = None
    last_inbound: dict[str, datetime] = field(default_factory=dict)
    # OA: the open quotas per user, {"message" | "event": [limit, until, used]}.
    quotas: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    refused: list[tuple[str, int]] = field(default_factory=list)  # (to, errcode)
    task_ids: set[str] = field(default_factory=set)
    used_codes: set[str] = field(default_factory=set)
    response_codes: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    lose_answers: int = 0
    gone: set[str] = field(default_factory=set)  # unfollowed (OA) or left the company (WeCom)
    _per_member: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # ---- what tests use ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def user_wrote(self, openid: str) -> None:
        """The resident wrote to the account: 5 messages within 48 hours (OA); a new message
        renews the quota, it does not add to it."""
        with self._lock:
            now = self.clock.now()
            self.last_inbound[openid] = now
            self.quotas.setdefault(openid, {})["message"] = [CS_PER_MESSAGE, now + WINDOW, 0]

    def user_tapped(self, openid: str) -> None:
        """The user tapped a click menu (or followed, or scanned): 3 messages within a minute,
        and no 48-hour quota."""
        with self._lock:
            now = self.clock.now()
            self.quotas.setdefault(openid, {})["event"] = [EVENT_QUOTA, now + EVENT_WINDOW, 0]

    def cs_left(self, openid: str) -> int | None:
        """What the open quotas still allow (the larger counts); None: none is open."""
        now = self.clock.now()
        open_ = [q for q in self.quotas.get(openid, {}).values() if q[1] > now]
        return max(q[0] - q[2] for q in open_) if open_ else None

    def leave(self, who: str) -> None:
        """The follower unfollowed the OA (43004), or the member left the company (81013)."""
        with self._lock:
            self.gone.add(who)

    def lose_next_answer(self, times: int = 1) -> None:
        """The next `times` sends are carried out, but their answer is lost (the connection
        drops before the response)."""
        with self._lock:
            self.lose_answers += times

    def _lost(self) -> bool:
        with self._lock:
            if self.lose_answers > 0:
                self.lose_answers -= 1
                return True
            return False

    def sent_to(self, who: str) -> list[Sent]:
        with self._lock:
            return [m for m in self.sent if m.to == who]

    def received(self, member: str) -> list[datetime]:
        """When WeCom accepted each message to `member` (the ones that count, in order)."""
        with self._lock:
            return list(self._per_member[member])

    def dropped_for(self, member: str) -> list[Sent]:
        """What WeCom answered `ok` to and then threw away for `member`."""
        with self._lock:
            return [m for m in self.dropped if m.to == member]

    def already_received(self, member: str, times: list[datetime]) -> None:
        """Messages to `member` counted before the test (by an earlier run of the app)."""
        with self._lock:
            self._per_member[member].extend(sorted(times))

    def __enter__(self) -> FakeWeChatApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, data: dict[str, Any] | bytes, ctype: str = "application/json"
                        ) -> None:
                raw = data if isinstance(data, bytes) else json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                u = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                self._answer(*api.get(u.path, q))

            def do_POST(self) -> None:
                u = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                body: dict[str, Any] = {}
                if "multipart" not in ctype and raw:
                    body = json.loads(raw)
                answer = api.post(u.path, q, body, raw)
                if u.path.endswith("/message/send") and api._lost():
                    self.close_connection = True
                    self.connection.shutdown(2)  # done, but the answer never arrives
                    return
                self._answer(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- the API ----------------------------------------------------------------------------

    def _token_ok(self, q: dict[str, str]) -> bool:
        return q.get("access_token", "").startswith(f"{self.kind}-token-")

    def get(self, path: str, q: dict[str, str]) -> tuple[dict[str, Any] | bytes, str]:
        if path in ("/cgi-bin/token", "/cgi-bin/gettoken"):
            with self._lock:
                self.token_requests += 1
            if self.token_gate is not None:
                self.token_gate.wait(10)  # bounded: a stuck test fails instead of hanging
            with self._lock:
                self.tokens_issued += 1
                return {"access_token": f"{self.kind}-token-{self.tokens_issued}",
                        "expires_in": 7200, "errcode": 0}, "application/json"
        if not self._token_ok(q):
            return {"errcode": 40014, "errmsg": "invalid access_token"}, "application/json"
        if path == "/cgi-bin/media/get":
            data = self.media.get(q.get("media_id", ""))
            if data is None:
                return {"errcode": 40007, "errmsg": "invalid media_id"}, "application/json"
            return data, "application/octet-stream"
        return {"errcode": 404, "errmsg": f"no {path}"}, "application/json"

    def post(self, path: str, q: dict[str, str], body: dict[str, Any], raw: bytes
             ) -> dict[str, Any]:
        if not self._token_ok(q):
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        now = self.clock.now()
        with self._lock:
            if path == "/cgi-bin/message/custom/send":
                to = body["touser"]
                if to in self.gone:
                    return {"errcode": 43004, "errmsg": "require subscribe"}
                left = self.cs_left(to)
                if left is None:
                    self.refused.append((to, 45015))
                    return {"errcode": 45015, "errmsg": "response out of time limit"}
                if left <= 0:
                    self.refused.append((to, 45047))
                    return {"errcode": 45047, "errmsg": "out of response count limit"}
                for q in self.quotas[to].values():
                    if q[1] > now:
                        q[2] += 1  # one message counts against every open quota
                self.sent.append(Sent(to, body["msgtype"], body, now))
                return {"errcode": 0, "errmsg": "ok"}
            if path == "/cgi-bin/message/template/send":
                self.sent.append(Sent(body["touser"], "template", body, now))
                return {"errcode": 0, "errmsg": "ok", "msgid": len(self.sent)}
            if path == "/cgi-bin/menu/create":
                self.menus.append(body)
                return {"errcode": 0, "errmsg": "ok"}
            if path == "/cgi-bin/media/upload":
                mid = f"m{len(self.media) + 1}"
                self.media[mid] = raw
                return {"errcode": 0, "type": q.get("type"), "media_id": mid}
            if path == "/cgi-bin/message/send":
                assert body.get("enable_duplicate_check") == 1, "WeCom sends check duplicates"
                return self._wecom_send(body, now)
            if path == "/cgi-bin/message/update_template_card":
                # A code is good once, within 72 h (codes of callbacks the tests push are
                # unknown here: taken as fresh).
                code = str(body.get("response_code", ""))
                known = self.response_codes.get(code)
                if code in self.used_codes or (known and known[1] + CODE_LIFETIME <= now):
                    return {"errcode": 40011, "errmsg": "invalid response_code"}
                self.used_codes.add(code)
                self.card_updates.append(body)
                return {"errcode": 0, "errmsg": "ok"}
            if path == "/cgi-bin/appchat/create":
                cid = body.get("chatid") or f"chat{len(self.appchats) + 1}"
                self.appchats[cid] = body
                return {"errcode": 0, "errmsg": "ok", "chatid": cid}
            if path == "/cgi-bin/appchat/send":
                if body["chatid"] not in self.appchats:
                    return {"errcode": 86003, "errmsg": "chat not found"}
                self.sent.append(Sent(body["chatid"], body["msgtype"], body, now))
                return {"errcode": 0, "errmsg": "ok"}
        return {"errcode": 404, "errmsg": f"no {path}"}

    def _wecom_send(self, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        if body["touser"] in self.gone:
            return {"errcode": 81013, "errmsg": "user & party & tag all invalid"}
        extra: dict[str, Any] = {}
        if body["msgtype"] == "template_card":
            c = body["template_card"]
            task = str(c.get("task_id", ""))
            if task in self.task_ids:
                self.refused.append((body["touser"], 42014))
                return {"errcode": 42014, "errmsg": "task_id exist"}
            if len(c.get("sub_title_text", "")) > SUB_TITLE_LIMIT:
                self.refused.append((body["touser"], 40058))
                return {"errcode": 40058, "errmsg": "sub_title_text exceed max length"}
            self.task_ids.add(task)
            if c.get("card_type") == "button_interaction":
                code = f"rc{len(self.response_codes) + len(self.task_ids)}-{task}"
                self.response_codes[code] = (body["touser"], now)
                extra["response_code"] = code
        msg = Sent(body["touser"], body["msgtype"], body, now)
        times = self._per_member[msg.to]
        last_min = [t for t in times if t > now - timedelta(minutes=1)]
        last_hour = [t for t in times if t > now - timedelta(hours=1)]
        if len(last_min) >= 30 or len(last_hour) >= 1000:
            self.dropped.append(msg)  # WeCom answers ok and drops it
        else:
            times.append(now)
            self.sent.append(msg)
        return {"errcode": 0, "errmsg": "ok", "msgid": f"w{len(self.sent) + len(self.dropped)}",
                **extra}
