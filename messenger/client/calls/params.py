"""What signalling hands a client for one call: `CallParams`, parsed from ``call_start``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from messenger.wire.media import CALL_ID_SIZE, KEY_SIZE, TOKEN_SIZE, Endpoint

MAX_CANDIDATES = 8


@dataclass(frozen=True)
class CallParams:
    """Everything signalling hands a client for one call."""

    call_id: bytes                       # 8 bytes, the same for both members and the relay
    member: int                          # this client's index in the call: 0 or 1
    key: bytes                           # 32-byte AES-256-GCM call key (both members + relay)
    token: bytes                         # 32-byte relay token of this member only
    relay: Endpoint                      # the relay's UDP address (IP literal, port)
    peer_candidates: tuple[Endpoint, ...] = ()  # the peer's endpoints, if signalling has them
    codec: str = "pcm"                   # the negotiated codec for what we send
    relay_tcp: int | None = None         # the relay's TCP port (UDP blocked), if offered

    def __post_init__(self) -> None:
        if len(self.call_id) != CALL_ID_SIZE:
            raise ValueError(f"call_id must have {CALL_ID_SIZE} bytes")
        if self.member not in (0, 1):
            raise ValueError("member must be 0 or 1")
        if len(self.key) != KEY_SIZE:
            raise ValueError(f"key must have {KEY_SIZE} bytes")
        if len(self.token) != TOKEN_SIZE:
            raise ValueError(f"token must have {TOKEN_SIZE} bytes")
        _check_endpoint(self.relay, "relay")
        if self.relay_tcp is not None and (type(self.relay_tcp) is not int
                                           or not 0 < self.relay_tcp < 65536):
            raise ValueError("relay_tcp must be a port number")
        for endpoint in self.peer_candidates:
            _check_endpoint(endpoint, "peer candidate")

    @property
    def peer(self) -> int:
        return 1 - self.member


def _check_endpoint(endpoint: Any, what: str) -> None:
    if (not isinstance(endpoint, tuple) or len(endpoint) != 2
            or not isinstance(endpoint[0], str) or not isinstance(endpoint[1], int)
            or not 0 < endpoint[1] < 65536):
        raise ValueError(f"{what} must be a (host, port) pair")


def _endpoint(value: Any, what: str) -> Endpoint:
    if isinstance(value, list | tuple) and len(value) == 2:
        endpoint = (value[0], value[1])
        _check_endpoint(endpoint, what)
        return endpoint  # type: ignore[return-value]
    raise ValueError(f"{what} must be a [host, port] pair")


def call_params_from_jim(message: Mapping[str, Any]) -> CallParams:
    """CallParams from a ``call_start`` push (field names as proposed in docs/CALLS.md).

    ``call_id`` is hex, ``key`` and ``token`` are base64, ``relay`` is ``[host, port]``,
    ``peer_endpoints`` a list of such pairs (optional), ``codec`` a codec name,
    ``relay_tcp`` the relay's TCP port (optional).
    Raises ValueError on anything malformed.
    """
    try:
        call_id = bytes.fromhex(message["call_id"])
        key = base64.b64decode(message["key"], validate=True)
        token = base64.b64decode(message["token"], validate=True)
        member = message["member"]
        if type(member) is not int:
            raise ValueError("member must be an integer")
        relay = _endpoint(message["relay"], "relay")
        peers = tuple(_endpoint(e, "peer endpoint")
                      for e in message.get("peer_endpoints", ())[:MAX_CANDIDATES])
        codec = message.get("codec", "pcm")
        if not isinstance(codec, str):
            raise ValueError("codec must be a string")
        relay_tcp = message.get("relay_tcp")
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"bad call_start: {exc!r}") from None
    return CallParams(call_id, member, key, token, relay, peers, codec, relay_tcp)
