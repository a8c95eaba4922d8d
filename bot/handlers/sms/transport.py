"""SMS's transport for the one dispatcher: Tencent Cloud SMS's SendSms, one registered
template per message kind, for people no chat reaches (core/deliveries.py: SMS).

An SMS says only what a template approved by the provider says: the row's kind picks the
template (`SMS_TEMPLATE_*`), the row gives the parameters (each clipped to `PARAM_LIMIT`
characters: a template variable is short, and a long one costs a second billed segment). A
kind without a template is never sent by SMS (the row is settled at once, as WeChat settles a
row it has no template for outside its window).

Before each call our own caps (core/sms.py: `SMS_DAILY_CAP_PER_NUMBER`, `SMS_DAILY_CAP`) are
checked; a row over one waits for the next local day (Later: no attempt counted, nothing
lost), and the admins of the root are told once a day when the deployment's cap is reached.
The provider's limits answer the same way: a number's 30-second, hourly or daily limit puts the
row off that long, the API's request limit for a second.

tencentcloud-sdk-python is synchronous (requests): one delivery at a time, in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from bot.dispatcher.rows import Row
from bot.dispatcher.transport import Done, Later, Outcome, Retry, Work
from bot.flows.texts import t
from core import sms as caps
from core.clock import Clock
from core.db import write_session
from core.deliveries import SMS
from core.ops import root_admins
from core.outbox import Draft, enqueue_many
from core.settings import Settings

log = logging.getLogger(__name__)
PLATFORM = SMS
PARAM_LIMIT = 20
# The provider's per-number limits (Tencent's defaults: 1 in 30 s, 10 a natural day), and how
# long each asks us to wait; the day's limit waits for our own next day.
NUMBER_LIMITS = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": timedelta(seconds=30),
    "LimitExceeded.PhoneNumberOneHourLimit": timedelta(hours=1),
    "LimitExceeded.DeliveryFrequencyLimit": timedelta(seconds=30),
    "LimitExceeded.PhoneNumberSameContentDailyLimit": None,
    "LimitExceeded.PhoneNumberDailyLimit": None,
}
THROTTLED = {"RequestLimitExceeded", "RequestLimitExceeded.UinLimitExceeded"}
# Wrong forever whatever we retry: a bad number, an unapproved template or signature, money.
PERMANENT_PREFIXES = ("FailedOperation.", "InvalidParameterValue.", "UnauthorizedOperation.",
                      "UnsupportedOperation.")
# Nothing lost for want of money: the package is topped up, the row goes then.
NO_BALANCE = "FailedOperation.InsufficientBalanceInSmsPackage"


def clip(text: str, limit: int = PARAM_LIMIT) -> str:
    """At most `limit` characters, an ellipsis where it was cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def template_for(settings: Settings, kind: str) -> str | None:
    """The registered template for an outbox row's kind (None: not sent by SMS)."""
    return {
        "case_opened": settings.sms_template_receipt,
        "replied": settings.sms_template_answer,
        "resolved": settings.sms_template_fixed,
        "notice": settings.sms_template_notice,
        "notice_reping": settings.sms_template_notice,
        "sms_urgent": settings.sms_template_urgent,
    }.get(kind) or None


def params_for(row: Row) -> list[str]:
    """The template's parameters, from the row: the case number and the first words."""
    head = row.text.strip().partition("\n")
    words = clip(head[2] or head[0])
    if row.kind.startswith("notice"):
        return [clip(row.text.removeprefix("【通知】"))]
    if row.kind == "sms_urgent":
        return [str(row.case_id or ""), *(clip(str(p)) for p in
                                           row.options.get("sms_params", [])[:2])]
    return [str(row.case_id or ""), words] if row.kind != "resolved" \
        else [str(row.case_id or "")]


def e164(phone: str) -> str:
    """Tencent wants +<country><number>; numbers on file are mainland ones without it."""
    return phone if phone.startswith("+") else "+86" + phone


