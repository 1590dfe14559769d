"""Refusals logged once per interval with a count, so a flood cannot fill the disk.

A refused connection, a failed handshake, a replayed request id: each is worth knowing,
but an attacker can cause thousands a second, and one log line each would bury the real
events and fill the disk. `RefusalLog.note` logs the first refusal of a kind from a host
at once, then counts; once per interval it logs one summary line per kind with how many
more there were and from how many hosts (the keepalive sweep calls `flush_if_due`, so a
flood's summary comes when its interval ends, not only at the next refusal).

Its sibling `messenger.server.logs.throttle.ThrottledLogger` throttles one line per kind
(the mailer's events); this one also names each offending host once per interval, which
is what an operator looking at an attack wants to see.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from messenger.server.netkeys import host_key

INTERVAL = 60.0


class RefusalLog:
    log = Logger()

    def __init__(self, clock: Any, interval: float = INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._seen: set[tuple[str, str]] = set()       # (kind, host) logged this interval
        self._counts: dict[str, int] = {}               # kind -> refusals not logged
        self._hosts: dict[str, set[str]] = {}
        self._since = clock.seconds()
        self.total: dict[str, int] = {}

    def note(self, kind: str, address: str) -> None:
        """One refusal of ``kind`` for the peer at ``address``."""
        self.total[kind] = self.total.get(kind, 0) + 1
        now = self._clock.seconds()
        if now - self._since >= self._interval:
            self.flush(now)
        host = host_key(address)
        if (kind, host) not in self._seen and len(self._seen) < 1000:
            self._seen.add((kind, host))
            self.log.info("Refused {address}: {kind}", address=address, kind=kind)
            return
        self._counts[kind] = self._counts.get(kind, 0) + 1
        hosts = self._hosts.setdefault(kind, set())
        if len(hosts) < 100_000:
            hosts.add(host)

    def flush_if_due(self, now: float) -> None:
        """End the interval if it is over (called by the keepalive sweep)."""
        if now - self._since >= self._interval:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Log the summary of the interval that ends now and start a new one."""
        for kind, count in sorted(self._counts.items()):
            self.log.warn("Refused {count} more time(s) in the last {seconds:.0f} s:"
                          " {kind} (from {hosts} host(s))", count=count, kind=kind,
                          hosts=len(self._hosts.get(kind, ())),
                          seconds=(now or self._clock.seconds()) - self._since)
        self._seen.clear()
        self._counts.clear()
        self._hosts.clear()
        self._since = self._clock.seconds() if now is None else now
