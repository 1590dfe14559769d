"""The server's rate limits, built from LimitsConfig: per host, per network, per connection,
per account.

Hosts and networks are `netkeys`: an IPv4 address and its /24, an IPv6 /64 and its /48.
A limit of 0 turns that limit off (no limiter is built, nothing is counted).
"""

from __future__ import annotations

from typing import Any

from messenger.server.config import LimitsConfig
from messenger.server.netkeys import keys_of
from messenger.server.ratelimit import Bucket, RateLimiter
from messenger.store.lockout import LockoutPolicy

_ALLOWED = (True, 0.0)
DAY = 24 * 3600.0


def lockout_policy(config: LimitsConfig) -> LockoutPolicy:
    """``lockout_failures`` failed logins within ``lockout_window`` s lock for
    ``lockout_duration`` s."""
    return LockoutPolicy(config.lockout_failures, config.lockout_window,
                         config.lockout_duration)


class Limits:
    def __init__(self, config: LimitsConfig, clock: Any) -> None:
        self.config = config
        self._logins = (RateLimiter.per_minute(config.logins_per_minute, clock)
                        if config.logins_per_minute > 0 else None)
        self._network_logins = (
            RateLimiter.per_minute(config.logins_per_minute_network, clock)
            if config.logins_per_minute_network > 0 else None)
        quota = config.stored_bytes_per_day
        self._stored = RateLimiter(quota / DAY, quota, clock) if quota > 0 else None

    def allow_login(self, address: str) -> tuple[bool, float]:
        """May this host make one more login attempt? (allowed, retry_after).

        Charged to the host and to its network; a refusal by either consumes nothing."""
        host, network = keys_of(address)
        limiter = self._logins
        if limiter is not None:
            allowed, retry = limiter.check(host, update=False)
            if not allowed:
                return False, retry
        network_limiter = self._network_logins
        if network_limiter is not None:
            allowed, retry = network_limiter.check(network)
            if not allowed:
                return False, retry
        if limiter is not None:
            limiter.check(host)
        return _ALLOWED

    def allow_storing(self, user_id: int, size: int) -> tuple[bool, float]:
        """May this account store ``size`` more bytes of messages today?"""
        stored = self._stored
        if stored is None:
            return _ALLOWED
        return stored.check(user_id, min(size, stored.burst))

    def request_bucket(self) -> Bucket | None:
        """A fresh per-connection request bucket, or None when requests are not limited."""
        if self.config.requests_per_second <= 0 or self.config.request_burst <= 0:
            return None
        return Bucket(self.config.requests_per_second, self.config.request_burst)

    def bad_request_bucket(self) -> Bucket | None:
        """A fresh per-connection allowance of bad requests (past it: closed)."""
        if self.config.bad_requests_per_second <= 0 or self.config.bad_request_burst <= 0:
            return None
        return Bucket(self.config.bad_requests_per_second, self.config.bad_request_burst)

    def crypto_bucket(self) -> Bucket | None:
        """A fresh per-connection budget of RSA private-key operations (rsa-oaep)."""
        if self.config.crypto_ops_per_second <= 0 or self.config.crypto_burst <= 0:
            return None
        return Bucket(self.config.crypto_ops_per_second, self.config.crypto_burst)

    def forget_account(self, user_id: int) -> None:
        """An account was deleted: drop what is counted for it."""
        if self._stored is not None:
            self._stored.reset(user_id)

    def prune(self) -> None:
        for limiter in (self._logins, self._network_logins, self._stored):
            if limiter is not None:
                limiter.prune()
