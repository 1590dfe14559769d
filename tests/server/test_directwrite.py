"""messenger.server.directwrite over real loopback TCP: sent at once when nothing waits,
one send per connection under the cork, byte order kept behind Twisted's own buffer, and
bytes written to a closing connection still delivered."""

from __future__ import annotations

import socket

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from messenger.server.directwrite import CORK, DirectWriter, direct_writer


class Accepted(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.accepted.callback(self)


class Pair:
    """A listening port, one accepted server-side Twisted transport, and a raw client
    socket (non-blocking) to read what the server sent."""

    async def open(self, case: unittest.TestCase) -> None:
        factory = protocol.Factory.forProtocol(Accepted)
        factory.accepted = defer.Deferred()
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        case.addCleanup(self.port.stopListening)
        self.client = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        self.client.setblocking(False)
        case.addCleanup(self.client.close)
        self.server = await factory.accepted
        case.addCleanup(self.server.transport.abortConnection)
        self.transport = self.server.transport

    def received_now(self) -> bytes:
        """What the kernel already holds for the client (loopback: a completed send is
        there at once); b"" when nothing."""
        try:
            return self.client.recv(1 << 20)
        except BlockingIOError:
            return b""

    async def received_eventually(self, size: int) -> bytes:
        """Read until ``size`` bytes came, polling once per reactor turn (bounded)."""
        data = b""
        for _ in range(2000):
            data += self.received_now()
            if len(data) >= size:
                return data
            await task.deferLater(reactor, 0.001, lambda: None)
        raise AssertionError(f"only {len(data)} of {size} bytes arrived")


class DirectWriteTests(unittest.TestCase):

    async def _pair(self) -> Pair:
        pair = Pair()
        await pair.open(self)
        return pair

    async def test_sent_at_once_without_the_reactor(self) -> None:
        """With nothing buffered, a write is on the wire before the call returns, and
        Twisted's buffer stays empty (no writability registration)."""
        pair = await self._pair()
        write = direct_writer(pair.transport)
        self.assertIsInstance(write, DirectWriter)
        write(b"hello")
        self.assertEqual(pair.received_now(), b"hello")
        self.assertEqual((pair.transport.dataBuffer, pair.transport._tempDataLen), (b"", 0))

    async def test_cork_holds_then_sends_once(self) -> None:
        """Under the cork nothing leaves; the outermost release sends it all together."""
        pair = await self._pair()
        write = direct_writer(pair.transport)
        with CORK:
            write(b"one,")
            with CORK:
                write(b"two,")
            self.assertEqual(pair.received_now(), b"")  # the inner release sends nothing
            write(b"three")
        self.assertEqual(pair.received_now(), b"one,two,three")
        self.assertEqual(CORK.depth, 0)

    async def test_order_kept_behind_twisteds_buffer(self) -> None:
        """Bytes already waiting in the transport go first: a later write queues behind
        them instead of jumping ahead."""
        pair = await self._pair()
        write = direct_writer(pair.transport)
        pair.transport.write(b"first,")        # buffered by Twisted until its next turn
        write(b"second")
        self.assertEqual(pair.received_now(), b"")
        data = await pair.received_eventually(len(b"first,second"))
        self.assertEqual(data, b"first,second")

    async def test_buffered_write_stays_behind_held_bytes(self) -> None:
        """A buffered write (handshake frames) under the cork queues behind what the
        cork holds for the connection instead of overtaking it."""
        pair = await self._pair()
        write = direct_writer(pair.transport)
        with CORK:
            write(b"held,")
            write.buffered(b"after")
        data = await pair.received_eventually(len(b"held,after"))
        self.assertEqual(data, b"held,after")

    async def test_what_the_kernel_does_not_take_is_buffered(self) -> None:
        """A write larger than the socket takes at once: the rest goes through Twisted,
        and all of it arrives in order."""
        pair = await self._pair()
        write = direct_writer(pair.transport)
        big = bytes(range(256)) * 40_000       # 10 MB, far past any socket buffer
        write(big)
        write(b"tail")
        self.assertGreater(pair.transport._tempDataLen + len(pair.transport.dataBuffer), 0)
        data = await pair.received_eventually(len(big) + 4)
        self.assertEqual(data, big + b"tail")

    async def test_closing_connection_still_gets_its_bytes(self) -> None:
        """Written under the cork, then told to close before the cork ends: the bytes
        still arrive before the close."""
        pair = await self._pair()
        write = direct_writer(pair.transport)
        with CORK:
            write(b"goodbye")
            pair.transport.loseConnection()
        data = await pair.received_eventually(len(b"goodbye"))
        self.assertEqual(data, b"goodbye")

    def test_other_transports_keep_their_write(self) -> None:
        """A transport that is not plain TCP (here a test transport) is written as before."""
        transport = StringTransport()
        self.assertEqual(direct_writer(transport), transport.write)
