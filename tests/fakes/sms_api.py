"""A fake Tencent Cloud SMS API (sms.tencentcloudapi.com, version 2021-01-11) on 127.0.0.1.

It checks what the real one checks before sending: the TC3-HMAC-SHA256 signature the SDK
makes over the request (the configured SecretId/SecretKey; `AuthFailure.SignatureFailure`
otherwise), the SDK app id, the signature name and that the template is one it knows
(`FailedOperation.TemplateIncorrectOrUnapproved`). Then, per number, Tencent's default limits:
one message per 30 s (`LimitExceeded.PhoneNumberThirtySecondLimit`) and `daily_cap` a natural
day (`LimitExceeded.PhoneNumberDailyLimit`, answered in the number's SendStatus, the request
itself Ok); and `per_second` requests a second for the app (`RequestLimitExceeded`, the
request's Error). Everything accepted is recorded in `sent`. Time is the test's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.clock import Clock

SERVICE = "sms"
THIRTY_SECONDS = timedelta(seconds=30)


@dataclass
class Sms:
    phone: str  # as the SDK sent it: +86…
    template: str
    params: list[str]
    at: datetime
    serial: str


def tc3_signature(secret_key: str, *, date: str, string_to_sign: str) -> str:
    """Tencent's TC3 key derivation: date → service → tc3_request, then the string."""
    def h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    k = h(h(h(("TC3" + secret_key).encode(), date), SERVICE), "tc3_request")
    return hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class FakeSmsApi:
    clock: Clock
    secret_id: str = "AKIDfake"
    secret_key: str = "fake-secret-key"
    app_id: str = "1400000001"
    sign_name: str = "邻长制"
    templates: frozenset[str] = frozenset({"T-RECEIPT", "T-ANSWER", "T-FIXED", "T-NOTICE",
                                           "T-URGENT"})
    daily_cap: int = 10  # Tencent's default per number and natural day
    per_second: int = 100
    sent: list[Sms] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (phone or "", code)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _requests: list[datetime] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _by_phone: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def sent_to(self, phone: str) -> list[Sms]:
        with self._lock:
            return [m for m in self.sent if m.phone.removeprefix("+86") == phone]

    def __enter__(self) -> FakeSmsApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = api.handle(dict(self.headers.items()), self.path, raw)
                data = json.dumps({"Response": answer}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- the API ----------------------------------------------------------------------------

    def _signed(self, headers: dict[str, str], path: str, raw: bytes) -> bool:
        h = {k.lower(): v for k, v in headers.items()}
        auth = h.get("authorization", "")
        if not auth.startswith("TC3-HMAC-SHA256 "):
            return False
        parts = dict(p.strip().split("=", 1) for p in auth[len("TC3-HMAC-SHA256 "):].split(","))
        sid, date, service, _ = (parts.get("Credential", "") + "///").split("/", 3)
        ts = h.get("x-tc-timestamp", "0")
        if sid != self.secret_id or service != SERVICE or \
                datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d") != date:
            return False
        canonical = "\n".join(["POST", path, "", f"content-type:{h.get('content-type', '')}",
                               f"host:{h.get('host', '')}", "", "content-type;host",
                               hashlib.sha256(raw).hexdigest()])
        to_sign = "\n".join(["TC3-HMAC-SHA256", ts, f"{date}/{SERVICE}/tc3_request",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        want = tc3_signature(self.secret_key, date=date, string_to_sign=to_sign)
        return hmac.compare_digest(want, parts.get("Signature", ""))

    def _error(self, code: str, message: str) -> dict[str, Any]:
        self.refused.append(("", code))
        return {"Error": {"Code": code, "Message": message}, "RequestId": "fake-req"}

    def handle(self, headers: dict[str, str], path: str, raw: bytes) -> dict[str, Any]:
        with self._lock:
            if not self._signed(headers, path, raw):
                return self._error("AuthFailure.SignatureFailure", "signature mismatch")
            now = self.clock.now()
            self._requests = [t for t in self._requests if now - t < timedelta(seconds=1)]
            if len(self._requests) >= self.per_second:
                return self._error("RequestLimitExceeded", "too many requests")
            self._requests.append(now)
            action = {k.lower(): v for k, v in headers.items()}.get("x-tc-action")
            if action != "SendSms":
                return self._error("InvalidAction", f"{action} is not faked")
            body = json.loads(raw)
            if body.get("SmsSdkAppId") != self.app_id:
                return self._error("FailedOperation.SmsSdkAppIdVerifyFail", "bad app id")
            if body.get("SignName") != self.sign_name:
                return self._error("FailedOperation.SignatureIncorrectOrUnapproved", "sign")
            if body.get("TemplateId") not in self.templates:
                return self._error("FailedOperation.TemplateIncorrectOrUnapproved", "template")
            params = [str(p) for p in body.get("TemplateParamSet") or []]
            statuses = [self._one(str(p), body["TemplateId"], params, now)
                        for p in body.get("PhoneNumberSet") or []]
            return {"SendStatusSet": statuses, "RequestId": "fake-req"}

    def _one(self, phone: str, template: str, params: list[str], now: datetime
             ) -> dict[str, Any]:
        day = now.astimezone(UTC) + timedelta(hours=8)  # Tencent's natural day is Beijing's
        times = self._by_phone[phone]
        code = "Ok"
        if times and now - times[-1] < THIRTY_SECONDS:
            code = "LimitExceeded.PhoneNumberThirtySecondLimit"
        elif sum(1 for t in times if (t + timedelta(hours=8)).date() == day.date()) \
                >= self.daily_cap:
            code = "LimitExceeded.PhoneNumberDailyLimit"
        status = {"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "SessionContext": "",
                  "Code": code, "Message": "send success" if code == "Ok" else code,
                  "IsoCode": "CN"}
        if code != "Ok":
            self.refused.append((phone, code))
            return status
        times.append(now)
        serial = f"2433:{len(self.sent) + 1:08d}"
        self.sent.append(Sms(phone, template, params, now, serial))
        return {**status, "SerialNo": serial, "Fee": 1}
