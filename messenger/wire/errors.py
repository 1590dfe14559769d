"""The error hierarchy shared by server and client.

A `MessengerError` carries a JIM code and a readable message. The server turns one into
an error reply in exactly one place; the client core raises the same classes from error
replies, so both ends speak about failures in the same terms.
"""

from __future__ import annotations

from typing import Any

from messenger.wire import codes


class MessengerError(Exception):
    """A failure with a JIM code and a message meant for a person."""

    code: int = codes.SERVER_ERROR

    def __init__(self, message: str, code: int | None = None, /, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra

    def to_reply(self) -> dict[str, Any]:
        """The reply body (without id and time) that reports this error."""
        reply: dict[str, Any] = {"response": self.code, "error": self.message}
        reply.update(self.extra)
        return reply

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class BadRequest(MessengerError):
    code = codes.BAD_REQUEST


class NotAuthorised(MessengerError):
    code = codes.NOT_AUTHORISED


class WrongCredentials(MessengerError):
    code = codes.WRONG_CREDENTIALS


class Forbidden(MessengerError):
    code = codes.FORBIDDEN


class NotFound(MessengerError):
    code = codes.NOT_FOUND


class Conflict(MessengerError):
    code = codes.CONFLICT


class Gone(MessengerError):
    code = codes.GONE


class TooManyRequests(MessengerError):
    """Rate limited; ``retry_after`` (seconds) says when to try again."""

    code = codes.TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: float, /, **extra: Any) -> None:
        super().__init__(message, retry_after=round(retry_after, 3), **extra)
        self.retry_after = retry_after


class ServerError(MessengerError):
    code = codes.SERVER_ERROR


class ServiceUnavailable(MessengerError):
    """The server as a whole is overloaded or its store is down: nothing was done, and the
    same request may succeed later (``retry_after`` seconds, when the server can tell)."""

    code = codes.SERVICE_UNAVAILABLE

    def __init__(self, message: str, retry_after: float | None = None, /,
                 **extra: Any) -> None:
        if retry_after is not None:
            extra["retry_after"] = round(retry_after, 3)
        super().__init__(message, **extra)
        self.retry_after = retry_after


_BY_CODE: dict[int, type[MessengerError]] = {
    cls.code: cls
    for cls in (BadRequest, NotAuthorised, WrongCredentials, Forbidden, NotFound, Conflict,
                Gone, ServerError)
}


def error_from_reply(reply: dict[str, Any]) -> MessengerError:
    """Build the exception that an error reply describes (used by clients)."""
    raw_code = reply.get("response")
    code = raw_code if type(raw_code) is int else None
    message = reply.get("error")
    if not isinstance(message, str):
        message = f"error {raw_code}"
    extra = {k: v for k, v in reply.items()
             if k not in ("response", "error", "id", "time", "retry_after")}
    if code == codes.SERVICE_UNAVAILABLE:
        retry = reply.get("retry_after")
        return ServiceUnavailable(message, float(retry) if isinstance(retry, (int, float))
                                  else None, **extra)
    if code == codes.TOO_MANY_REQUESTS:
        retry = reply.get("retry_after")
        return TooManyRequests(message, float(retry) if isinstance(retry, (int, float)) else 1.0,
                               **extra)
    cls = _BY_CODE.get(code) if isinstance(code, int) else None
    if cls is None:
        return MessengerError(message, code if isinstance(code, int) else codes.SERVER_ERROR,
                              **extra)
    return cls(message, **extra)
