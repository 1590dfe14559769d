"""Store-level outcomes that callers turn into protocol replies."""

from messenger.wire.errors import ServiceUnavailable


class StoreError(Exception):
    """Base of the store's expected failures."""


class Duplicate(StoreError):
    """A unique value is taken; ``field`` names which one."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already exists")
        self.field = field


class InvalidCode(StoreError):
    """A premium code that does not exist or was already used."""


class Missing(StoreError):
    """The row to change does not exist."""


class LastAdmin(StoreError):
    """The change would leave the deployment without an administrator."""


class Unavailable(StoreError, ServiceUnavailable):
    """The database cannot be reached or did not answer in time: JIM 503 with
    ``retry_after``, as it is (a `ServiceUnavailable`, like `store.bounded`'s refusal).

    Whether a write that failed this way was committed is unknown: it failed before or
    during its COMMIT. Requests that are idempotent by their id (messages, broadcasts)
    may simply be sent again.
    """

    def __init__(self, message: str, retry_after: float = 2.0) -> None:
        ServiceUnavailable.__init__(self, message, retry_after)


class NotAdmin(StoreError):
    """The acting account is not (or no longer) an administrator."""


class Locked(StoreError):
    """The account is locked (``state`` says how and until when)."""

    def __init__(self, state: object) -> None:
        super().__init__("account locked")
        self.state = state


class Revoked(StoreError):
    """The resume token was revoked (or never existed)."""
