"""What a handler sees of the connection that sent a request: the typed `Session`.

Handlers take ``(session, request)``. They read who is asking (``account``, ``address``),
keep the few per-session facts that outlive one request (presence status, contact ids,
the resume token's hash), reach the server's shared components through ``ctx``, and end
the session with ``close``. They never write to it: a handler returns its reply (see
`messenger.server.replies`) and pushes to users through the router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from messenger.server.context import ServerContext
    from messenger.server.states import State


@dataclass(slots=True)
class Account:
    """The logged-in user of a session (flags refreshed when an admin changes them)."""

    id: int
    name: str
    email: str
    is_admin: bool
    is_premium: bool


class Session(Protocol):
    """One client connection, as handlers, the router and presence use it."""

    ctx: ServerContext
    state: State
    account: Account | None
    address: str
    status: str
    contact_ids: list[int]
    token_hash: str | None
    login_request: str | None
    probe_id: str | None
    log: Any

    @property
    def account_name(self) -> str | None: ...

    def logged_in(self, account: Account) -> None:
        """This session now owns ``account`` (the accounts handler calls it once)."""

    def push(self, message: dict[str, Any]) -> None:
        """Send a server push (the router calls this; handlers use the router)."""

    def push_encoded(self, payload: bytes) -> None:
        """Send an already encoded JIM object."""

    def probe(self, now: float) -> None:
        """Ask the client whether it is still there."""

    def close(self) -> None:
        """Flush what was written, then close."""
