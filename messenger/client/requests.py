"""Request matching on one connection: each request waits for the reply of its ``id``.

`PendingRequests` hands out a Deferred per request and settles it from the reply with
the same ``id``: a success reply (code below 400) fires it with the reply, an error reply
fails it with the typed error of its code and action (`messenger.client.failures`). When
the connection ends, every request still waiting fails with `NotConnected`.

At most ``limit`` requests wait at once: a server that stops answering cannot make the
client keep an unbounded table of them (the next request fails at once with
`TooManyPending`). Pure bookkeeping: the protocol sends and routes the frames.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer

from messenger.client.errors import NotConnected, TooManyPending
from messenger.client.failures import reply_error

Reply = defer.Deferred[dict[str, Any]]

DEFAULT_LIMIT = 1024


def new_request_id() -> str:
    """128 random bits as 32 lowercase hex digits."""
    return os.urandom(16).hex()


class PendingRequests:
    __slots__ = ("limit", "_waiting")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._waiting: dict[str, tuple[str, Reply]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, action: str, request_id: str | None = None) -> tuple[str, Reply]:
        """Register a request; returns its id (``request_id`` or a new one) and the
        Deferred of its reply. Raises `TooManyPending` past the limit, `ValueError` for an
        id that is already waiting."""
        if len(self._waiting) >= self.limit:
            raise TooManyPending(f"{len(self._waiting)} requests are waiting for the"
                                 " server's answer; try again when it has answered")
        if request_id is None:
            request_id = new_request_id()
        elif request_id in self._waiting:
            raise ValueError("a request with this id is already pending")
        d: Reply = defer.Deferred()
        self._waiting[request_id] = (action, d)
        return request_id, d

    def forget(self, request_id: str) -> None:
        """Drop a request that could not be sent (its Deferred is failed by the caller)."""
        self._waiting.pop(request_id, None)

    def settle(self, reply: dict[str, Any]) -> bool:
        """Settle the request of the reply's ``id``; False when none is waiting for it."""
        request_id = reply.get("id")
        found = self._waiting.pop(request_id, None) if type(request_id) is str else None
        if found is None:
            return False
        action, d = found
        response = reply.get("response")
        if type(response) is int and response < 400:
            d.callback(reply)
        else:
            d.errback(reply_error(action, reply))
        return True

    def fail_all(self, reason: str) -> None:
        """The connection has ended: no reply can come."""
        waiting, self._waiting = self._waiting, {}
        for _, d in waiting.values():
            d.errback(NotConnected(reason))
