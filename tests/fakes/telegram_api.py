"""A fake Telegram Bot API server: real HTTP on 127.0.0.1, Telegram's answers and limits.

    with FakeTelegram() as tg:                       # or tg.start() / tg.stop()
        bot = Bot(tg.token, base_url=tg.base_url + "/bot", base_file_url=tg.base_url + "/file/bot")
        ...
        assert tg.texts_to(5550001) == ["已收到…"]

It serves `POST|GET /bot<token>/<method>` with JSON, url-encoded or multipart bodies (what
python-telegram-bot sends: form fields whose non-string values are JSON) and
`GET /file/bot<token>/<file_path>`. Limits, enforced as the issue states them:

- more than 30 new messages in any second in all, a second message within one second into one
  private chat (id > 0), or more than 20 in any 60 seconds into one group (id < 0) → HTTP 429
  `{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after N",
  "parameters": {"retry_after": N}}`; only accepted messages fill the windows;
- text over 4096 or a caption over 1024 UTF-16 units, empty text, callback_data over 64 bytes
  (BUTTON_DATA_INVALID) → 400; a blocked chat → 403; a wrong token → 401;
- an album (sendMediaGroup) of 2-10 photos, each a message in the rate windows; a group
  upgraded to a supergroup (`migrate(old, new)`) → 400 with `parameters.migrate_to_chat_id`.

Faults a test injects: `fail_next(method, times, status=502)`, `drop_next(method, times)` (the
connection closes in the middle of the answer, before the message is accepted), `storm(seconds)`
(every new message gets 429 until then), `block(chat_id)`. Everything accepted is recorded
(`sent`, `edits`, `answers`, `commands`, `webhook`) and so is every refusal (`rejections`,
`too_many`), for assertions. Rate windows read `now()` (time.monotonic by default), so a test
can share one virtual clock between this server and the sender's limiter and never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import itertools
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.support.poll import poll

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
ANSWER_TEXT_LIMIT = 200
FILE_DOWNLOAD_LIMIT = 20 * 2**20

MESSAGE_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "sendvoice", "sendvideo", "sendaudio",
    "copymessage", "forwardmessage",
})
MIGRATED = "Bad Request: group chat was upgraded to a supergroup chat"
ALBUM_SIZE = (2, 10)  # sendMediaGroup takes 2 to 10 items
MEDIA_FIELD = {"sendphoto": "photo", "senddocument": "document", "sendvoice": "voice",
               "sendvideo": "video", "sendaudio": "audio"}
JSON_FIELDS = frozenset({
    "media", "reply_markup", "reply_parameters", "commands", "scope", "allowed_updates", "entities",
    "caption_entities", "link_preview_options",
})
BAD_MARKUP = "Bad Request: can't parse reply keyboard markup JSON object"
BAD_ROWS = (
    "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup should be an "
    "Array of Arrays"
)
TEXT_BUTTON = "Bad Request: text buttons are unallowed in the inline keyboard"
BAD_FILE_ID = "Bad Request: wrong remote file identifier specified: can't unserialize it"
NO_TEXT_TO_EDIT = "Bad Request: there is no text in the message to edit"
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
BAD_COMMANDS = "Bad Request: commands must be an array of at most 100 BotCommand"
BAD_DESCRIPTION = "Bad Request: command description is invalid"
BAD_SECRET = "Bad Request: secret token contains unallowed characters"
NEED_HTTPS = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook"
    " to delete the webhook first"
)
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message")


def utf16_len(text: str) -> int:
    """Telegram counts text length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class FakeLimits:
    global_per_second: int = 30
    private_interval: float = 1.0
    group_per_minute: int = 20
    group_window: float = 60.0


@dataclass
class SentMessage:
    """A message the fake accepted (its current text and markup follow later edits)."""

    message_id: int
    chat_id: int
    method: str
    text: str | None  # the text, or the caption of a media message
    reply_markup: dict[str, Any] | None
    reply_to: int | None
    at: float
    media: dict[str, Any] | None = None
    original_text: str | None = None  # as sent, before any edit
    original_markup: dict[str, Any] | None = None


@dataclass(frozen=True)
class Rejection:
    method: str
    chat_id: int | None
    status: int
    description: str
    at: float
    retry_after: int | None = None


