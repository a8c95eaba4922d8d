"""`linzhang serve | demo | migrate | import | export | purge | set-password | wechat-menu |
open311 key|hook …`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.flows.refusals import phrase_words, sentence
from core.errors import DomainError, ImportRejected

if TYPE_CHECKING:
    from fastapi import FastAPI

    from core.settings import Settings

DEMO_DIR = Path(__file__).resolve().parents[1] / "core" / "demo"


def _settings(**overrides: object):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from core.settings import Settings

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SystemExit(f"linzhang: bad setting: {exc}") from None


_OPEN: list[object] = []  # the engines a command made: `main` closes them when it ends

def _engine(settings):  # type: ignore[no-untyped-def]
    from bot import notify
    from core.db import make_engine, migrate

    notify.install()  # a case changed from the CLI notifies like any other
    engine = make_engine(settings.database_url)
    _OPEN.append(engine)
    migrate(engine)
    return engine


class _Bars:
    """tqdm progress bars on a terminal, silence elsewhere."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.bars: dict[str, object] = {}

    def __call__(self, phase: str, n: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(phase)
        if bar is None:
            bar = self.bars[phase] = tqdm(desc=phase, unit=" rows", unit_scale=True, leave=False)
        bar.update(n)  # type: ignore[attr-defined]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()  # type: ignore[attr-defined]


def cmd_import(args: argparse.Namespace) -> int:
    from core.hierarchy.importer import import_files

    settings = _settings()
    engine = _engine(settings)
    bars = _Bars()
    try:
        report = import_files(engine, args.files, progress=bars, max_errors=args.max_errors)
    except ImportRejected as exc:
        bars.close()
        print(exc.report(phrase_words("en")), file=sys.stderr)
        print(f"linzhang import: {exc}; nothing was changed", file=sys.stderr)
        return 1
    bars.close()
    print(f"imported: {report.summary()}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.hierarchy.exporter import export_files

    settings = _settings()
    report = export_files(_engine(settings), Path(args.out), fmt=args.format, root_code=args.root,
                          masked=args.masked)
    print(f"exported {report.nodes} nodes, {report.members} members, {report.categories} "
          f"categories to {', '.join(str(f) for f in report.files)}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from core.clock import SystemClock
    from core.media.store import MediaStore
    from core.purge import parse_age, purge

    age = parse_age(args.older_than)  # InvalidInput: a clear message and exit code 2
    settings = _settings()
    report = purge(_engine(settings), now=SystemClock().now(), older_than=age,
                   media=MediaStore(Path(settings.media_dir)), dry_run=args.dry_run)
    print(report.summary())
    return 0


def cmd_rollup(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from core.clock import SystemClock
    from core.rollup.refresh import refresh, request_rebuild

    settings = _settings()
    engine = _engine(settings)
    if args.rebuild:
        request_rebuild(engine)
    r = refresh(engine, clock=SystemClock(), tz=ZoneInfo(settings.timezone))
    what = "rebuilt" if r.rebuilt else f"refreshed from {r.marks} marks:"
    print(f"rollups {what} {r.villages} villages, {r.village_days} village-days")
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    from core.db import current_revision

    settings = _settings()
    print(f"schema at revision {current_revision(_engine(settings))}")
    return 0


def _serve(settings, *, host: str | None, port: int | None,  # type: ignore[no-untyped-def]
           polling: bool = False) -> int:
    import uvicorn

    from webhooks.app import create_app

    if polling and settings.telegram_bot_token is None:
        raise SystemExit("linzhang serve --polling: TELEGRAM_BOT_TOKEN is not set")
    app = create_app(settings, polling=polling)
    # log_config=None: uvicorn's loggers propagate to our root handler (format, redaction).
    uvicorn.run(app, host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level.lower(), log_config=None, **http_options(settings))
    return 0


# Request line and headers at most this big (h11 answers 431 past it): callbacks, forms and
# cookies fit in a fraction of it.
MAX_HEADER_BYTES = 16 * 1024


def http_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's connection limits from the settings (the body limits are the app's own)."""
    return {"timeout_keep_alive": settings.http_keepalive_timeout,
            "limit_concurrency": settings.http_limit_concurrency,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


def _listening(args: argparse.Namespace) -> dict[str, object]:
    """--host/--port as settings, so that links the bot sends name the address served."""
    return {k: v for k, v in (("host", args.host), ("port", args.port)) if v}


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(**_listening(args))
    if args.workers > 1:
        return _serve_workers(settings, host=args.host, port=args.port, workers=args.workers,
                              polling=args.polling)
    return _serve(settings, host=args.host, port=args.port, polling=args.polling)


def _serve_workers(settings: Settings, *, host: str | None, port: int | None,
                   workers: int, polling: bool) -> int:
    """N uvicorn worker processes on one PostgreSQL, each taking webhooks (core/leader.py)."""
    import uvicorn

    if settings.is_sqlite:
        raise SystemExit(
            f"linzhang serve --workers {workers}: SQLite is the single-process embedded"
            " database; run one worker, or set DATABASE_URL=postgresql+psycopg://… for several")
    if polling:
        raise SystemExit("linzhang serve --polling: getUpdates needs one process; use a webhook"
                         " with --workers")
    _engine(settings).dispose()  # migrate once here, not in N workers at the same moment
    import os

    # Each worker reads its settings from the environment: the address served goes with them.
    os.environ.update({"HOST": settings.host, "PORT": str(settings.port)})
    # log_config=None: each worker's uvicorn loggers go through app_factory's setup (format,
    # redaction), as in one process.
    uvicorn.run("linzhang.cli:app_factory", factory=True, workers=workers,
                host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level.lower(), log_config=None, **http_options(settings))
    return 0


def app_factory() -> FastAPI:
    """The app of one worker process (`uvicorn --factory`): settings from the environment."""
    from webhooks.app import create_app

    settings = _settings()
    setup_logging(settings)  # a spawned worker process starts with no logging set up
    return create_app(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot import notify
    from core.db import make_engine, migrate

    notify.install()
    from core.hierarchy.importer import import_files

    db = Path(args.db).resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    from pydantic import ValidationError

    from core.demo_seed import demo_settings

    try:
        settings = demo_settings(database_url=f"sqlite:///{db}", deadline=args.deadline,
                                 **_listening(args))
    except ValidationError as exc:
        raise SystemExit(f"linzhang: bad setting: {exc}") from None
    engine = make_engine(settings.database_url)
    migrate(engine)
    report = import_files(engine, [*sorted(DEMO_DIR.glob("*.csv")),
                                   DEMO_DIR / "boundaries.geojson"])
    from core.demo_seed import seed

    seeded = seed(engine, settings=settings)
    links = _demo_links(engine, settings)
    engine.dispose()
    print(f"demo city imported ({report.summary()}) into {db}")
    print("seeded cases: " + ", ".join(f"{k} {v}" for k, v in seeded.items()))
    print(f"deadlines shortened to {args.deadline} so escalation shows within minutes")
    print(f"linzhang demo: open {settings.own_url}/ in a browser")
    print("dashboard sign-in links (each works once, for 12 hours; the login page offers more):")
    for line in links:
        print(f"  {line}")
    print(f"a password for the dashboard: linzhang set-password --db {args.db} PHONE")
    if args.no_serve:
        return 0
    return _serve(settings, host=settings.host, port=settings.port)


def _demo_links(engine: Any, settings: Settings) -> list[str]:
    """One-time dashboard links for the demo's 书记, town admin and district admin."""
    from datetime import timedelta

    from core.accounts import issue_login_token
    from core.clock import SystemClock
    from core.db import write_session
    from core.demo_seed import sign_ins

    with write_session(engine) as s:
        return [f"{who.label} {who.name}: {settings.own_url}/login/"
                + issue_login_token(s, person_id=who.person_id, now=SystemClock().now(),
                                    ttl=timedelta(hours=12))
                for who in sign_ins(s.connection())]


def cmd_set_password(args: argparse.Namespace) -> int:
    import getpass

    from core.accounts import person_for_phone, set_password
    from core.clock import SystemClock
    from core.db import write_session

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("新密码 / new password: ")
        if password != getpass.getpass("再输一次 / again: "):
            print("linzhang set-password: the two passwords differ", file=sys.stderr)
            return 1
    # --db: the SQLite file `linzhang demo --db` made; otherwise DATABASE_URL, as `serve` reads.
    db = {"database_url": f"sqlite:///{Path(args.db).resolve()}"} if args.db else {}
    if args.db and not Path(args.db).is_file():
        print(f"linzhang set-password: no database file {args.db}", file=sys.stderr)
        return 1
    engine = _engine(_settings(**db))
    with write_session(engine) as s:
        pid = person_for_phone(s, phone=args.phone)
        set_password(s, person_id=pid, password=password, now=SystemClock().now(), by=None)
    print(f"dashboard password set for {args.phone}")
    return 0


def cmd_wechat_menu(args: argparse.Namespace) -> int:
    from bot.handlers.wechat.transport import MENU, WeChatTransport
    from core.clock import SystemClock

    settings = _settings()
    if not (settings.wechat_app_id and settings.wechat_app_secret):
        print("linzhang wechat-menu: set WECHAT_APP_ID and WECHAT_APP_SECRET", file=sys.stderr)
        return 1
    engine = _engine(settings)  # the access token is cached in (and shared through) the db
    WeChatTransport(engine=engine, settings=settings, clock=SystemClock()).create_menu()
    engine.dispose()
    print("公众号菜单已创建: " + " / ".join(b["name"] for b in MENU["button"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="linzhang", description="邻长制 chat-first front door")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the server (webhooks, web chat, dashboard, scheduler)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int, default=1,
                   help="worker processes (PostgreSQL only; each takes webhooks)")
    s.add_argument("--polling", action="store_true",
                   help="fetch Telegram updates with getUpdates (no public HTTPS address needed)")
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="fresh SQLite database with the demo city, then serve")
    d.add_argument("--db", default="linzhang-demo.db")
    d.add_argument("--deadline", default="2m", help="reply deadline for the demo (default 2m)")
    d.add_argument("--host")
    d.add_argument("--port", type=int)
    d.add_argument("--no-serve", action="store_true",
                   help="make the database and print the sign-in links, then stop")
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("migrate", help="bring the database schema up to date")
    m.set_defaults(func=cmd_migrate)

    i = sub.add_parser("import", help="import nodes/members/categories CSV or XLSX files")
    i.add_argument("files", nargs="+")
    i.add_argument("--max-errors", type=int, default=1000, help="bad rows to list at most")
    i.set_defaults(func=cmd_import)

    e = sub.add_parser("export", help="write the hierarchy back as CSV files or a workbook")
    e.add_argument("--out", default="export", help="folder (csv) or .xlsx path")
    e.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    e.add_argument("--root", help="only this node's subtree (a node code)")
    e.add_argument("--masked", action="store_true",
                   help="hide phones and addresses (a roster for a village; cannot be imported)")
    e.set_defaults(func=cmd_export)

    pg = sub.add_parser("purge", help="anonymise cases closed long ago and old chat logs")
    pg.add_argument("--older-than", required=True, metavar="AGE",
                    help="cases that ended before this age: 365d, 90d, 52w")
    pg.add_argument("--dry-run", action="store_true", help="print the counts, change nothing")
    pg.set_defaults(func=cmd_purge)

    ro = sub.add_parser("rollup", help="bring the town/district figure rollups up to date")
    ro.add_argument("--rebuild", action="store_true",
                    help="recompute every rollup from the cases (after a bulk load)")
    ro.set_defaults(func=cmd_rollup)

    pw = sub.add_parser("set-password", help="set a dashboard password (书记 or admin)")
    pw.add_argument("phone")
    pw.add_argument("--db", help="a SQLite file, such as linzhang demo's linzhang-demo.db"
                    " (default: DATABASE_URL)")
    pw.add_argument("--password-stdin", action="store_true",
                    help="read the password from one line of standard input")
    pw.set_defaults(func=cmd_set_password)

    wm = sub.add_parser("wechat-menu", help="create the Official Account menu (我要反映, 我的诉求)")
    wm.set_defaults(func=cmd_wechat_menu)

    from linzhang import cli_open311

    cli_open311.add_parser(sub)
    return p


def setup_logging(settings: Settings, *, verbose: bool = False) -> None:
    """LOG_FORMAT text or json on stderr, LOG_LEVEL (-v: debug), the settings' secrets
    redacted from every line (core/logs.py)."""
    from core.logs import configure_logging, secrets_of

    configure_logging(level=settings.log_level, fmt=settings.log_format,
                      secrets=secrets_of(settings), verbose=verbose, force=False,
                      personal_data=settings.log_personal_data)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(_settings(), verbose=args.verbose)
    try:
        return int(args.func(args))
    except DomainError as exc:
        print(f"linzhang {args.command}: {sentence(exc, 'en')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:  # in-process (tests, a shell), a command leaves no pooled connection behind
        while _OPEN:
            _OPEN.pop().dispose()  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
