"""Which new connections the server accepts: rates and caps per host, per network, in total.

Every open connection holds a file descriptor and some memory, and every handshake costs
an RSA signature, so who may connect is decided first, before any of that is spent:

* a rate per host and per network (`netkeys`: an IPv4 address and its /24, an IPv6 /64
  and its /48), as leaky buckets;
* a cap on open connections per host, per network and in total; the total is kept below
  the process's open-file limit with a reserve for the database, logs and listeners
  (`total_cap_for`);
* connections that have not logged in are cheap to drop: when they fill their share of
  the total, the oldest of them is closed to make room, so idle handshaken connections
  held by an attacker cannot lock real users out. Logged-in sessions are never evicted.
"""

from __future__ import annotations

import resource
from collections import OrderedDict
from typing import Any

from twisted.logger import Logger

from messenger.server.config import LimitsConfig
from messenger.server.netkeys import keys_of
from messenger.server.ratelimit import RateLimiter
from messenger.wire.errors import MessengerError, TooManyRequests

RESERVE_MIN = 64          # descriptors kept free for the database, logs, listeners, mail


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def total_cap_for(open_files: int) -> int:
    """How many client connections fit under ``open_files`` descriptors with a reserve."""
    return max(16, open_files - max(RESERVE_MIN, open_files // 10))


class Admission:
    log = Logger()

    def __init__(self, config: LimitsConfig, clock: Any, total_cap: int) -> None:
        self.config = config
        self.total_cap = total_cap
        self.prelogin_cap = max(8, total_cap // 2)
        self._host_rate = (RateLimiter.per_minute(config.connections_per_minute, clock)
                           if config.connections_per_minute > 0 else None)
        self._net_rate = (RateLimiter.per_minute(config.connections_per_minute_network, clock)
                          if config.connections_per_minute_network > 0 else None)
        self._per_host: dict[str, int] = {}
        self._per_net: dict[str, int] = {}
        self._keys: dict[Any, tuple[str, str]] = {}
        self._prelogin: OrderedDict[Any, None] = OrderedDict()
        self.evicted = 0

    @property
    def open(self) -> int:
        return len(self._keys)

    @property
    def prelogin(self) -> int:
        return len(self._prelogin)

    def admit(self, conn: Any) -> MessengerError | None:
        """Accept ``conn`` (and count it) or say why not."""
        host, net = keys_of(conn.address)
        config = self.config
        for limiter, key in ((self._host_rate, host), (self._net_rate, net)):
            if limiter is not None:
                allowed, retry = limiter.check(key)
                if not allowed:
                    return TooManyRequests("too many connections from your address", retry)
        if config.max_connections_per_host and \
                self._per_host.get(host, 0) >= config.max_connections_per_host:
            return TooManyRequests("too many open connections from your address", 60.0)
        if config.max_connections_per_network and \
                self._per_net.get(net, 0) >= config.max_connections_per_network:
            return TooManyRequests("too many open connections from your network", 60.0)
        if len(self._prelogin) >= self.prelogin_cap or len(self._keys) >= self.total_cap:
            if not self._evict_oldest():
                return TooManyRequests("the server is full; try again later", 30.0)
        self._keys[conn] = (host, net)
        self._per_host[host] = self._per_host.get(host, 0) + 1
        self._per_net[net] = self._per_net.get(net, 0) + 1
        self._prelogin[conn] = None
        return None

    def _evict_oldest(self) -> bool:
        """Close the oldest connection that has not logged in; False if there is none."""
        if not self._prelogin:
            return False
        oldest, _ = self._prelogin.popitem(last=False)
        self.evicted += 1
        oldest.close()
        return True

    def logged_in(self, conn: Any) -> None:
        self._prelogin.pop(conn, None)

    def gone(self, conn: Any) -> None:
        keys = self._keys.pop(conn, None)
        self._prelogin.pop(conn, None)
        if keys is None:
            return
        host, net = keys
        for counts, key in ((self._per_host, host), (self._per_net, net)):
            left = counts[key] - 1
            if left:
                counts[key] = left
            else:
                del counts[key]

    def prune(self) -> None:
        for limiter in (self._host_rate, self._net_rate):
            if limiter is not None:
                limiter.prune()
