"""The states of a server connection and the transitions between them (one table)."""

from __future__ import annotations

import enum


class State(enum.Enum):
    CHALLENGE = "challenge"          # HMAC challenge sent, waiting for the response
    KEYX = "keyx"                    # waiting for the client's key exchange
    UNAUTHENTICATED = "unauthenticated"  # encrypted; register / authenticate / resume
    READY = "ready"                  # logged in
    CLOSED = "closed"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CHALLENGE: frozenset({State.KEYX, State.CLOSED}),
    State.KEYX: frozenset({State.UNAUTHENTICATED, State.CLOSED}),
    State.UNAUTHENTICATED: frozenset({State.READY, State.CLOSED}),
    State.READY: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}

BEFORE_LOGIN = frozenset({State.UNAUTHENTICATED})
LOGGED_IN = frozenset({State.READY})
ANY_ENCRYPTED = frozenset({State.UNAUTHENTICATED, State.READY})