class TencentSms:
    """The SDK's SendSms for one number (the endpoint may point at a test double)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.sms_secret_key is not None
        http = HttpProfile(reqTimeout=10)
        if settings.sms_api_base:
            scheme, _, host = settings.sms_api_base.partition("://")
            http = HttpProfile(protocol=scheme, endpoint=host.rstrip("/"), reqTimeout=10)
        self.client = sms_client.SmsClient(
            credential.Credential(settings.sms_secret_id or "",
                                  settings.sms_secret_key.get_secret_value()),
            settings.sms_region, ClientProfile(httpProfile=http))
        self.app_id, self.sign = settings.sms_sdk_app_id or "", settings.sms_sign_name or ""

    def send(self, *, phone: str, template: str, params: list[str]) -> dict[str, Any]:
        """One message; the number's SendStatus (Code "Ok" or the provider's code)."""
        req = models.SendSmsRequest()
        req.SmsSdkAppId, req.SignName, req.TemplateId = self.app_id, self.sign, template
        req.PhoneNumberSet, req.TemplateParamSet = [e164(phone)], params
        res = self.client.SendSms(req)
        got = (res.SendStatusSet or [None])[0]
        return {"code": got.Code, "serial": got.SerialNo or "", "message": got.Message} \
            if got is not None else {"code": "InternalError.EmptyAnswer", "serial": ""}


class SmsTransport:
    """Tencent Cloud SMS behind the dispatcher's Transport protocol."""

    platform = PLATFORM
    parallel = 1
    counts_rows = True

    def __init__(self, *, engine: Engine, settings: Settings, clock: Clock,
                 api: TencentSms | None = None) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.api = api or TencentSms(settings)

    async def deliver(self, work: Work) -> Outcome:
        return await asyncio.to_thread(self.deliver_now, work)

    def deliver_now(self, work: Work) -> Outcome:
        """Deliver one row (sync)."""
        row = work.row
        template = template_for(self.settings, row.kind)
        if template is None:
            return Retry(f"no SMS template for {row.kind!r}", permanent=True)
        phones = [d.chat_id for d in work.dests if (d.chat_id, 0) not in work.done]
        if not work.dests:
            return Retry("no phone number on file", permanent=True)
        now = self.clock.now()
        for phone in phones:
            held = self._capped(phone, now)
            if held is not None:
                return held
            try:
                got = self.api.send(phone=phone, template=template, params=params_for(row))
            except TencentCloudSDKException as exc:
                return self._refused(str(exc.code), str(exc.message), now)
            if got["code"] != "Ok":
                return self._refused(got["code"], str(got.get("message", "")), now)
            work.ledger.record(row, chat_id=phone, message_id=got["serial"] or f"r{row.id}",
                               part_type="sms", is_card=False)
            work.stats.messages += 1
        return Done()

    def _capped(self, phone: str, now: datetime) -> Later | None:
        s = self.settings
        with write_session(self.engine) as session:
            capped = caps.over_cap(session, phone=phone, now=now, tz=ZoneInfo(s.timezone),
                                   per_number=s.sms_daily_cap_per_number, total=s.sms_daily_cap)
            if capped is None:
                return None
            if capped.scope == "deployment":
                day = now.astimezone(ZoneInfo(s.timezone)).date().isoformat()
                enqueue_many(session, now=now, drafts=[
                    Draft(text=t("zh", "sms_cap_reached", cap=s.sms_daily_cap),
                          kind="sms_cap", person_id=p, dedupe_key=f"sms_cap:{day}:p{p}")
                    for p in root_admins(session)])
        return Later(capped.until, f"SMS {capped.scope} cap for today reached")

    def _refused(self, code: str, message: str, now: datetime) -> Outcome:
        if code in NUMBER_LIMITS:
            wait = NUMBER_LIMITS[code]
            until = now + wait if wait is not None else \
                caps.day_bounds(now, ZoneInfo(self.settings.timezone))[1]
            return Later(until, f"SMS {code}", throttled=True)
        if code == NO_BALANCE:
            return Later(now + timedelta(hours=1), f"SMS {code}")
        if code in THROTTLED:
            return Later(now + timedelta(seconds=1), f"SMS {code}", throttled=True)
        if code.startswith(PERMANENT_PREFIXES):
            return Retry(f"SMS {code}: {message}", permanent=True)
        return Retry(f"SMS {code}: {message}")  # InternalError.*, the network: backoff


__all__ = ["SmsTransport", "TencentSms", "clip", "params_for", "template_for"]
