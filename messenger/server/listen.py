"""Listening on IPv4 and IPv6 at once when no interface is configured (dual stack).

Twisted's ``listenTCP(port, interface="")`` listens on IPv4 only. With no interface set
the server should be reachable over both families, as any daemon is by default:

* TCP (the JIM port): one IPv4 socket and one IPv6-only socket on the same port number,
  so every peer address the protocol sees is in its own family (never an IPv4-mapped
  ``::ffff:a.b.c.d``, which would put every IPv4 client in one IPv6 /64 for the rate
  limits);
* UDP and the TCP relay: one dual-stack socket (``::`` with ``IPV6_V6ONLY`` off); the
  relay turns mapped addresses back into plain IPv4 itself.

On a host without IPv6 the IPv6 part is skipped with a log line; an explicit interface
(``--interface 0.0.0.0``, ``::1``, ...) is used as given.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.logger import Logger

log = Logger()

# Connections the kernel may hold for us before we accept them (Twisted's default is 50:
# a crowd connecting at once, real users after an outage or an attacker, would see SYNs
# dropped and retried for seconds). The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024


def _v6_socket(kind: int, port: int, v6only: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def listen_tcp(reactor: Any, port: int, factory: Any, interface: str = "",
               what: str = "TCP") -> list[Any]:
    """Listening ports for ``factory``: the first is the IPv4 (or given) one."""
    first = reactor.listenTCP(port, factory, backlog=LISTEN_BACKLOG, interface=interface)
    if interface:
        return [first]
    number = first.getHost().port
    try:
        sock = _v6_socket(socket.SOCK_STREAM, number, v6only=True)
    except OSError as exc:
        log.info("{what}: no IPv6 listener on port {port} ({error})", what=what,
                 port=number, error=exc)
        return [first]
    try:
        second = reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
    finally:
        sock.close()
    return [first, second]


def listen_udp(reactor: Any, port: int, protocol: Any, interface: str = "") -> Any:
    """A UDP port for ``protocol``: dual-stack on ``::`` when no interface is given."""
    if interface:
        return reactor.listenUDP(port, protocol, interface=interface)
    try:
        sock = _v6_socket(socket.SOCK_DGRAM, port, v6only=False)
    except OSError as exc:
        log.info("UDP: no dual-stack socket ({error}); IPv4 only", error=exc)
        return reactor.listenUDP(port, protocol)
    try:
        return reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET6, protocol)
    finally:
        sock.close()


def listen_stream_dual(reactor: Any, port: int, factory: Any, interface: str = "") -> Any:
    """One TCP listener, dual-stack on ``::`` when no interface is given (the relay's)."""
    if interface:
        return reactor.listenTCP(port, factory, interface=interface)
    try:
        sock = _v6_socket(socket.SOCK_STREAM, port, v6only=False)
    except OSError:
        return reactor.listenTCP(port, factory)
    try:
        return reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
    finally:
        sock.close()
