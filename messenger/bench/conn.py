"""One lean benchmark connection: framing, the real handshake, a login, then raw frames.

The generator must cost the machine as little as possible (it shares 2 cores with the
server), so this is not the client core: frames are split by hand from one buffer, the
handshake is the wire layer's own `ClientHandshake` (phases 1 and 2 exactly as any
client does them), and after the login the subclass gets the raw sealed payloads of each
read in one list (`on_frames`) and opens them with the established channel itself.

Everything else (reconnects, pinning, the request table) is left out on purpose: a
benchmark connection that loses its socket or gets an unexpected reply fails the run.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import ClientFactory, Protocol

from messenger.wire import jim
from messenger.wire.handshake import ClientHandshake, HandshakeError
from messenger.wire.suites import ChannelError

LEN = struct.Struct(">I").pack
MAX_LENGTH = (1 << 20) + 64   # a 1 MiB payload sealed with aes-256-gcm (PROTOCOL.md 10)
PASSWORD = "bench-password-1"  # noqa: S105 - test accounts; 8+ characters for --auto-register


def request_id() -> str:
    return os.urandom(16).hex()


class BenchConnection(Protocol):
    """A client connection that logs in as ``user`` and then hands frames to a subclass.

    ``login`` is how: ``"register"`` (falls back to ``authenticate`` when the name is
    taken, so a reused server works), ``"authenticate"`` (also what ``--auto-register``
    servers answer with 201) or ``"resume"`` with ``token``. ``remember`` asks for a
    resume token, kept in ``self.token``.
    """

    def __init__(self, user: str, secret: bytes, client_key: Any, suite: str,
                 on_ready: Callable[[BenchConnection], None],
                 on_fail: Callable[[BenchConnection, str], None],
                 login: str = "register", token: str | None = None,
                 remember: bool = False, quickack: bool = True) -> None:
        self.user = user
        self.suite = suite
        self.buf = b""
        self.handshake: ClientHandshake | None = ClientHandshake(secret, client_key, (suite,))
        self.channel: Any = None
        self.seal: Any = None
        self.open: Any = None
        self.phase = "connecting"
        self.login = login
        self.token = token
        self.remember = remember
        self.quickack = quickack
        self.on_ready = on_ready
        self.on_fail = on_fail
        self.login_code: int | None = None
        self.max_frame = 16 * 1024          # the server's limit after login (its reply)
        self.sock: Any = None
        self.t_start = time.monotonic_ns()
        self.t_ready = 0
        self.probes = 0             # keepalive probes answered
        self._login_id = ""

    # -- framing ----------------------------------------------------------------------------

    def frames(self, data: bytes) -> list[bytes]:
        """Split complete Int32 frames off the buffer (bounded by the buffer's length)."""
        buf = self.buf + data if self.buf else data
        out = []
        off, end = 0, len(buf)
        while off + 4 <= end:
            n = int.from_bytes(buf[off:off + 4], "big")
            if n > MAX_LENGTH:
                self.buf = b""
                self.fail(f"server announced a frame of {n} bytes")
                return out
            stop = off + 4 + n
            if stop > end:
                break
            out.append(buf[off + 4:stop])
            off = stop
        self.buf = buf[off:] if off else buf
        return out

    def send_frame(self, payload: bytes) -> None:
        self.transport.write(LEN(len(payload)) + payload)

    def send_jim(self, message: dict[str, Any]) -> None:
        """Seal and send one JIM object (not for the hot path: that builds its own JSON)."""
        self.send_frame(self.seal(jim.encode(message)))

    def fail(self, why: str) -> None:
        if self.phase != "failed":
            self.phase = "failed"
            self.on_fail(self, f"{self.user}: {why}")

    # -- Twisted ------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.sock = self.transport.getHandle()
        self.phase = "handshake"

    def connectionLost(self, reason: Any = None) -> None:
        if self.phase not in ("closing", "failed"):
            self.fail(f"connection lost in phase {self.phase}: {reason.getErrorMessage()}")

    def dataReceived(self, data: bytes) -> None:
        if self.quickack and self.sock is not None:
            # Re-arm TCP_QUICKACK (the kernel clears it): ACK the server's segments at once so
            # that its Nagle algorithm is not held up by our delayed ACKs (40 ms stalls).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        frames = self.frames(data)
        if self.phase == "ready":
            if frames:
                self.on_frames(frames)
            return
        for position, frame in enumerate(frames):
            if self.phase == "handshake":
                self._on_handshake(frame)
            elif self.phase == "login":
                self._on_login_reply(frame)
            elif self.phase == "ready":
                self.on_frames(frames[position:])
                return
            else:
                return

    # -- handshake and login --------------------------------------------------------------------

    def _on_handshake(self, frame: bytes) -> None:
        assert self.handshake is not None
        try:
            reply, established = self.handshake.receive(frame)
        except HandshakeError as error:
            self.fail(f"handshake failed: {error.message}")
            return
        if reply is not None:
            self.send_frame(reply)
        if established is not None:
            self.handshake = None
            self.channel = established.channel
            self.seal = self.channel.seal
            self.open = self.channel.open
            self.phase = "login"
            self._send_login(self.login)

    def _send_login(self, how: str) -> None:
        self._login_id = request_id()
        message: dict[str, Any] = {"action": how, "id": self._login_id, "time": time.time()}
        if how == "resume":
            message["user"] = {"account_name": self.user}
            message["token"] = self.token
        else:
            message["user"] = {"account_name": self.user, "password": PASSWORD}
            if how == "register":
                message["user"]["email"] = f"{self.user.lower()}@bench.invalid"
            if self.remember:
                message["remember"] = True
        self.login = how
        self.send_jim(message)

    def _on_login_reply(self, frame: bytes) -> None:
        try:
            reply = json.loads(self.open(frame))
        except (ChannelError, ValueError) as error:
            self.fail(f"bad frame during login: {error}")
            return
        if reply.get("id") != self._login_id:
            return  # a push (presence) before the reply: not ours
        code = reply.get("response")
        if code == 409 and self.login == "register":
            self._send_login("authenticate")
            return
        if code in (429, 503) and isinstance(reply.get("retry_after"), (int, float)):
            # The server is busy (a burst of registrations hashing): try again as told.
            from twisted.internet import reactor
            reactor.callLater(min(float(reply["retry_after"]), 10.0), self._send_login,
                              self.login)
            return
        if code not in (200, 201):
            self.fail(f"{self.login} refused: {code} {reply.get('error')}")
            return
        self.login_code = code
        limits = reply.get("limits")
        if isinstance(limits, dict) and type(limits.get("max_frame")) is int:
            self.max_frame = limits["max_frame"]
        if reply.get("token"):
            self.token = reply["token"]
        self.phase = "ready"
        self.t_ready = time.monotonic_ns()
        self.on_ready(self)

    # -- after login ------------------------------------------------------------------------------

    def on_frames(self, frames: list[bytes]) -> None:
        """Sealed payloads of one read, after the login; subclasses open them."""
        for frame in frames:
            try:
                plaintext = self.open(frame)
            except ChannelError as error:
                self.fail(f"frame failed to open: {error}")
                return
            if not self.maybe_probe(plaintext):
                self.on_other(plaintext)

    def on_other(self, plaintext: bytes) -> None:
        """A frame that is not a probe; the default ignores it."""

    def maybe_probe(self, plaintext: bytes) -> bool:
        """Answer the server's keepalive probe; True if ``plaintext`` was one."""
        if b'"action":"probe"' not in plaintext:
            return False
        probe = json.loads(plaintext)
        self.send_jim({"response": 200, "id": probe.get("id"), "time": time.time()})
        self.probes += 1
        return True

    def close(self) -> None:
        if self.phase != "failed":
            self.phase = "closing"
        if self.transport is not None:
            self.transport.abortConnection()


class OneFactory(ClientFactory):
    """Hands out one prepared protocol instance."""

    noisy = False

    def __init__(self, conn: BenchConnection) -> None:
        self.conn = conn

    def buildProtocol(self, addr: Any) -> BenchConnection:
        return self.conn

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.conn.fail(f"connect failed: {reason.getErrorMessage()}")


class Launcher:
    """Connect many prepared connections, at most ``concurrency`` handshaking at once.

    Each connection's ``on_ready``/``on_fail`` must call `done` so the next one starts.
    Bounded by the list: every connection is started exactly once.
    """

    def __init__(self, reactor: Any, host: str, port: int, conns: list[BenchConnection],
                 concurrency: int = 50, sources: list[str] | None = None) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.pending = list(reversed(conns))
        self.in_flight = 0
        self.concurrency = max(1, concurrency)
        # Local addresses to connect from, in turn: one address reaches one server port
        # from at most ~28,000 ephemeral ports, so more connections need more addresses.
        self.sources = sources or []
        self.started = 0

    def start(self) -> None:
        while self.pending and self.in_flight < self.concurrency:
            conn = self.pending.pop()
            self.in_flight += 1
            conn.t_start = time.monotonic_ns()
            bind = None
            if self.sources:
                bind = (self.sources[self.started % len(self.sources)], 0)
            self.started += 1
            self.reactor.connectTCP(self.host, self.port, OneFactory(conn), timeout=30,
                                    bindAddress=bind)

    def done(self) -> None:
        self.in_flight -= 1
        self.start()
