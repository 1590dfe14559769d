"""Keepalive for logged-in sessions: probe a silent client, drop one that does not answer.

The keepalive sweep (`ServerContext.sweep`, a few times per probe interval) calls
`check_alive` on every connection. A session from which nothing arrived for
``--probe-interval`` seconds gets a ``probe`` request; any frame from the client proves it
is there, and the probe's answer is the smallest such frame. No answer within
``--probe-timeout`` seconds: the connection is dropped (it is half open, or the client
hangs), the user goes offline, and a login held back by it (409) can succeed.
"""

from __future__ import annotations

import os
from typing import Any

from messenger.server.states import State


class KeepaliveMixin:
    """The keepalive part of `messenger.server.protocol.ServerProtocol`."""

    state: State
    active: bool
    idle_since: float
    probe_id: str | None
    probe_sent: float
    ctx: Any
    log: Any
    transport: Any

    def probe(self, now: float) -> None:
        """Ask the client whether it is still there; any frame from now on says yes."""
        self.probe_id = os.urandom(16).hex()
        self.probe_sent = now
        self.active = False
        self.push({"action": "probe", "id": self.probe_id, "time": now})

    def on_client_reply(self, reply: dict[str, Any]) -> None:
        """A reply from the client: the answer to our probe."""
        if self.probe_id is not None and reply.get("id") == self.probe_id:
            self.probe_id = None

    def check_alive(self, now: float) -> None:
        """Called by the sweeper: probe a silent session, drop one that does not answer."""
        if self.state is not State.READY:
            return
        if self.active:
            # A frame since the last sweep (or since the probe): the client is there.
            self.active = False
            self.idle_since = now
            self.probe_id = None
            return
        if self.probe_id is not None:
            if now - self.probe_sent >= self.ctx.config.probe_timeout:
                self.log.info("Dropping {account} at {address}: no answer to probe",
                              account=self.account_name, address=self.address)
                self._enter(State.CLOSED)
                self.transport.abortConnection()
        elif now - self.idle_since >= self.ctx.config.probe_interval:
            self.probe(now)
