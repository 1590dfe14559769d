"""The node's two connections to Redis: one for commands, one for its subscriptions.

Built on txredisapi's protocols (Twisted-native, what Synapse uses), each connection kept
up by Twisted's `ClientService` (reconnects with a short back-off). The link is
*available* while both are connected and the subscriptions are confirmed; observers hear
when it goes down and when it comes back (`on_up`, `on_down`), which is when the node
re-asserts its leases and catches its sessions up (`messenger.server.cluster.node`).

While the link is down nothing waits for it: `command` fails at once with
`RedisUnavailable`, `publish` drops (and counts) the message. A command that Redis does
not answer within ``reply_timeout`` fails and the connection is reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from hashlib import sha1
from typing import Any

import txredisapi
from twisted.application.internet import ClientService
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from messenger.server.cluster.settings import RedisAddress

CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 5.0


class RedisUnavailable(Exception):
    """Redis cannot be reached right now."""


class Script:
    """A Lua script, run by its SHA1 (EVALSHA) and loaded on first use."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = sha1(source.encode(), usedforsecurity=False).hexdigest()  # EVALSHA


def _retry(attempt: int) -> float:
    return min(0.2 * 2 ** min(attempt, 6), 2.0)


class _Factory(Factory):
    """Builds one txredisapi protocol per connection attempt."""

    noisy = False

    def __init__(self, link: RedisLink, kind: type, dbid: int | None) -> None:
        self.link = link
        self.kind = kind
        self.dbid = dbid

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802
        address = self.link.address
        protocol = self.kind(charset=None, replyTimeout=self.link.reply_timeout,
                             password=address.password, dbid=self.dbid,
                             convertNumbers=False, username=address.username)
        protocol.factory = self
        protocol.link = self.link
        return protocol

    # txredisapi calls these when AUTH or SELECT fails
    def stopTrying(self) -> None:  # noqa: N802
        pass

    def connectionError(self, why: str) -> None:  # noqa: N802
        self.link.log.error("Redis refused the connection: {why}", why=why)


class _Commands(txredisapi.RedisProtocol):
    link: RedisLink

    def connectionMade(self) -> Any:  # noqa: N802
        d = super().connectionMade()
        self.whenConnected().addCallback(self._named)
        return d

    def _named(self, _: Any) -> Any:
        """Name the connection (``CLIENT SETNAME``): while it is open, Redis itself says
        this node is alive (`Leases` asks when a lease's node seems gone)."""
        d = self.execute_command("CLIENT", "SETNAME", self.link.client_name)
        d.addErrback(lambda f: None)        # an ACL without CLIENT: leases wait for expiry
        d.addCallback(lambda _: self.link._connected("commands", self))
        return d

    def connectionLost(self, why: Any) -> None:  # noqa: N802
        self.link._lost("commands", self)
        super().connectionLost(why)


class _Subscriber(txredisapi.SubscriberProtocol):
    link: RedisLink

    def connectionMade(self) -> Any:  # noqa: N802
        d = super().connectionMade()
        self.whenConnected().addCallback(self._subscribe)
        return d

    def _subscribe(self, _: Any) -> Any:
        d = self.subscribe(list(self.link.channels))
        d.addCallbacks(lambda _: self.link._connected("subscriber", self),
                       lambda f: self.transport.loseConnection())
        return d

    def messageReceived(self, pattern: Any, channel: bytes, message: bytes) -> None:  # noqa: N802
        try:
            self.link.on_message(channel, message)
        except Exception:
            self.link.log.failure("A message from Redis could not be handled")

    def connectionLost(self, why: Any) -> None:  # noqa: N802
        self.link._lost("subscriber", self)
        super().connectionLost(why)


