"""`linzhang open311 key create --name X --scope NODE_CODE | revoke --name X | list` and
`linzhang open311 hook set --client X --url URL [--scope-wide] | remove --client X | list`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.flows.refusals import sentence
from core.errors import DomainError


def cmd_open311_key(args: argparse.Namespace) -> int:
    from core.clock import SystemClock
    from core.db import session_scope, write_session
    from core.open311 import keys
    from linzhang.cli import _engine, _settings

    engine = _engine(_settings())
    try:
        if args.action == "list":
            with session_scope(engine) as s:
                for row in keys.list_keys(s):
                    state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                    print(f"{row.name}\t{row.prefix}…\t{row.scope_code}\t"
                          f"{row.created_at:%Y-%m-%d}\t{state}")
            return 0
        with write_session(engine) as s:
            if args.action == "revoke":
                keys.revoke_key(s, name=args.name, now=SystemClock().now())
                print(f"open311 key of {args.name} revoked")
                return 0
            key = keys.create_key(s, name=args.name, scope_code=args.scope,
                                  now=SystemClock().now())
    except DomainError as exc:
        # A bad node code or name is the operator's typo: a plain error, exit 1.
        print(f"linzhang open311 key {args.action}: {sentence(exc, 'en')}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(key)  # shown once: only its hash is kept
    print(f"open311 key for {args.name} (scope {args.scope}); keep it, it is not shown again",
          file=sys.stderr)
    return 0


def cmd_open311_hook(args: argparse.Namespace) -> int:
    from core.clock import SystemClock
    from core.db import session_scope, write_session
    from core.open311 import hooks
    from linzhang.cli import _engine, _settings

    engine = _engine(_settings())
    try:
        if args.action == "list":
            with session_scope(engine) as s:
                for row in hooks.list_hooks(s):
                    state = f"disabled: {row.disabled_why}" if row.disabled_why else "active"
                    reach = "scope-wide" if row.scope_wide else "own requests"
                    print(f"{row.client}\t{row.url}\t{reach}\t{row.created_at:%Y-%m-%d}\t"
                          f"{state}")
            return 0
        with write_session(engine) as s:
            if args.action == "remove":
                hooks.remove_hook(s, client=args.client, now=SystemClock().now())
                print(f"webhook of {args.client} removed")
                return 0
            secret = hooks.set_hook(s, client=args.client, url=args.url,
                                    scope_wide=args.scope_wide, now=SystemClock().now())
    except DomainError as exc:
        print(f"linzhang open311 hook {args.action}: {sentence(exc, 'en')}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(secret)  # shown once; the receiver verifies X-Linzhang-Signature with it
    print(f"webhook of {args.client} -> {args.url}; keep the secret, it is not shown again",
          file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    """The `open311` command under the main parser's subcommands."""
    o3 = sub.add_parser("open311", help="Open311 GeoReport v2 client systems")
    o3_sub = o3.add_subparsers(dest="open311_command", required=True)
    ok = o3_sub.add_parser("key", help="api_keys of client systems (12345 and others)")
    ok_sub = ok.add_subparsers(dest="action", required=True)
    kc = ok_sub.add_parser("create", help="make a client and print its key once")
    kc.add_argument("--name", required=True, help="the client system's name")
    kc.add_argument("--scope", required=True, metavar="NODE_CODE",
                    help="the subtree it files into and reads (a node code)")
    kr = ok_sub.add_parser("revoke", help="refuse a client's key from now on")
    kr.add_argument("--name", required=True)
    ok_sub.add_parser("list", help="every client, its key's first characters and scope")
    ok.set_defaults(func=cmd_open311_key)
    oh = o3_sub.add_parser("hook", help="status webhooks of client systems")
    oh_sub = oh.add_subparsers(dest="action", required=True)
    hs = oh_sub.add_parser("set", help="POST the client's case changes to a URL; prints the "
                                       "signing secret once")
    hs.add_argument("--client", required=True, help="the client system's name")
    hs.add_argument("--url", required=True, help="http:// or https:// URL of the receiver")
    hs.add_argument("--scope-wide", action="store_true",
                    help="every case in the client's subtree, not only the ones it filed")
    hr = oh_sub.add_parser("remove", help="stop the client's webhook")
    hr.add_argument("--client", required=True)
    oh_sub.add_parser("list", help="every webhook (never its secret)")
    oh.set_defaults(func=cmd_open311_hook)
