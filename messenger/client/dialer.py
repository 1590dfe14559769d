"""How a `Connection` reaches the server: the endpoint, and the protocol it runs.

`Dialer.dial` makes the TCP connection (inside TLS when configured) with a Twisted
endpoint; `Dialer.new_protocol` makes the `ClientProtocol` for it, with a fresh
`ClientHandshake` whose pinning hook is the connection's own. Tests replace ``dial``
with a scripted network (the ``connect`` argument of `MessengerClient`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory

from messenger.client.protocol import ClientProtocol
from messenger.wire.handshake import ClientHandshake

Build = Callable[[], ClientProtocol]
Connector = Callable[[Build], defer.Deferred]


class _ProtocolFactory(Factory):
    noisy = False

    def __init__(self, build: Build) -> None:
        self._build = build

    def buildProtocol(self, addr: Any) -> ClientProtocol:
        protocol = self._build()
        protocol.factory = self
        return protocol


class Dialer:
    def __init__(self, reactor: Any, host: str, port: int, secret: bytes,
                 client_key: Callable[[], rsa.RSAPrivateKey | None],
                 suites: Sequence[str], tls: Any = None, timeout: float = 15.0,
                 connect: Connector | None = None) -> None:
        """``client_key()`` returns the loaded client key (loaded before any dial);
        ``tls``: an ``IOpenSSLClientConnectionCreator``; ``connect``: replaces the
        endpoint (tests)."""
        self._reactor = reactor
        self._host = host
        self._port = port
        self._secret = secret
        self._client_key = client_key
        self._suites = tuple(suites)
        self._tls = tls
        self._timeout = timeout
        self._connect = connect

    def dial(self, build: Build) -> defer.Deferred:
        """Connect; fires with the protocol ``build()`` made once the connection is up."""
        if self._connect is not None:
            return self._connect(build)
        endpoint: Any = HostnameEndpoint(self._reactor, self._host, self._port,
                                         timeout=self._timeout)
        if self._tls is not None:
            endpoint = wrapClientTLS(self._tls, endpoint)
        return endpoint.connect(_ProtocolFactory(build))

    def new_protocol(self, check_key: Callable[[rsa.RSAPublicKey], None]) -> ClientProtocol:
        key = self._client_key()
        assert key is not None, "the client key is loaded before the first dial"
        handshake = ClientHandshake(self._secret, key, self._suites,
                                    check_server_key=check_key)
        return ClientProtocol(handshake, self._reactor)
