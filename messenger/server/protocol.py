"""One client connection: the state machine CHALLENGE -> KEYX -> UNAUTHENTICATED -> READY.

Frames are length-prefixed (`Int32StringReceiver`). In CHALLENGE and KEYX they are plain
JSON handled by `ServerHandshake`; afterwards each frame goes open (decrypt) -> rate
check -> decode -> validate -> dispatch (`messenger.server.requests`), and the outcome
goes back through `answer`, the connection's one way to reply. Every state has a
timeout; only the actions allowed in a state are dispatched; the connection stays up
after a bad request unless the frame itself could not be trusted.

Cryptography with RSA private keys (the key exchange's signature) and the rsa-oaep
suite's sealing and opening run in the server's crypto pool (`messenger.server.crypto`),
in this connection's lane, in order; AES-GCM runs here, it costs microseconds. What is
written goes through `Outbound`, which bounds what may wait for a client that does not
read; reading stops (`ReadGate`) while replies are held back, while too many requests
are in flight and while crypto work is queued, so one client cannot pile up work.

The phase-3 path (`stringReceived` -> `_on_frame` -> `dispatch` -> `answer` ->
`push_encoded`) is the server's hot path: no logging, one clock read per frame.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

from messenger.server import replies, requests
from messenger.server.directwrite import CORK
from messenger.server.keepalive import KeepaliveMixin
from messenger.server.metrics import reply_code
from messenger.server.outbound import Outbound, ReadGate
from messenger.server.portsniff import is_tls_hello
from messenger.server.states import TRANSITIONS, State
from messenger.wire import codes, jim
from messenger.wire.errors import ServiceUnavailable, TooManyRequests
from messenger.wire.handshake import HandshakeError, ServerHandshake
from messenger.wire.suites import MAC_SIZE, RSA_OAEP, ChannelError

if TYPE_CHECKING:
    from messenger.server.context import ServerContext
    from messenger.server.session import Account

HANDSHAKE_MAX_FRAME = 16 * 1024   # until login (PROTOCOL.md section 10)
LANE_DEPTH = 4                    # crypto jobs queued before reading stops
_prefix = struct.Struct(">I").pack


class ServerProtocol(KeepaliveMixin, Int32StringReceiver):
    log = Logger()

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.MAX_LENGTH = HANDSHAKE_MAX_FRAME
        self.state = State.CHALLENGE
        self.account: Account | None = None
        self.address = "?"
        self.connected_at = 0.0
        self.token_hash: str | None = None
        self.login_request: str | None = None   # id of the login being processed, if any
        self.status = "online"
        self.active = True          # a frame arrived since the last keepalive sweep
        self.idle_since = 0.0
        self.probe_id: str | None = None
        self.probe_sent = 0.0
        self.contact_ids: list[int] = []
        self.requests = requests.RequestState(ctx)
        self.gate = ReadGate(self.pauseProducing, self.resumeProducing)
        self.outbound: Outbound | None = None
        self._handshake: ServerHandshake | None = None
        self._open: Any = None      # channel.open while frames may be read, else None
        self._seal: Any = None      # channel.seal while frames may be written, else None
        self._lane: Any = None      # this connection's crypto lane
        self._in_lane = False       # phase-3 sealing and opening go through the lane
        self._expansion = 1.0       # sealed bytes per plaintext byte (rsa-oaep)
        self._chunk = 0             # rsa-oaep: bytes per chunk of a received frame
        self._timer: IDelayedCall | None = None
        self._lost = False
        self._receiving = False     # inside dataReceived (see resumeProducing)

    # -- connection lifecycle -------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.address = getattr(peer, "host", "?")
        self.connected_at = self.ctx.clock.seconds()
        self.outbound = Outbound(self.transport, self.ctx.config.max_queued_bytes, self.gate,
                                 self._overflowed)
        self.transport.registerProducer(self.outbound, True)
        refusal = self.ctx.connection_made(self)
        if refusal is not None:
            self.sendString(jim.encode(refusal.to_reply()))
            self.close()
            return
        self._lane = self.ctx.crypto.lane()
        self._handshake = ServerHandshake(self.ctx.secret, self.ctx.server_key,
                                          self.ctx.config.suites)
        self.sendString(self._handshake.start())
        self._start_timer(self.ctx.config.handshake_timeout, "handshake timed out")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._lost = True
        if self.state is not State.CLOSED:
            self._enter(State.CLOSED)
        self._unprocessed = b""     # a half-received frame is freed with the connection
        self._handshake = None
        if self._lane is not None:
            self._lane.close()
        self.requests.close()
        if self.account is not None:
            self.ctx.session_ended(self)
        self.ctx.connection_lost(self)

    def dataReceived(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            return
        self._receiving = True
        try:
            with CORK:   # the answers to one read leave as one send per connection
                super().dataReceived(data)
        finally:
            self._receiving = False

    def resumeProducing(self) -> None:
        """Read again; frames already buffered are processed now, unless we are inside
        `dataReceived` (its own loop goes on with them: calling it again from within would
        process the same buffer twice)."""
        self.paused = False
        self.transport.resumeProducing()
        if not self._receiving:
            self.dataReceived(b"")

    def _enter(self, state: State) -> None:
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"no transition {self.state.value} -> {state.value}")
        self.state = state
        self._cancel_timer()
        if state is State.KEYX:
            self._start_timer(self.ctx.config.handshake_timeout, "handshake timed out")
        elif state is State.UNAUTHENTICATED:
            self._start_timer(self.ctx.config.login_timeout, "login timed out")
        elif state is State.READY:
            self.MAX_LENGTH = self.ctx.config.max_frame
            self.idle_since = self.ctx.clock.seconds()
        elif state is State.CLOSED:
            self._open = None

    def _start_timer(self, seconds: float, reason: str) -> None:
        self._timer = self.ctx.clock.callLater(seconds, self._timed_out, reason)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self, reason: str) -> None:
        self._timer = None
        # Once per interval with a count: idle connections come in floods.
        self.ctx.refusals.note(f"{reason} (dropped in state {self.state.value})",
                               self.address)
        if self.state is State.UNAUTHENTICATED:
            self.push({"response": codes.NOT_AUTHORISED, "error": reason,
                       "time": self.ctx.clock.seconds()})
        self.close()

    def close(self) -> None:
        """Stop reading, send what is written (and being sealed), then close."""
        if self.state is State.CLOSED:
            return
        self._enter(State.CLOSED)
        if self._lane is not None and self._in_lane and self._lane.queued:
            # Frames still in the crypto lane go out first.
            self._lane.submit(_nothing).addCallback(lambda _: self.transport.loseConnection())
        else:
            self.transport.loseConnection()

    def abort(self, reason: str) -> None:
        """Close at once: the peer cannot be trusted any more (logged once per interval
        with a count: a peer can make this happen on every connection)."""
        self.ctx.refusals.note(f"connection aborted: {reason}", self.address)
        if self.state is not State.CLOSED:
            self._enter(State.CLOSED)
        self.transport.abortConnection()

    def shutdown(self, message: str) -> None:
        """The server is stopping: tell a logged-in user why, then close."""
        if self.state is State.READY:
            self.push({"action": "notice", "level": codes.IMPORTANT_NOTICE,
                       "message": message, "time": self.ctx.clock.seconds()})
        self.close()

    def _overflowed(self, queued: int) -> None:
        """The client stopped reading and its queue passed the limit: drop it. Its
        messages are stored; it syncs them after it reconnects."""
        self.log.warn("Dropping {account} at {address}: {queued} bytes queued for a client"
                      " that is not reading (limit {limit}, --max-queued-bytes)",
                      account=self.account_name or "(not logged in)", address=self.address,
                      queued=queued, limit=self.ctx.config.max_queued_bytes)
        self.ctx.count("outbound_overflows")
        if self.state is not State.CLOSED:
            self._enter(State.CLOSED)
        self.transport.abortConnection()

    def lengthLimitExceeded(self, length: int) -> None:
        # Never keep the announced frame: Int32StringReceiver would hold on to it.
        self._unprocessed = b""
        if self.state is State.CLOSED:
            return
        if self.state is State.CHALLENGE and is_tls_hello(length):
            self.ctx.refusals.note("a TLS client connected to the plain port", self.address)
            self.close()
            return
        self.ctx.refusals.note("frame too large", self.address)
        error = {"response": codes.BAD_REQUEST,
                 "error": f"frame too large ({length} bytes; the limit is {self.MAX_LENGTH})"}
        if self._seal is not None:
            error["time"] = self.ctx.clock.seconds()
            self.push(error)
        else:
            self.sendString(jim.encode(error))
        self.close()

    # -- frames ---------------------------------------------------------------------------

    def stringReceived(self, data: bytes) -> None:
        if self._open is not None:
            if self._in_lane:
                self._open_in_lane(data)
            else:
                self._on_frame(data)
        elif self.state is State.CHALLENGE or self.state is State.KEYX:
            self._on_handshake(data)
        # CLOSED: whatever still arrives is dropped unread.

    def _on_frame(self, data: bytes) -> None:
        try:
            plaintext = self._open(data)
        except ChannelError as error:
            self.abort(str(error))
            return
        requests.dispatch(self, plaintext)

    def _on_handshake(self, data: bytes) -> None:
        handshake = self._handshake
        assert handshake is not None
        if self.state is State.CHALLENGE:
            # The HMAC step costs microseconds: here. The key exchange signs with the
            # server's private key: in the crypto lane, reading held meanwhile.
            try:
                reply, _ = handshake.receive(data)
            except Exception as error:
                self._handshake_failed(Failure(error))
                return
            self.sendString(reply)
            self._enter(State.KEYX)
            return
        self.gate.hold("handshake")
        d = self._lane.submit(handshake.receive, data, urgent=True)
        d.addCallbacks(self._keyx_done, self._handshake_failed)

    def _keyx_done(self, outcome: tuple[bytes, Any]) -> None:
        if self.state is not State.KEYX:
            return
        reply, established = outcome
        self.sendString(reply)
        self._handshake = None
        channel = established.channel
        self._open = channel.open
        self._seal = channel.seal
        if established.suite == RSA_OAEP:
            # One RSA operation per chunk: sealing and opening go to the crypto lane.
            own = (self.ctx.server_key.key_size + 7) // 8
            peer = (established.peer_key.key_size + 7) // 8
            self._in_lane = True
            self._chunk = own
            self._expansion = peer / (peer - 66) + 0.01
        self._enter(State.UNAUTHENTICATED)
        self.gate.release("handshake")

    def _handshake_failed(self, failure: Failure) -> None:
        self.gate.release("handshake")
        if self.state is State.CLOSED:
            return
        error = failure.value
        if isinstance(error, HandshakeError):
            self.ctx.refusals.note(f"handshake failed: {error.message}", self.address)
            if error.reply is not None:
                self.sendString(error.reply)
            self.close()
            return
        self.log.failure("Handshake with {address} failed unexpectedly", failure,
                         address=self.address)
        self.abort("internal error in the handshake")

    def _open_in_lane(self, data: bytes) -> None:
        """An rsa-oaep frame: opened in the lane (one private-key operation per chunk),
        charged to this connection's crypto budget; dispatched in arrival order."""
        chunks = max(1, (len(data) - MAC_SIZE) // self._chunk)
        self.requests.charge_crypto(self, chunks)
        lane = self._lane
        if lane.queued + 1 >= LANE_DEPTH:
            self.gate.hold("crypto")
        lane.submit(self._open, data).addCallbacks(self._opened, self._open_failed)

    def _opened(self, plaintext: bytes) -> None:
        self._lane_drained()
        if self.state is not State.CLOSED:
            requests.dispatch(self, plaintext)

    def _open_failed(self, failure: Failure) -> None:
        self._lane_drained()
        if failure.check(ChannelError):
            self.abort(str(failure.value))
        else:
            self.log.failure("Opening a frame from {address} failed", failure,
                             address=self.address)
            self.abort("internal error while opening a frame")

    def _lane_drained(self) -> None:
        if self._lane.queued < LANE_DEPTH:
            self.gate.release("crypto")

    # -- sending --------------------------------------------------------------------------

    def sendString(self, string: bytes) -> None:
        """A plain (handshake-phase) frame, on the reactor's next turn as Twisted writes: a
        TLS client on this port gets its hello out before our challenge reaches it, so
        the refusal can name it (`is_tls_hello`)."""
        if self.outbound is not None and not self._lost:
            self.outbound.write(_prefix(len(string)) + string, direct=False)

    def push_encoded(self, payload: bytes, reply: bool = False) -> None:
        """Send an already encoded JIM object (a push, or with ``reply`` the answer to one
        of the client's requests); dropped once closed."""
        seal = self._seal
        if seal is None or self.state is State.CLOSED:
            return
        if not self._in_lane:
            sealed = seal(payload)
            self.outbound.write(_prefix(len(sealed)) + sealed, reply)  # type: ignore[union-attr]
            return
        size = int(len(payload) * self._expansion) + 64
        if not self.outbound.reserve(size, reply):  # type: ignore[union-attr]
            return
        if self._lane.queued + 1 >= LANE_DEPTH:
            self.gate.hold("crypto")
        self._lane.submit(seal, payload).addCallback(self._sealed, size, reply)

    def _sealed(self, sealed: bytes, size: int, reply: bool) -> None:
        self._lane_drained()
        outbound = self.outbound
        assert outbound is not None
        outbound.unreserve(size)
        if not self._lost:
            outbound.write(_prefix(len(sealed)) + sealed, reply)

    def push(self, message: dict[str, Any]) -> None:
        self.push_encoded(jim.encode(message))

    def answer(self, request_id: str | None, outcome: Any) -> None:
        """Reply to one request with a handler's outcome (result, error or Failure)."""
        if self._seal is None or self.state is State.CLOSED:
            return
        self.push_encoded(replies.encode_reply(request_id, outcome,
                                               self.ctx.clock.seconds()), reply=True)
        self.ctx.metrics.reply(reply_code(outcome))
        if type(outcome) is replies.Ack:
            return
        error = outcome.value if isinstance(outcome, Failure) else outcome
        if isinstance(error, (TooManyRequests, ServiceUnavailable)):
            self.requests.forget(request_id)
        if type(outcome) is replies.Closing or (
                isinstance(outcome, Failure) and outcome.check(replies.SessionOver)) or (
                isinstance(outcome, replies.SessionOver)):
            self.close()

    def refuse(self, request_id: str | None, error: TooManyRequests, drop: bool) -> None:
        """A rate-limit refusal; ``drop`` closes the connection after it."""
        self.answer(request_id, error)
        if drop:
            self.close()

    # -- login and keepalive --------------------------------------------------------------

    @property
    def account_name(self) -> str | None:
        return self.account.name if self.account is not None else None

    def logged_in(self, account: Account) -> None:
        """Called by the accounts handler once this session owns its account."""
        self.account = account
        self._enter(State.READY)
        self.ctx.session_started(self)


def _nothing() -> None:
    return None
