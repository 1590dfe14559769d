"""The server's rate limits, built from LimitsConfig: per address and per connection.

A limit of 0 turns that limit off (no limiter is built, nothing is counted).
"""

from __future__ import annotations

from typing import Any

from messenger.server.config import LimitsConfig
from messenger.server.ratelimit import Bucket, RateLimiter

_ALLOWED = (True, 0.0)


class Limits:
    def __init__(self, config: LimitsConfig, clock: Any) -> None:
        self.config = config
        self._connections = (RateLimiter.per_minute(config.connections_per_minute, clock)
                             if config.connections_per_minute > 0 else None)
        self._logins = (RateLimiter.per_minute(config.logins_per_minute, clock)
                        if config.logins_per_minute > 0 else None)

    def allow_connection(self, address: str) -> tuple[bool, float]:
        """May this address open one more connection? (allowed, retry_after)."""
        if self._connections is None:
            return _ALLOWED
        return self._connections.check(address)

    def allow_login(self, address: str) -> tuple[bool, float]:
        """May this address make one more login attempt? (allowed, retry_after)."""
        if self._logins is None:
            return _ALLOWED
        return self._logins.check(address)

    def request_bucket(self) -> Bucket | None:
        """A fresh per-connection request bucket, or None when requests are not limited."""
        if self.config.requests_per_second <= 0 or self.config.request_burst <= 0:
            return None
        return Bucket(self.config.requests_per_second, self.config.request_burst)

    def prune(self) -> None:
        for limiter in (self._connections, self._logins):
            if limiter is not None:
                limiter.prune()