@dataclass
class FakeFile:
    file_id: str
    data: bytes
    size: int
    file_path: str
    unique_id: str


class ApiError(Exception):
    def __init__(self, status: int, description: str,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class _Drop(Exception):
    """Close the connection in the middle of the answer (a network drop)."""


@dataclass
class _Fault:
    kind: str  # "status" | "drop"
    status: int = 502


@dataclass
class _State:
    sent: list[SentMessage] = field(default_factory=list)
    by_chat_msg: dict[tuple[int, int], SentMessage] = field(default_factory=dict)
    edits: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    webhook: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)


class FakeTelegram:
    """The fake server; see the module docstring."""

    def __init__(self, *, token: str = "123456:TEST-fake-token",
                 now: Callable[[], float] = time.monotonic, limits: FakeLimits | None = None,
                 max_poll: float = 2.0) -> None:
        self.token = token
        self.now = now
        self.limits = limits or FakeLimits()
        self.max_poll = max_poll  # getUpdates never holds a request longer than this (seconds)
        self.bot_user = {"id": int(token.split(":")[0]) if token.split(":")[0].isdigit() else 1,
                         "is_bot": True, "first_name": "邻长助手", "username": "linzhang_test_bot",
                         "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": False}
        self._lock = threading.Lock()
        self._state = _State()
        self._blocked: set[int] = set()
        self._migrated: dict[int, int] = {}  # a group upgraded to a supergroup: old → new id
        self._expired_queries: set[str] = set()
        self._faults: dict[str, deque[_Fault]] = {}
        self._storm_until: float | None = None
        self._storm_retry_after: int | None = None
        self._global: deque[float] = deque()
        self._private_last: dict[int, float] = {}
        self._group_times: dict[int, deque[float]] = {}
        self._next_id: dict[int, itertools.count[int]] = {}
        self._files: dict[str, FakeFile] = {}
        self._by_path: dict[str, FakeFile] = {}
        self._file_seq = itertools.count(1)
        self._updates: list[dict[str, Any]] = []
        self._update_seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._update_event: asyncio.Event | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` (TELEGRAM_API_BASE)."""
        if self._port is None:
            raise RuntimeError("the fake Telegram server is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeTelegram:
        import uvicorn

        # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says
        # TCP, and the accepted ones inherit it. Without it every answer (headers, then body)
        # waits out the client's delayed ACK: 42 ms a call instead of 1.5.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(self, lifespan="off", ws="none", http="h11", loop="asyncio",
                                log_level="critical", access_log=False, timeout_keep_alive=60,
                                backlog=4096)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="fake-telegram", daemon=True)
        self._thread.start()
        server, thread = self._server, self._thread

        def up() -> bool:
            if not thread.is_alive():
                raise RuntimeError("the fake Telegram server did not start")
            return bool(server.started)

        poll(up, timeout=10, what="the fake Telegram server to start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what a test sets up ----------------------------------------------------------------

    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot (private) or the bot was removed (group): 403 from now on."""
        with self._lock:
            self._blocked.add(int(chat_id))

    def migrate(self, chat_id: int | str, new_chat_id: int | str) -> None:
        """The group became a supergroup: messages to the old id get 400 with
        `parameters.migrate_to_chat_id`, as Telegram answers."""
        with self._lock:
            self._migrated[int(chat_id)] = int(new_chat_id)

    def _check_migrated(self, method: str, chat_id: int) -> None:
        with self._lock:
            new = self._migrated.get(chat_id)
        if new is not None:
            with self._lock:
                self._state.rejections.append(Rejection(
                    method, chat_id, 400, MIGRATED, self.now(), None))
            raise ApiError(400, MIGRATED, {"migrate_to_chat_id": new})

    def unblock(self, chat_id: int | str) -> None:
        with self._lock:
            self._blocked.discard(int(chat_id))

    def fail_next(self, method: str, times: int = 1, status: int = 502) -> None:
        """The next `times` calls of `method` answer HTTP `status` (a 5xx by default)."""
        with self._lock:
            q = self._faults.setdefault(method.lower(), deque())
            q.extend(_Fault("status", status) for _ in range(times))

    def drop_next(self, method: str, times: int = 1) -> None:
        """The next `times` calls of `method` lose their connection before being accepted."""
        with self._lock:
            q = self._faults.setdefault(method.lower(), deque())
            q.extend(_Fault("drop") for _ in range(times))

    def storm(self, seconds: float, retry_after: int | None = None) -> None:
        """Every new message gets 429 for `seconds` (on this server's clock)."""
        with self._lock:
            self._storm_until = self.now() + seconds
            self._storm_retry_after = retry_after

    def expire_query(self, query_id: str) -> None:
        """answerCallbackQuery for this id fails as a press answered too late does."""
        with self._lock:
            self._expired_queries.add(query_id)

    def add_file(self, file_id: str, data: bytes, *, size: int | None = None,
                 file_path: str | None = None) -> FakeFile:
        """A file getFile can describe and /file/ can serve; `size` may claim more than `data`
        holds (to test the 20 MB rule without 20 MB)."""
        f = FakeFile(file_id, data, len(data) if size is None else size,
                     file_path or f"documents/file_{next(self._file_seq)}",
                     f"u{abs(hash(file_id)) % 10**10}")
        with self._lock:
            self._files[file_id] = f
            self._by_path[f.file_path] = f
        return f

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates; its update_id is assigned unless given."""
        with self._lock:
            update = dict(update)
            update.setdefault("update_id", next(self._update_seq))
            self._updates.append(update)
            loop, event = self._loop, self._update_event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)
        return int(update["update_id"])

    # ---- what a test reads ------------------------------------------------------------------

    @property
    def sent(self) -> list[SentMessage]:
        with self._lock:
            return list(self._state.sent)

    @property
    def edits(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.edits)

    @property
    def answers(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.answers)

    @property
    def rejections(self) -> list[Rejection]:
        with self._lock:
            return list(self._state.rejections)

    @property
    def too_many(self) -> list[Rejection]:
        """Every 429 this server gave."""
        return [r for r in self.rejections if r.status == 429]

    @property
    def errors(self) -> list[str]:
        """Bugs in the fake itself (a test should assert this stays empty)."""
        with self._lock:
            return list(self._state.errors)

    @property
    def commands(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        with self._lock:
            return dict(self._state.commands)

    @property
    def webhook(self) -> dict[str, Any] | None:
        with self._lock:
            return self._state.webhook

    def requests(self, method: str) -> int:
        with self._lock:
            return self._state.requests.get(method.lower(), 0)

    def sent_to(self, chat_id: int | str) -> list[SentMessage]:
        return [m for m in self.sent if m.chat_id == int(chat_id)]

    def texts_to(self, chat_id: int | str) -> list[str | None]:
        return [m.original_text for m in self.sent_to(chat_id)]

    def message(self, chat_id: int | str, message_id: int | str) -> SentMessage | None:
        with self._lock:
            return self._state.by_chat_msg.get((int(chat_id), int(message_id)))

    # ---- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        self._loop = asyncio.get_running_loop()
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if (m := re.fullmatch(r"/file/bot([^/]+)/(.+)", path)) is not None:
            await self._serve_file(send, m.group(1), m.group(2))
            return
        m = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", path)
        if m is None:
            await self._json(send, 404, {"ok": False, "error_code": 404,
                                         "description": "Not Found"})
            return
        token, method = m.group(1), m.group(2).lower()
        try:
            result = await self._dispatch(token, method, scope, headers, body)
        except _Drop:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", b"512")]})
            await send({"type": "http.response.body", "body": b'{"ok": tr', "more_body": True})
            raise  # the server closes the connection half-way through the answer
        except ApiError as e:
            out: dict[str, Any] = {"ok": False, "error_code": e.status,
                                   "description": e.description}
            if e.parameters:
                out["parameters"] = e.parameters
            await self._json(send, e.status, out)
            return
        except Exception as e:  # a bug in the fake: visible in the answer and in .errors
            with self._lock:
                self._state.errors.append(f"{method}: {e!r}")
            await self._json(send, 500, {"ok": False, "error_code": 500,
                                         "description": f"fake server error: {e!r}"})
            return
        await self._json(send, 200, {"ok": True, "result": result})

    @staticmethod
    async def _json(send: Callable[..., Any], status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _serve_file(self, send: Callable[..., Any], token: str, file_path: str) -> None:
        with self._lock:
            f = self._by_path.get(file_path)
        if token != self.token or f is None:
            await self._json(send, 404, {"ok": False, "error_code": 404,
                                         "description": "Not Found"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(len(f.data)).encode())]})
        await send({"type": "http.response.body", "body": f.data})

    # ---- request parsing --------------------------------------------------------------------

    @staticmethod
    def _params(scope: dict[str, Any], headers: dict[str, str], body: bytes) -> dict[str, Any]:
        raw: dict[str, Any] = dict(parse_qsl(scope.get("query_string", b"").decode()))
        ctype = headers.get("content-type", "")
        if ctype.startswith("application/json") and body:
            raw.update(json.loads(body))
            return raw
        if ctype.startswith("application/x-www-form-urlencoded"):
            raw.update(parse_qsl(body.decode(), keep_blank_values=True))
        elif ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {headers['content-type']}\r\n\r\n".encode() + body
            )
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                if filename is not None:
                    raw[str(name)] = {"filename": filename, "data": payload}
                else:
                    raw[str(name)] = payload.decode()
        for key in JSON_FIELDS & raw.keys():
            if isinstance(raw[key], str):
                try:
                    raw[key] = json.loads(raw[key])
                except json.JSONDecodeError:
                    raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from None
        return raw

    # ---- dispatch ---------------------------------------------------------------------------

    async def _dispatch(self, token: str, method: str, scope: dict[str, Any],
                        headers: dict[str, str], body: bytes) -> Any:
        with self._lock:
            self._state.requests[method] = self._state.requests.get(method, 0) + 1
        if token != self.token:
            raise ApiError(401, "Unauthorized")
        with self._lock:
            q = self._faults.get(method)
            fault = q.popleft() if q else None
        if fault is not None:
            if fault.kind == "drop":
                raise _Drop()
            raise ApiError(fault.status, "Bad Gateway" if fault.status == 502
                           else "Internal Server Error")
        params = self._params(scope, headers, body)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None and method in MESSAGE_METHODS:
            handler = self._m_send
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        if method in MESSAGE_METHODS:
            return self._m_send(method, params)
        return await handler(params) if asyncio.iscoroutinefunction(handler) else handler(params)

    def _refuse(self, method: str, chat_id: int | None, status: int, description: str,
                retry_after: int | None = None) -> ApiError:
        with self._lock:
            self._state.rejections.append(
                Rejection(method, chat_id, status, description, self.now(), retry_after)
            )
        params = {"retry_after": retry_after} if retry_after is not None else None
        return ApiError(status, description, params)

    @staticmethod
    def _chat_id(params: dict[str, Any], key: str = "chat_id") -> int:
        value = params.get(key)
        try:
            return int(str(value))
        except ValueError:
            raise ApiError(400, "Bad Request: chat not found") from None

    def _check_markup(self, method: str, chat_id: int, markup: Any) -> None:
        if markup is None:
            return
        if not isinstance(markup, dict):
            raise self._refuse(method, chat_id, 400, BAD_MARKUP)
        rows = markup.get("inline_keyboard", markup.get("keyboard"))
        if rows is None:
            return  # remove_keyboard / force_reply
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise self._refuse(method, chat_id, 400, BAD_ROWS)
        for row in rows:
            for button in row:
                if isinstance(button, str):
                    continue  # a reply keyboard allows bare strings
                if not button.get("text"):
                    raise self._refuse(method, chat_id, 400, TEXT_BUTTON)
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                    raise self._refuse(method, chat_id, 400, "Bad Request: BUTTON_DATA_INVALID")

    def _check_rate(self, method: str, chat_id: int, now: float) -> None:
        lim = self.limits
        with self._lock:
            if self._storm_until is not None and now < self._storm_until:
                wait = self._storm_retry_after or max(1, math.ceil(self._storm_until - now))
                too_many: int | None = wait
            else:
                too_many = None
                while self._global and self._global[0] <= now - 1.0:
                    self._global.popleft()
                if len(self._global) >= lim.global_per_second:
                    too_many = max(1, math.ceil(self._global[0] + 1.0 - now))
                elif chat_id > 0:
                    last = self._private_last.get(chat_id)
                    if last is not None and now - last < lim.private_interval:
                        too_many = max(1, math.ceil(last + lim.private_interval - now))
                else:
                    times = self._group_times.setdefault(chat_id, deque())
                    while times and times[0] <= now - lim.group_window:
                        times.popleft()
                    if len(times) >= lim.group_per_minute:
                        too_many = max(1, math.ceil(times[0] + lim.group_window - now))
        if too_many is not None:
            raise self._refuse(method, chat_id, 429, f"Too Many Requests: retry after {too_many}",
                               retry_after=too_many)

    def _accept(self, chat_id: int, now: float) -> int:
        """Fill the rate windows and hand out the chat's next message id (lock held)."""
        self._global.append(now)
        if chat_id > 0:
            self._private_last[chat_id] = now
        else:
            self._group_times.setdefault(chat_id, deque()).append(now)
        return next(self._next_id.setdefault(chat_id, itertools.count(1)))

    def _chat_json(self, chat_id: int) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}
        kind = "supergroup" if chat_id < -1_000_000_000_000 else "group"
        return {"id": chat_id, "type": kind, "title": f"group{chat_id}"}

    def _message_json(self, m: SentMessage) -> dict[str, Any]:
        out: dict[str, Any] = {"message_id": m.message_id, "date": int(time.time()),
                               "chat": self._chat_json(m.chat_id), "from": self.bot_user}
        if m.media is None:
            out["text"] = m.text or ""
        else:
            out.update(m.media["json"])
            if m.text:
                out["caption"] = m.text
        if m.reply_markup and "inline_keyboard" in m.reply_markup:
            out["reply_markup"] = m.reply_markup
        return out

    def _media(self, method: str, chat_id: int, value: Any) -> dict[str, Any]:
        kind = MEDIA_FIELD[method]
        if isinstance(value, dict):  # an upload
            data: bytes = value["data"]
            file_id = f"{kind}-{next(self._file_seq)}"
            f = self.add_file(file_id, data, file_path=f"{kind}s/{value['filename']}")
            name, size = value["filename"], len(data)
        elif isinstance(value, str) and value:
            if value.startswith("attach://"):
                raise self._refuse(method, chat_id, 400, BAD_FILE_ID)
            f = self._files.get(value) or self.add_file(value, b"")
            file_id, name, size = f.file_id, f.file_path.rsplit("/", 1)[-1], f.size
        else:
            raise self._refuse(method, chat_id, 400,
                               f"Bad Request: there is no {kind} in the request")
        ref = {"file_id": file_id, "file_unique_id": f.unique_id, "file_size": size}
        payload: dict[str, Any]
        if kind == "photo":
            payload = {"photo": [dict(ref, width=90, height=90)]}
        elif kind == "document":
            payload = {"document": dict(ref, file_name=name)}
        elif kind == "video":
            payload = {"video": dict(ref, width=320, height=240, duration=1)}
        else:
            payload = {kind: dict(ref, duration=1)}
        return {"kind": kind, "file_id": file_id, "filename": name, "size": size,
                "json": payload}

    def _m_send(self, method: str, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        text: str | None
        media: dict[str, Any] | None = None
        if method == "sendmessage":
            text = str(params.get("text", ""))
            if not text.strip():
                raise self._refuse(method, chat_id, 400, "Bad Request: message text is empty")
            if utf16_len(text) > TEXT_LIMIT:
                raise self._refuse(method, chat_id, 400, "Bad Request: message is too long")
        elif method in MEDIA_FIELD:
            text = params.get("caption")
            if text is not None and utf16_len(str(text)) > CAPTION_LIMIT:
                raise self._refuse(method, chat_id, 400, "Bad Request: message caption is too long")
        else:  # copyMessage / forwardMessage
            src = self._chat_id(params, "from_chat_id")
            with self._lock:
                orig = self._state.by_chat_msg.get((src, int(params.get("message_id", 0))))
            if orig is None:
                raise self._refuse(method, chat_id, 400, "Bad Request: message to copy not found")
            text, media = orig.text, orig.media
        self._check_migrated(method, chat_id)
        markup = params.get("reply_markup")
        self._check_markup(method, chat_id, markup)
        reply_to = self._reply_to(method, chat_id, params)
        with self._lock:
            blocked = chat_id in self._blocked
        if blocked:
            what = ("bot was blocked by the user" if chat_id > 0
                    else "bot was kicked from the group chat")
            raise self._refuse(method, chat_id, 403, f"Forbidden: {what}")
        now = self.now()
        self._check_rate(method, chat_id, now)
        if method in MEDIA_FIELD:
            media = self._media(method, chat_id, params.get(MEDIA_FIELD[method]))
        with self._lock:
            mid = self._accept(chat_id, now)
            m = SentMessage(mid, chat_id, method, text, markup, reply_to, now, media, text, markup)
            self._state.sent.append(m)
            self._state.by_chat_msg[(chat_id, mid)] = m
        if method == "copymessage":
            return {"message_id": mid}
        return self._message_json(m)

    def _reply_to(self, method: str, chat_id: int, params: dict[str, Any]) -> int | None:
        rp = params.get("reply_parameters")
        if isinstance(rp, dict):
            target, allow = rp.get("message_id"), bool(rp.get("allow_sending_without_reply"))
        else:
            target = params.get("reply_to_message_id")
            allow = str(params.get("allow_sending_without_reply", "")).lower() == "true"
        if target is None:
            return None
        with self._lock:
            found = (chat_id, int(target)) in self._state.by_chat_msg
        if not found and not allow:
            raise self._refuse(method, chat_id, 400, "Bad Request: message to be replied not found")
        return int(target) if found else None

    # ---- other methods --------------------------------------------------------------------

    def _m_getme(self, params: dict[str, Any]) -> Any:
        return self.bot_user

    def _edit(self, method: str, params: dict[str, Any], field_name: str | None) -> Any:
        chat_id = self._chat_id(params)
        self._check_migrated(method, chat_id)
        key = (chat_id, int(params.get("message_id", 0)))
        markup = params.get("reply_markup")
        self._check_markup(method, chat_id, markup)
        with self._lock:
            m = self._state.by_chat_msg.get(key)
            blocked = chat_id in self._blocked
        if blocked:
            raise self._refuse(method, chat_id, 403, "Forbidden: bot was blocked by the user")
        if m is None:
            raise self._refuse(method, chat_id, 400, "Bad Request: message to edit not found")
        new_text = m.text if field_name is None else str(params.get(field_name, ""))
        if field_name == "text":
            if m.media is not None:
                raise self._refuse(method, chat_id, 400, NO_TEXT_TO_EDIT)
            if not new_text.strip():
                raise self._refuse(method, chat_id, 400, "Bad Request: message text is empty")
            if utf16_len(new_text) > TEXT_LIMIT:
                raise self._refuse(method, chat_id, 400, "Bad Request: MESSAGE_TOO_LONG")
        if field_name == "caption" and utf16_len(new_text or "") > CAPTION_LIMIT:
            raise self._refuse(method, chat_id, 400, "Bad Request: message caption is too long")
        with self._lock:
            if new_text == m.text and (markup or None) == (m.reply_markup or None):
                raise ApiError(400, NOT_MODIFIED)
            m.text, m.reply_markup = new_text, markup
            self._state.edits.append({"method": method, "chat_id": chat_id,
                                      "message_id": m.message_id, "text": new_text,
                                      "reply_markup": markup, "at": self.now()})
        return self._message_json(m)

    def _m_sendmediagroup(self, params: dict[str, Any]) -> Any:
        """An album: 2-10 photos in one message group; each counts in the rate windows."""
        method = "sendmediagroup"
        chat_id = self._chat_id(params)
        self._check_migrated(method, chat_id)
        items = params.get("media")
        if not isinstance(items, list) or not ALBUM_SIZE[0] <= len(items) <= ALBUM_SIZE[1]:
            raise self._refuse(method, chat_id, 400,
                               "Bad Request: wrong number of messages in the media group")
        with self._lock:
            blocked = chat_id in self._blocked
        if blocked:
            raise self._refuse(method, chat_id, 403, "Forbidden: bot was blocked by the user")
        now = self.now()
        self._check_rate(method, chat_id, now)
        group = f"mg{next(self._file_seq)}"
        out = []
        for item in items:
            ref = item.get("media", "")
            if isinstance(ref, str) and ref.startswith("attach://"):
                ref = params.get(ref.removeprefix("attach://"))
            caption = item.get("caption")
            if caption is not None and utf16_len(str(caption)) > CAPTION_LIMIT:
                raise self._refuse(method, chat_id, 400, "Bad Request: message caption is too long")
            media = self._media("sendphoto", chat_id, ref)
            media["media_group_id"] = group
            with self._lock:
                mid = self._accept(chat_id, now)
                m = SentMessage(mid, chat_id, method, caption, None, None, now, media, caption,
                                None)
                self._state.sent.append(m)
                self._state.by_chat_msg[(chat_id, mid)] = m
            out.append(dict(self._message_json(m), media_group_id=group))
        return out

    def _m_editmessagetext(self, params: dict[str, Any]) -> Any:
        return self._edit("editmessagetext", params, "text")

    def _m_editmessagecaption(self, params: dict[str, Any]) -> Any:
        return self._edit("editmessagecaption", params, "caption")

    def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> Any:
        return self._edit("editmessagereplymarkup", params, None)

    def _m_answercallbackquery(self, params: dict[str, Any]) -> Any:
        qid = str(params.get("callback_query_id", ""))
        text = params.get("text")
        with self._lock:
            expired = not qid or qid in self._expired_queries
        if expired:
            raise self._refuse("answercallbackquery", None, 400, QUERY_TOO_OLD)
        if text is not None and len(str(text)) > ANSWER_TEXT_LIMIT:
            raise self._refuse("answercallbackquery", None, 400, "Bad Request: MESSAGE_TOO_LONG")
        with self._lock:
            self._state.answers.append({"callback_query_id": qid, "text": text,
                                        "show_alert": str(params.get("show_alert", "")).lower()
                                        == "true"})
        return True

    def _m_getfile(self, params: dict[str, Any]) -> Any:
        with self._lock:
            f = self._files.get(str(params.get("file_id", "")))
        if f is None:
            raise self._refuse("getfile", None, 400, "Bad Request: invalid file_id")
        if f.size > FILE_DOWNLOAD_LIMIT:
            raise self._refuse("getfile", None, 400, "Bad Request: file is too big")
        return {"file_id": f.file_id, "file_unique_id": f.unique_id, "file_size": f.size,
                "file_path": f.file_path}

    @staticmethod
    def _scope_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    def _m_setmycommands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise self._refuse("setmycommands", None, 400, BAD_COMMANDS)
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", ""))):
                raise self._refuse("setmycommands", None, 400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise self._refuse("setmycommands", None, 400, BAD_DESCRIPTION)
        with self._lock:
            self._state.commands[self._scope_key(params)] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        return True

    def _m_deletemycommands(self, params: dict[str, Any]) -> Any:
        with self._lock:
            self._state.commands.pop(self._scope_key(params), None)
        return True

    def _m_getmycommands(self, params: dict[str, Any]) -> Any:
        with self._lock:
            return self._state.commands.get(self._scope_key(params), [])

    def _m_setwebhook(self, params: dict[str, Any]) -> Any:
        url = str(params.get("url", ""))
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise self._refuse("setwebhook", None, 400, BAD_SECRET)
        if url and not url.startswith("https://"):
            raise self._refuse("setwebhook", None, 400, NEED_HTTPS)
        with self._lock:
            self._state.webhook = ({"url": url, "secret_token": secret,
                                    "allowed_updates": params.get("allowed_updates")}
                                   if url else None)
            if str(params.get("drop_pending_updates", "")).lower() == "true":
                self._updates.clear()
        return True

    def _m_deletewebhook(self, params: dict[str, Any]) -> Any:
        with self._lock:
            self._state.webhook = None
            if str(params.get("drop_pending_updates", "")).lower() == "true":
                self._updates.clear()
        return True

    def _m_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        with self._lock:
            hook = self._state.webhook
            pending = len(self._updates)
        return {"url": hook["url"] if hook else "", "has_custom_certificate": False,
                "pending_update_count": pending}

    async def _m_getupdates(self, params: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_ACTIVE)
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = min(float(params.get("timeout") or 0), self.max_poll)
        deadline = time.monotonic() + timeout
        while True:
            if self._update_event is None:
                self._update_event = asyncio.Event()
            self._update_event.clear()
            with self._lock:
                if offset:
                    # Telegram forgets every update below the offset once it is asked for.
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = self._updates[:limit]
            left = deadline - time.monotonic()
            if ready or left <= 0:
                return ready
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._update_event.wait(), left)
