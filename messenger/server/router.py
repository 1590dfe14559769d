"""Who is online on which connection, and the one way pushes reach them.

The router alone knows which session holds which user. Handlers, presence and calls ask
it to push, to end a session or to refresh one; none of them writes to a connection. A
multi-node deployment replaces this class with one that fans out over a message bus,
without touching the handlers (DESIGN.md section 7).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from messenger.wire import codes, jim

if TYPE_CHECKING:
    from messenger.server.session import Session


class Router:
    """One live session per user id."""

    def __init__(self, clock: Any = None) -> None:
        self._sessions: dict[int, Session] = {}
        self._clock = clock

    def attach(self, user_id: int, session: Session) -> bool:
        """Make ``session`` the user's live session; False if another one already is."""
        current = self._sessions.get(user_id)
        if current is not None and current is not session:
            return False
        self._sessions[user_id] = session
        return True

    def detach(self, user_id: int, session: Session) -> None:
        if self._sessions.get(user_id) is session:
            del self._sessions[user_id]

    def login_wait(self) -> float | None:
        """Seconds to wait before logins can be accepted, or None (now). One node: now."""
        return None

    def session(self, user_id: int) -> Session | None:
        return self._sessions.get(user_id)

    def is_online(self, user_id: int) -> bool:
        return user_id in self._sessions

    def online_count(self) -> int:
        return len(self._sessions)

    def user_ids(self) -> list[int]:
        return list(self._sessions)

    def push(self, user_id: int, message: dict[str, Any]) -> bool:
        """Push one message to a user if online; True if it was handed to a connection."""
        session = self._sessions.get(user_id)
        if session is None:
            return False
        session.push_encoded(jim.encode(message))
        return True

    def push_encoded(self, user_id: int, payload: bytes) -> bool:
        """Push an encoded JIM object to a user if online (the message path)."""
        session = self._sessions.get(user_id)
        if session is None:
            return False
        session.push_encoded(payload)
        return True

    def push_many(self, user_ids: Iterable[int], message: dict[str, Any]) -> int:
        """Push the same message to several users (encoded once); returns how many got it."""
        payload: bytes | None = None
        count = 0
        for user_id in user_ids:
            session = self._sessions.get(user_id)
            if session is None:
                continue
            if payload is None:
                payload = jim.encode(message)
            session.push_encoded(payload)
            count += 1
        return count

    def push_all(self, message: dict[str, Any], except_id: int | None = None) -> int:
        """Push to every online user (but ``except_id``); returns how many got it."""
        return self.push_many([user_id for user_id in self._sessions if user_id != except_id],
                              message)

    def end_session(self, user_id: int, why: str) -> bool:
        """Tell a user's live session ``why`` and close it (an account locked or deleted)."""
        session = self._sessions.get(user_id)
        if session is None:
            return False
        session.push({"action": "notice", "level": codes.IMPORTANT_NOTICE, "message": why,
                      "time": self._clock.seconds() if self._clock else 0.0})
        session.close()
        return True

    def sessions(self) -> list[Session]:
        """Every live session (a snapshot: safe to close sessions while iterating)."""
        return list(self._sessions.values())
