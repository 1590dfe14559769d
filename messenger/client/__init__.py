"""The Messenger client: a Qt-free core every front end builds on (docs/CLIENT.md).

`MessengerClient` connects (TCP or TLS), runs both handshake phases, pins the server key,
logs in with a saved token or a password, stays connected with back-off, resends
unacknowledged messages with their original ids, and reports everything to observers.
``messenger-cli`` (`messenger.client.cli`) is a terminal front end on it; ``calls/`` is
the voice media engine; ``ui/`` (PyQt5) the desktop client. Nothing outside ``ui/``
imports Qt.
"""

from messenger.client.core import MessengerClient
from messenger.client.credentials import CredentialStore, default_config_dir
from messenger.client.errors import (
    ClientError,
    ConnectionFailed,
    NotConnected,
    PasswordNeeded,
    ProtocolViolation,
)
from messenger.client.events import (
    CONNECTING,
    EVENT_KINDS,
    FAILED,
    HANDSHAKING,
    LOGGING_IN,
    LOGIN_REQUIRED,
    OFFLINE,
    ONLINE,
    RECONNECTING,
    STATES,
    SYNCING,
    AccountInfo,
    Broadcast,
    CallEvent,
    ConnectionState,
    IncomingMessage,
    Notice,
    PresenceChange,
    ServerKeyEvent,
)
from messenger.client.known_servers import KnownServers, format_address, parse_address
from messenger.client.outbox import OutgoingMessage
from messenger.client.reconnect import backoff_policy

__all__ = [
    "CONNECTING",
    "EVENT_KINDS",
    "FAILED",
    "HANDSHAKING",
    "LOGGING_IN",
    "LOGIN_REQUIRED",
    "OFFLINE",
    "ONLINE",
    "RECONNECTING",
    "STATES",
    "SYNCING",
    "AccountInfo",
    "Broadcast",
    "CallEvent",
    "ClientError",
    "ConnectionFailed",
    "ConnectionState",
    "CredentialStore",
    "IncomingMessage",
    "KnownServers",
    "MessengerClient",
    "NotConnected",
    "Notice",
    "OutgoingMessage",
    "PasswordNeeded",
    "PresenceChange",
    "ProtocolViolation",
    "ServerKeyEvent",
    "backoff_policy",
    "default_config_dir",
    "format_address",
    "parse_address",
]
