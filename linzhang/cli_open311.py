"""`linzhang open311 key create --name X --scope NODE_CODE | revoke --name X | list`."""

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
    o3.set_defaults(func=cmd_open311_key)
