"""The one outbox dispatcher: which rows to claim, whom they reach, and what each answer means.

Lives in `bot/`, not in `core/`: it drives the platform transports (`bot/handlers/*`), which
core must not know; and above the handlers, so no handler imports another. Core keeps the
outbox contract (claim, leases, settle: core/outbox.py, core/deliveries.py) and the record of
who cannot be reached (core/cases/unreachable.py); this package applies it to the platforms
the deployment runs:

- rows.py: an outbox row as the dispatcher holds it (one type for every platform), and which
  kinds are case cards;
- recipients.py: where a row goes on a platform (person → reachable identities, bound chat,
  raw address) and which platforms this deployment runs;
- transport.py: what the dispatcher and a platform's transport say to each other (`Work`,
  the outcomes, the `Ledger` of what a platform accepted, the `Transport` protocol);
- loop.py: the one loop: claim → per-recipient queues → transport → settle, with leases;
- reach.py: someone became unreachable (on every configured platform), or wrote again;
- runtime.py: one loop per configured transport in the server.

Transports: bot/handlers/telegram/transport.py, wechat/transport.py, wecom/transport.py,
web/transport.py.
"""
