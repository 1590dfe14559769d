"""The dispatch table: action name -> handler, the states it is allowed in, its weight.

Each handler module exports ``ROUTES``, a dict from action name to `Route`; this module
merges them into one table that the request pipeline (`messenger.server.requests`)
consults for every request. A handler is called as ``handler(session, request)`` after
the request passed validation and returns its outcome (see `messenger.server.replies`)
or a Deferred firing with it, or raises a `MessengerError`.

A *heavy* route reads pages, searches or hashes a password: a connection may have only a
few of those in flight at once (`requests.MAX_HEAVY`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from messenger.server.states import State

Handler = Callable[[Any, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    states: frozenset[State]
    heavy: bool = False


def _build() -> dict[str, Route]:
    from messenger.server.handlers import (
        accounts,
        admin,
        blocks,
        broadcasts,
        calls,
        contacts,
        conversations,
        edits,
        files,
        groups,
        messages,
        receipts,
        search,
        typing,
    )
    from messenger.wire import jim
    table: dict[str, Route] = {}
    for module in (accounts, contacts, blocks, messages, broadcasts, admin, calls, groups,
                   conversations, files, receipts, typing, edits, search):
        for action, route in module.ROUTES.items():
            if action in table:
                raise RuntimeError(f"action {action!r} is routed twice")
            if action not in jim.ACTIONS:
                raise RuntimeError(f"action {action!r} has no schema in wire.jim")
            if not isinstance(route, Route):
                handler, states, *rest = route
                route = Route(handler, states, *rest)
            table[action] = route
    return table


ROUTES: dict[str, Route] = _build()
