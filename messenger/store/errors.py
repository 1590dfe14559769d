"""Store-level outcomes that callers turn into protocol replies."""


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


class NotAdmin(StoreError):
    """The acting account is not (or no longer) an administrator."""


class Locked(StoreError):
    """The account is locked (``state`` says how and until when)."""

    def __init__(self, state: object) -> None:
        super().__init__("account locked")
        self.state = state


class Revoked(StoreError):
    """The resume token was revoked (or never existed)."""
