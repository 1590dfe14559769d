"""How the next connection logs in: a `LoginPlan`.

A plan is made by the user's intent (`MessengerClient.login`/``register``: a password,
for one attempt) or from a saved resume token (``start``); after a password login it is
replaced by a resume plan with the token the server gave, so reconnecting never needs the
password again. The password lives in the plan only until its attempt ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RESUME = "resume"
AUTHENTICATE = "authenticate"
REGISTER = "register"


@dataclass
class LoginPlan:
    kind: str                     # RESUME, AUTHENTICATE or REGISTER (the JIM action)
    account_name: str
    password: str | None = None   # authenticate/register only; dropped after the attempt
    email: str | None = None
    premium_code: str | None = None
    token: str | None = None      # resume only
    remember: bool = True         # keep the token on disk
    explicit: bool = False        # a user is waiting on this very attempt

    @property
    def resuming(self) -> bool:
        return self.kind == RESUME

    def request(self) -> tuple[str, dict[str, Any]]:
        """The login request: its action and fields."""
        if self.kind == RESUME:
            return RESUME, {"user": {"account_name": self.account_name}, "token": self.token}
        user: dict[str, Any] = {"account_name": self.account_name, "password": self.password}
        fields: dict[str, Any] = {"user": user, "remember": True}
        if self.kind == REGISTER:
            user["email"] = self.email
            if self.premium_code:
                fields["premium_code"] = self.premium_code
        return self.kind, fields

    def resumed(self, account_name: str, token: str | None) -> LoginPlan:
        """The plan for every later connection of a session this plan logged in."""
        return LoginPlan(RESUME, account_name, token=token, remember=self.remember)
