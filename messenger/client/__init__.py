"""The Messenger client: a Qt-free core every front end builds on (docs/CLIENT.md).

`MessengerClient` connects (TCP or TLS), runs both handshake phases, pins the server key,
logs in with a saved token or a password, stays connected with back-off, resends
unacknowledged messages with their original ids, and reports everything to observers
(`events`); everything it fails with is a typed error of `errors`.
``messenger-cli`` (`messenger.client.cli`) is a terminal front end on it; ``calls/`` is
the voice media engine; ``ui/`` (PyQt5) the desktop client. Nothing outside ``ui/``
imports Qt.
"""

from messenger.client import errors
from messenger.client.core import MessengerClient
from messenger.client.credentials import CredentialStore, default_config_dir
from messenger.client.events import (
    EVENT_KINDS,
    AccountInfo,
    Broadcast,
    CallEvent,
    ConnectionState,
    IncomingMessage,
    Notice,
    PresenceChange,
    ServerKeyEvent,
    ServerLimits,
    State,
)
from messenger.client.known_servers import KnownServers, format_address, parse_address
from messenger.client.outbox import OutgoingMessage
from messenger.client.reconnect import backoff_policy

__all__ = [
    "EVENT_KINDS",
    "AccountInfo",
    "Broadcast",
    "CallEvent",
    "ConnectionState",
    "CredentialStore",
    "IncomingMessage",
    "KnownServers",
    "MessengerClient",
    "Notice",
    "OutgoingMessage",
    "PresenceChange",
    "ServerKeyEvent",
    "ServerLimits",
    "State",
    "backoff_policy",
    "default_config_dir",
    "errors",
    "format_address",
    "parse_address",
]
