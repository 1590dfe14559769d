"""The one place where the client core meets Qt: its events as Qt signals.

`ClientBridge` subscribes once to every observer kind of a `MessengerClient` and re-emits
each event record as a signal; `CallBridge` does the same for a `CallController`. The
windows connect to these signals and call the core's methods (attaching callbacks to
the Deferreds they return); they never subscribe to the core themselves. With
qt5reactor the reactor runs inside Qt's event loop, so the signals are emitted, and the
slots run, on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal

KINDS = ("state", "message", "message_status", "presence", "broadcast", "account",
         "notice", "call", "server_key", "group", "unread", "receipt", "typing",
         "transfer_progress", "transfer_done", "transfer_failed", "message_changed")


class ClientBridge(QObject):
    """One signal per event kind of the client core (docs/CLIENT.md, section 5)."""

    state = pyqtSignal(object)            # ConnectionState
    message = pyqtSignal(object)          # IncomingMessage
    message_status = pyqtSignal(object)   # OutgoingMessage
    presence = pyqtSignal(object)         # PresenceChange
    broadcast = pyqtSignal(object)        # Broadcast
    account = pyqtSignal(object)          # AccountInfo
    notice = pyqtSignal(object)           # Notice
    call = pyqtSignal(object)             # CallEvent
    server_key = pyqtSignal(object)       # ServerKeyEvent
    group = pyqtSignal(object)            # GroupCreated, GroupUpdated, ... (groupevents)
    unread = pyqtSignal(object)           # UnreadCounts (after every login)
    receipt = pyqtSignal(object)          # ReceiptUpdate (the ticks of own messages)
    typing = pyqtSignal(object)           # TypingEvent
    transfer_progress = pyqtSignal(object)  # Transfer: an upload or download moved on
    transfer_done = pyqtSignal(object)    # Transfer, finished
    transfer_failed = pyqtSignal(object)  # Transfer, given up (its error)
    message_changed = pyqtSignal(object)  # MessageChange: edited or deleted for everyone

    def __init__(self, client: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self._unsubscribe: list[Callable[[], None]] = [
            client.subscribe(kind, getattr(self, kind).emit) for kind in KINDS]

    def detach(self) -> None:
        """Stop listening to the client (the windows keep their connections)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []


class CallBridge(QObject):
    """The `CallController`'s status changes as a signal."""

    status = pyqtSignal(object)           # CallStatus

    def __init__(self, controller: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._unsubscribe = controller.subscribe(self.status.emit)

    def detach(self) -> None:
        self._unsubscribe()