class RedisLink:
    log = Logger()

    def __init__(self, address: RedisAddress, reactor: Any, channels: Iterable[bytes],
                 on_message: Callable[[bytes, bytes], None],
                 reply_timeout: float = REPLY_TIMEOUT) -> None:
        self.address = address
        self.reactor = reactor
        self.channels = list(channels)
        self.on_message = on_message
        self.reply_timeout = reply_timeout
        self.on_up: list[Callable[[], None]] = []
        self.on_down: list[Callable[[], None]] = []
        self.available = False
        self.dropped = 0            # publishes lost while the link was down
        self.client_name = "messenger"
        self._protocols: dict[str, Any] = {}
        self._services: list[ClientService] = []
        self._first: defer.Deferred[None] | None = None
        self._stopping = False

    # -- life -----------------------------------------------------------------------------

    def start(self) -> defer.Deferred[None]:
        """Connect; fires once both connections are up, fails if the first attempt does."""
        self._first = defer.Deferred()
        for kind, dbid in ((_Commands, self.address.db), (_Subscriber, None)):
            endpoint = HostnameEndpoint(self.reactor, self.address.host, self.address.port,
                                        timeout=CONNECT_TIMEOUT)
            service = ClientService(endpoint, _Factory(self, kind, dbid), retryPolicy=_retry,
                                    clock=self.reactor)
            service.startService()
            service.whenConnected(failAfterFailures=1).addErrback(self._first_failed)
            self._services.append(service)
        timer = self.reactor.callLater(CONNECT_TIMEOUT + self.reply_timeout,
                                       self._first_failed, None)
        first = self._first

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result
        return first.addBoth(done)

    def _first_failed(self, failure: Any) -> None:
        first, self._first = self._first, None
        if first is not None and not first.called:
            why = failure.getErrorMessage() if failure is not None else "no answer"
            # Not from inside ClientService's transition (whoever hears of it may stop us).
            self.reactor.callLater(0, first.errback, RedisUnavailable(
                f"cannot reach Redis at {self.address.describe()}: {why}"))

    def stop(self) -> defer.Deferred[Any]:
        self._stopping = True
        services, self._services = self._services, []
        return defer.gatherResults([s.stopService() for s in services], consumeErrors=True)

    def _connected(self, kind: str, protocol: Any) -> None:
        self._protocols[kind] = protocol
        if len(self._protocols) == 2 and not self.available:
            self.available = True
            first, self._first = self._first, None
            if first is not None and not first.called:
                first.callback(None)
            else:
                self.log.info("Redis at {address} answers again", address=self.address.describe())
            for observer in list(self.on_up):
                observer()

    def _lost(self, kind: str, protocol: Any) -> None:
        if self._protocols.get(kind) is not protocol:
            return
        del self._protocols[kind]
        other = self._protocols.get("subscriber" if kind == "commands" else "commands")
        if self.available:
            self.available = False
            if not self._stopping:
                self.log.warn("Lost Redis at {address}; cross-node pushes pause until it"
                              " is back", address=self.address.describe())
            if other is not None and other.transport is not None:
                # One half gone: restart the other too, so that coming back is one event.
                other.transport.loseConnection()
            for observer in list(self.on_down):
                observer()

    # -- commands -------------------------------------------------------------------------

    def _commands(self) -> Any:
        protocol = self._protocols.get("commands")
        if not self.available or protocol is None:
            raise RedisUnavailable("Redis is unavailable")
        return protocol

    def command(self, *args: Any) -> defer.Deferred[Any]:
        """Run one command; fails at once with `RedisUnavailable` while the link is down."""
        try:
            protocol = self._commands()
            d = protocol.execute_command(*args)
        except (RedisUnavailable, txredisapi.ConnectionError) as error:
            return defer.fail(RedisUnavailable(str(error)))
        return d.addErrback(_unavailable)

    def run(self, script: Script, keys: list[Any], args: list[Any]) -> defer.Deferred[Any]:
        """Run a Lua script by its SHA1, loading it when Redis does not know it."""
        d = self.command("EVALSHA", script.sha, len(keys), *keys, *args)

        def missing(failure: Any) -> Any:
            if failure.check(txredisapi.ResponseError) and "NOSCRIPT" in str(failure.value):
                return self.command("EVAL", script.source, len(keys), *keys, *args)
            return failure
        return d.addErrback(missing)

    def publish(self, channel: bytes, payload: bytes) -> bool:
        """Publish without waiting; False (and counted) when the link is down."""
        try:
            protocol = self._commands()
            protocol.execute_command("PUBLISH", channel, payload).addErrback(_ignore)
        except (RedisUnavailable, txredisapi.ConnectionError):
            self.dropped += 1
            return False
        return True


def _unavailable(failure: Any) -> Any:
    if failure.check(txredisapi.ConnectionError):   # includes txredisapi's TimeoutError
        raise RedisUnavailable(failure.getErrorMessage())
    return failure


def _ignore(failure: Any) -> None:
    return None
