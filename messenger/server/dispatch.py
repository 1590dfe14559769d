"""The dispatch table: action name -> handler and the states it is allowed in.

Each handler module exports ``ROUTES``; this module merges them into one table that the
connection protocol consults for every request. A handler is called as
``handler(session, request)`` after the request passed validation and returns a reply
body (a dict with ``response``), a Deferred firing with one, or None when it replies
itself (the message path acknowledges only after the commit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from messenger.server.handlers import accounts, admin, broadcasts, calls, contacts, messages
from messenger.server.states import State
from messenger.wire import jim

Handler = Callable[[Any, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    states: frozenset[State]


def _build() -> dict[str, Route]:
    table: dict[str, Route] = {}
    for module in (accounts, contacts, messages, broadcasts, admin, calls):
        for action, (handler, states) in module.ROUTES.items():
            if action in table:
                raise RuntimeError(f"action {action!r} is routed twice")
            if action not in jim.ACTIONS:
                raise RuntimeError(f"action {action!r} has no schema in wire.jim")
            table[action] = Route(handler, states)
    return table


ROUTES: dict[str, Route] = _build()
