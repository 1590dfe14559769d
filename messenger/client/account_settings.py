"""Account settings from the client core: password, presence, read receipts.

A mixin of `core.MessengerClient`: a new password's token replaces the saved one, and the
presence is remembered for the next reconnect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer

Reply = defer.Deferred[dict[str, Any]]


class AccountSettingsMixin:
    """The settings part of `core.MessengerClient`'s public interface."""

    _service: Any
    _saved: Any
    _status: str
    address: str
    request: Callable[..., Reply]        # MessengerClient's

    def set_password(self, old_password: str, new_password: str) -> Reply:
        """Change the password. The server revokes every token of the account and gives
        this session a new one, which replaces the saved token."""
        d = self.request("set_password", {"old_password": old_password,
                                          "new_password": new_password})
        d.addCallback(self._password_changed)
        return d

    def set_presence(self, status: str) -> Reply:
        """``online`` or ``away``; remembered and restored after a reconnect."""
        self._status = status
        return self.request("presence", {"status": status})

    def set_read_receipts(self, enabled: bool) -> defer.Deferred[bool]:
        """Send read receipts (the default) or not; the server keeps the setting for the
        account. Fires with the setting now stored."""
        d = self.request("settings", {"read_receipts": enabled})
        d.addCallback(lambda reply: bool(reply["settings"]["read_receipts"]))
        return d

    def get_settings(self) -> Reply:
        """200; ``settings``: ``{"read_receipts": bool}``."""
        return self.request("settings")

    def _password_changed(self, reply: dict[str, Any]) -> dict[str, Any]:
        token, plan = reply.get("token"), self._service.plan
        if isinstance(token, str) and plan is not None and plan.resuming:
            plan.token = token
            if plan.remember:
                self._saved.remember_login(self.address, plan.account_name, token,
                                           expiry(reply))
        return reply


def expiry(reply: dict[str, Any]) -> float | None:
    expires = reply.get("token_expires")
    return float(expires) if isinstance(expires, (int, float)) else None
