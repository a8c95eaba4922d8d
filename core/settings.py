"""Deployment settings, read from environment variables and a `.env` file."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: Any) -> timedelta:
    """Turn `4h`, `90s`, `1h30m`, `72h` or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (use e.g. 4h, 90s, 1h30m)")
    return timedelta(seconds=total)


def parse_clock_time(value: Any) -> time:
    """Turn `22:00` into a time of day."""
    if isinstance(value, time):
        return value
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"not a time of day: {value!r} (use HH:MM)")
    return time(int(m.group(1)), int(m.group(2)))


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ClockTime = Annotated[time, BeforeValidator(parse_clock_time)]


class Settings(BaseSettings):
    """Everything a deployment can set; defaults are the embedded SQLite setup."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = "sqlite:///./linzhang.db"
    timezone: str = "Asia/Shanghai"
    # Shown on the 邻长 contact card (web chat greeting, /mylz, the printable card); empty: none.
    office_hours: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    log_level: str = "INFO"
    log_format: str = Field(default="text", pattern="^(text|json)$")  # json: one object a line
    # Phone, ID and house numbers in log lines are masked (core/privacy.mask_text) unless this
    # is set, for a developer debugging an address parser on test data.
    log_personal_data: bool = False

    # HTTP limits (webhooks/body_limits.py, `linzhang serve`): a body over the cap is refused
    # (413) before it is read; the web chat's uploads get the media limits below instead.
    http_max_body_bytes: int = Field(default=2**20, ge=1024)
    # A request body must have fully arrived this long after the request began (else 408).
    http_body_timeout: Duration = Field(default=timedelta(seconds=30), gt=timedelta(0))
    # An idle keep-alive connection is closed after this many seconds (uvicorn).
    http_keepalive_timeout: int = Field(default=5, ge=1)
    # Connections and tasks one server process takes at once; past it, 503 (uvicorn).
    http_limit_concurrency: int | None = Field(default=1000, ge=1)
    # WeChat and WeCom callbacks: a timestamp further than this from our clock is refused, and
    # a nonce is remembered this long (the plain-mode signature covers no body).
    wechat_max_clock_skew: Duration = Field(default=timedelta(minutes=5), gt=timedelta(0))

    # Deadline policy (DESIGN.md, "Case lifecycle").
    reply_deadline: Duration = timedelta(hours=4)
    handle_deadline: Duration = timedelta(hours=72)
    department_deadline: Duration = timedelta(hours=24)
    confirm_window: Duration = timedelta(hours=72)
    nag_before: Duration = timedelta(minutes=30)
    nags_per_tier: int = Field(default=3, ge=0)
    # A notice's recipients who have not said 收到 are reminded once after this long.
    notice_reping: Duration = Field(default=timedelta(hours=4), gt=timedelta(0))
    # A relay (residents without a chat, told by their 邻长) is due at the notice's deadline,
    # or this long after sending when it has none (NOTICE_RELAY_WINDOW).
    notice_relay_window: Duration = Field(default=timedelta(days=3), gt=timedelta(0))
    quiet_start: ClockTime = time(22, 0)
    quiet_end: ClockTime = time(7, 0)
    pause_deadlines_in_quiet_hours: bool = False
    # Working time (core/cases/worktime.py), for category limits in `wh`/`wd`: office hours as
    # periods of a day, and a CSV of local days (date,kind: holiday/休 or workday/班) that
    # override the national calendar, e.g. a local holiday, or a year `chinese-calendar` does
    # not know yet (such a year counts Monday to Friday until it is listed or the package is
    # upgraded).
    work_hours: str = "08:30-12:00,14:00-17:30"
    work_calendar_file: str | None = None
    _local_holidays: tuple[str, ...] = PrivateAttr(default=())
    _local_workdays: tuple[str, ...] = PrivateAttr(default=())
    sweep_interval: Duration = timedelta(seconds=1)
    # How often an open campaign board fetches its numbers again (CAMPAIGN_BOARD_REFRESH).
    campaign_board_refresh: Duration = timedelta(seconds=15)
    sweep_batch: int = Field(default=2000, ge=1)
    # How often town and district figures catch up with the cases (core/rollup).
    rollup_interval: Duration = Field(default=timedelta(minutes=1), gt=timedelta(0))
    # How often a separate job checks that the sweep keeps up (core/ops.py: the stall alert).
    stall_check_interval: Duration = timedelta(seconds=60)
    # Channel heartbeats (core/heartbeats.py): how often each worker shares when its platforms
    # last received and sent, and how long a platform may send nothing while messages wait
    # before the root admins are alerted.
    heartbeat_interval: Duration = Field(default=timedelta(seconds=60), gt=timedelta(0))
    channel_silence: Duration = Field(default=timedelta(minutes=15), gt=timedelta(0))
    append_window: Duration = timedelta(minutes=10)
    # Flood control (bot/flows/flood.py): past this many messages a minute from one person the
    # bot stops answering each one, says so once, and keeps every word on their open case.
    flood_per_minute: int = Field(default=20, ge=1)
    # How long a sender holds the outbox rows it claimed (renewed while it runs): the rows of a
    # sender that died go to another worker this long after.
    outbox_lease: Duration = timedelta(minutes=1)
    # Open311 status webhooks (bot/handlers/webhook): how long one POST may take before it is
    # retried, and how long a change is retried before it is given up and the admins told.
    webhook_timeout: Duration = Field(default=timedelta(seconds=10), gt=timedelta(0))
    webhook_max_age: Duration = Field(default=timedelta(days=1), gt=timedelta(0))

    # Media (core/media): where files are kept, and what is accepted.
    media_dir: str = "./media"
    max_photo_bytes: int = Field(default=20 * 2**20, ge=1)
    max_voice_bytes: int = Field(default=20 * 2**20, ge=1)
    max_video_bytes: int = Field(default=50 * 2**20, ge=1)
    max_document_bytes: int = Field(default=20 * 2**20, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    # Spreadsheet uploads (core/hierarchy/archive_limits.py): an XLSX is checked before openpyxl
    # reads it (zip bombs), and a chat /import is read first in a child process with a memory
    # and time cap (core/hierarchy/parse_worker.py), one at a time.
    xlsx_max_unpacked_bytes: int = Field(default=256 * 2**20, ge=1)
    xlsx_max_entry_bytes: int = Field(default=128 * 2**20, ge=1)
    xlsx_max_ratio: int = Field(default=200, ge=1)
    xlsx_max_entries: int = Field(default=1000, ge=1)
    sheet_max_rows: int = Field(default=1_048_576, ge=1)
    sheet_max_columns: int = Field(default=100, ge=1)
    import_worker_memory_bytes: int = Field(default=1024 * 2**20, ge=64 * 2**20)
    import_worker_seconds: float = Field(default=120.0, gt=0)
    import_queue_seconds: float = Field(default=60.0, gt=0)  # waiting for the one slot

    # Warning colours: a node is at a level when its open cases reach the count or its overdue
    # cases reach the overdue count; it drops back only below the threshold minus hysteresis.
    warn_yellow_open: int = 5
    warn_orange_open: int = 15
    warn_red_open: int = 30
    warn_yellow_overdue: int = 1
    warn_orange_overdue: int = 3
    warn_red_overdue: int = 5
    warn_hysteresis: float = Field(default=0.2, ge=0, lt=1)

    # Dashboard (webhooks/dashboard.py): sign-in, sessions, the assessment ranking, the map.
    dashboard_login_ttl: Duration = timedelta(minutes=15)
    # Identity (README, "Security and personal data"): how long a person invite an admin made
    # stays redeemable, and how long a 邻长 may confirm a typed phone number.
    person_invite_ttl: Duration = timedelta(days=7)
    bind_request_ttl: Duration = timedelta(days=2)
    dashboard_session_ttl: Duration = timedelta(hours=12)
    dashboard_min_cases: int = Field(default=10, ge=0)  # fewer cases: left out of the ranking
    # 满意度测评: a 邻长 whose residents' mean is under this, over at least that many answers,
    # is flagged 需调整 on the 考核 scorecard.
    survey_adjust_below: float = Field(default=3.0, ge=1, le=5)
    survey_adjust_min_answers: int = Field(default=5, ge=1)
    dashboard_page_size: int = Field(default=50, ge=1, le=500)
    dashboard_cookie_secure: bool = False
    session_secret: SecretStr | None = None  # signs form tokens; random per process if unset
    tile_url: str | None = None  # e.g. https://tiles.example/{z}/{x}/{y}.png: turns on Leaflet
    leaflet_url: str | None = None  # where leaflet.js/.css live (default: served by the app)
    # boundaries.geojson (core/hierarchy/boundaries.py): the file, and the points of one node's
    # shape; the map sends each shape cut down to at most `boundary_map_points` points.
    boundary_max_bytes: int = Field(default=32 * 2**20, ge=1)
    boundary_max_points: int = Field(default=50_000, ge=4)
    boundary_map_points: int = Field(default=400, ge=16)

    # The built-in web chat (webhooks/webchat.py) and `linzhang demo`.
    demo_mode: bool = False  # the person switcher, codes shown on screen, / goes to /chat
    web_session_ttl: Duration = timedelta(days=30)
    web_stream_seconds: float = Field(default=300.0, gt=0)  # one event stream, then reconnect
    web_keepalive_seconds: float = Field(default=15.0, gt=0)
    # One-time phone codes of the web chat (core/web_sessions.py), counted in the database
    # across every session and worker: codes sent per number, per client address and in all
    # within the window; wrong codes per number (then its codes die and no new one is sent
    # until the window has passed) and per address.
    web_code_ttl: Duration = Field(default=timedelta(minutes=10), gt=timedelta(0))
    web_code_window: Duration = Field(default=timedelta(hours=1), gt=timedelta(0),
                                      le=timedelta(days=1))
    web_codes_per_phone: int = Field(default=3, ge=1)
    web_codes_per_client: int = Field(default=10, ge=1)
    web_codes_total: int = Field(default=300, ge=1)
    web_code_wrong_per_phone: int = Field(default=5, ge=1)
    web_code_wrong_per_client: int = Field(default=20, ge=1)

    # Platforms.
    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"
    telegram_webhook_secret: SecretStr | None = None
    telegram_bot_username: str | None = None  # for t.me/<bot>?start=<invite> links
    wechat_app_id: str | None = None
    wechat_app_secret: SecretStr | None = None
    wechat_token: SecretStr | None = None
    wechat_encoding_aes_key: SecretStr | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    wecom_corp_id: str | None = None
    wecom_agent_id: str | None = None
    wecom_secret: SecretStr | None = None
    wecom_token: SecretStr | None = None
    wecom_encoding_aes_key: SecretStr | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    # Template messages for residents outside WeChat's 48-hour customer-service window.
    wechat_template_answer: str | None = None  # "your case was answered"
    wechat_template_confirm: str | None = None  # "is it fixed?"
    wechat_template_notice: str | None = None  # a notice (通知) to confirm with 收到
    # SMS through Tencent Cloud SMS (bot/handlers/sms): a registered template per message kind
    # (text params only, each clipped to 20 characters), caps checked before each send.
    sms_secret_id: str | None = None
    sms_secret_key: SecretStr | None = None
    sms_sdk_app_id: str | None = None
    sms_sign_name: str | None = None
    sms_region: str = "ap-guangzhou"
    sms_api_base: str | None = None  # e.g. http://127.0.0.1:9000 (a test double)
    sms_template_receipt: str | None = None  # {1} case number, {2} category or first words
    sms_template_answer: str | None = None  # {1} case number, {2} the answer's first words
    sms_template_fixed: str | None = None  # {1} case number: "fixed? reply 1 yes, 2 no"
    sms_template_notice: str | None = None  # {1} the notice's first words: "reply 收到"
    sms_template_urgent: str | None = None  # {1} case number, {2} category, {3} place
    sms_daily_cap_per_number: int = Field(default=5, ge=1)
    sms_daily_cap: int = Field(default=1000, ge=1)  # the whole deployment, a local day
    sms_cost_fen: int = Field(default=5, ge=0)  # what one message costs, in 分
    # Tencent's reply (上行) callback carries no signature: the URL configured there holds
    # this secret (/webhooks/sms?token=…), checked in constant time.
    sms_callback_token: SecretStr | None = None
    # Urgent categories (the 119/110/120 kind) text the town's duty officer.
    sms_urgent_categories: str = ""  # comma-separated category names
    # The hotline console's cases are also this Open311 client's requests (its name, as made
    # by `linzhang open311 key create`): the 12345 system whose operators take the calls reads
    # them back over Open311 and hears of their changes by its status webhook.
    hotline_open311_client: str | None = None
    # A WeCom smart bot (智能机器人) in tier group chats: its own callback token and key.
    wecom_bot_token: SecretStr | None = None
    wecom_bot_encoding_aes_key: SecretStr | None = None
    redis_url: str | None = None

    @property
    def sms_on(self) -> bool:
        """Whether this deployment sends SMS (credentials and an app)."""
        return self.sms_secret_key is not None and bool(self.sms_sdk_app_id)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("work_hours")
    @classmethod
    def _readable_work_hours(cls, value: str) -> str:
        from core.cases.worktime import parse_work_hours

        parse_work_hours(value)  # a LimitError is a ValueError: pydantic reports it
        return value

    @model_validator(mode="after")
    def _read_work_calendar(self) -> Settings:
        if self.work_calendar_file:
            from pathlib import Path

            from core.cases.worktime import read_calendar_file

            path = Path(self.work_calendar_file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"WORK_CALENDAR_FILE {path}: {exc.strerror}") from None
            self._local_holidays, self._local_workdays = read_calendar_file(
                text, label=path.name)
        return self

    @property
    def local_holidays(self) -> tuple[str, ...]:
        return self._local_holidays

    @property
    def local_workdays(self) -> tuple[str, ...]:
        return self._local_workdays

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def own_url(self) -> str:
        """Where people reach this server: PUBLIC_URL, else the address `serve` listens on (a
        wildcard address is reached on loopback)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
