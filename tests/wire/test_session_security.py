"""Integration tests of the messenger/2 session protections, against a real server.

Each test plays an attacker over real loopback sockets: a recording proxy (`Tap`) sits
between a victim's client and an in-process server and keeps every byte; the attacker
then works only from that recording, the shared secret and, for forward secrecy, the
long-term RSA private keys. What the attacker computes is written from docs/PROTOCOL.md
(HKDF, AES-GCM, OAEP labels), not with the code under test.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import os
import struct
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory
from twisted.protocols import portforward
from twisted.protocols.basic import Int32StringReceiver
from twisted.trial.unittest import TestCase

from messenger.wire import handshake, jim
from messenger.wire.handshake import ClientHandshake, HandshakeError, ServerHandshake
from tests.support.jimclient import JimTestClient, connect, new_user
from tests.support.keys import rsa_key
from tests.support.server import SECRET, start_server

PASSWORD = "correct horse battery"
OAEP_LABEL_FREE = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                               label=None)


# -- a recording man in the middle --------------------------------------------------------

class _TapClient(portforward.ProxyClient):
    def dataReceived(self, data: bytes) -> None:
        self.peer.factory.s2c += data
        super().dataReceived(data)


class _TapClientFactory(portforward.ProxyClientFactory):
    protocol = _TapClient
    noisy = False


class _TapServer(portforward.ProxyServer):
    clientProtocolFactory = _TapClientFactory

    def dataReceived(self, data: bytes) -> None:
        self.factory.c2s += data
        super().dataReceived(data)


class Tap(portforward.ProxyFactory):
    """Forwards one loopback port to the server and records both directions' bytes."""

    protocol = _TapServer
    noisy = False

    def __init__(self, port: int) -> None:
        super().__init__("127.0.0.1", port)
        self.c2s = bytearray()
        self.s2c = bytearray()

    @staticmethod
    def frames(stream: bytes) -> list[bytes]:
        """The complete length-prefixed frames of a recorded stream."""
        frames, at = [], 0
        while at + 4 <= len(stream):
            (length,) = struct.unpack(">I", stream[at:at + 4])
            if at + 4 + length > len(stream):
                break
            frames.append(bytes(stream[at + 4:at + 4 + length]))
            at += 4 + length
        return frames


def listen_tap(testcase: TestCase, server_port: int) -> tuple[Tap, int]:
    tap = Tap(server_port)
    port = reactor.listenTCP(0, tap, interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    return tap, port.getHost().port


@defer.inlineCallbacks
def connect_recording(testcase: TestCase, port: int, suites: tuple[str, ...],
                      key_name: str = "client") -> Any:
    """A JimTestClient whose handshake keeps every random value it draws (in ``drawn``)."""
    client = JimTestClient(suites=suites, key_name=key_name)
    client.drawn = []

    def random(size: int) -> bytes:
        value = os.urandom(size)
        client.drawn.append(value)
        return value
    client.handshake = ClientHandshake(SECRET, rsa_key(key_name, 2048), suites, random=random)
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    testcase.addCleanup(client.close)
    yield client.ready
    return client


def wait_closed(client: Any, timeout: float = 5.0) -> defer.Deferred[Any]:
    """Fires when the client's connection is closed; fails after ``timeout``."""
    d: defer.Deferred[Any] = defer.Deferred()
    client.closed.addBoth(lambda result: d.called or d.callback(result))
    return d.addTimeout(timeout, reactor)


# -- the attacker's arithmetic, from docs/PROTOCOL.md --------------------------------------

def hkdf(ikm: bytes, ns: bytes, nc: bytes, protocol: str, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ns + nc,
                info=f"{protocol} {label}".encode("ascii")).derive(ikm)


def gcm_open(key: bytes, direction: int, counter: int, payload: bytes) -> bytes | None:
    nonce = bytes([direction, 0, 0, 0]) + struct.pack(">Q", counter)
    try:
        return AESGCM(key).decrypt(nonce, payload, None)
    except InvalidTag:
        return None


def oaep_chunks(private: Any, payload: bytes, sid: bytes, direction: int,
                counter: int) -> bytes:
    """What the receiver's RSA key alone gets from an rsa-oaep payload: the chunks
    decrypted with their labels (or, without a label, as messenger/1 had them)."""
    size = (private.key_size + 7) // 8
    body = payload[:-32]
    out = b""
    for index in range(len(body) // size):
        label = sid + bytes([direction]) + struct.pack(">QI", counter, index)
        chunk = body[index * size:(index + 1) * size]
        for pad in (padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                 algorithm=hashes.SHA256(), label=label), OAEP_LABEL_FREE):
            try:
                out += private.decrypt(chunk, pad)
                break
            except ValueError:
                continue
    return out


def ctr(key: bytes, direction: int, counter: int, data: bytes) -> bytes:
    block = bytes([direction, 0, 0, 0]) + struct.pack(">Q", counter) + bytes(4)
    return Cipher(algorithms.AES(key), modes.CTR(block)).encryptor().update(data)


class Recording:
    """The handshake values an eavesdropper reads off a recorded connection."""

    def __init__(self, tap: Tap) -> None:
        self.c2s, self.s2c = Tap.frames(tap.c2s), Tap.frames(tap.s2c)
        challenge, response = json.loads(self.s2c[0]), json.loads(self.c2s[0])
        exchange, reply = json.loads(self.c2s[1]), json.loads(self.s2c[2])
        self.ns = base64.b64decode(challenge["nonce"])
        self.nc = base64.b64decode(response["nonce"])
        self.exchange, self.reply = exchange, reply
        self.encrypted = base64.b64decode(reply["secret"])
        self.suite = reply["suite"]
        self.phase3_c2s, self.phase3_s2c = self.c2s[2:], self.s2c[3:]

    def share(self, message: dict[str, Any]) -> bytes:
        return base64.b64decode(message["share"])

    def session_id(self) -> bytes:
        """SHA-256 of the DER transcript, rebuilt from the recorded frames [1] to [5].

        (A messenger/1 recording has no shares and no session id: 32 zero bytes.)
        """
        if "share" not in self.reply:
            return bytes(32)
        def tlv(tag: int, content: bytes) -> bytes:
            size = len(content)
            if size < 0x80:
                return bytes([tag, size]) + content
            length = size.to_bytes((size.bit_length() + 7) // 8, "big")
            return bytes([tag, 0x80 | len(length)]) + length + content

        def key(pem: str) -> bytes:
            return tlv(0x04, serialization.load_pem_public_key(pem.encode()).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
        utf8 = lambda text: tlv(0x0C, text.encode("utf-8"))  # noqa: E731
        der = tlv(0x30, utf8("messenger/2") + tlv(0x04, self.ns) + tlv(0x04, self.nc)
                  + key(self.exchange["public_key"]) + key(self.reply["public_key"])
                  + tlv(0x30, b"".join(utf8(name) for name in self.exchange["suites"]))
                  + utf8(self.suite) + tlv(0x04, self.encrypted)
                  + tlv(0x04, self.share(self.exchange)) + tlv(0x04, self.share(self.reply)))
        return sha256(der).digest()


# -- the tests ------------------------------------------------------------------------------

class SpliceTests(TestCase):
    """rsa-oaep: a recorded frame re-MACed into the attacker's own session is refused."""

    @defer.inlineCallbacks
    def test_spliced_authenticate_frame_refused(self) -> None:
        """A victim's recorded `authenticate`, re-tagged in the attacker's session: closed."""
        server = yield start_server(self)
        owner = yield connect(self, server.tcp_port)
        reply = yield owner.request("register", **new_user("victim", PASSWORD))
        self.assertEqual(reply["response"], 201)
        yield owner.close()

        tap, tap_port = listen_tap(self, server.tcp_port)
        victim = yield connect(self, tap_port, suites=("rsa-oaep",), key_name="victim")
        reply = yield victim.request("authenticate",
                                     user={"account_name": "victim", "password": PASSWORD})
        self.assertEqual(reply["response"], 200)   # the recorded frame is a good login
        recorded = Tap.frames(tap.c2s)[2]          # [2], [4], then the authenticate frame
        yield victim.request("quit")               # the victim leaves: no 409 "already
        yield wait_closed(victim)                  # connected" for the attacker's try

        attacker = yield connect(self, server.tcp_port, suites=("rsa-oaep",),
                                 key_name="attacker")
        channel = attacker.channel                 # the attacker knows its own MAC key
        chunks = recorded[:-32]
        tag = hmac.new(channel._send_mac, b"\x01" + struct.pack(">Q", channel._send_count)
                       + chunks, sha256).digest()
        channel._send_count += 1
        attacker.sendString(chunks + tag)
        outcome = yield defer.race([wait_closed(attacker), attacker.wait_unmatched()])
        self.assertEqual(attacker.replies, [], "the server answered the spliced frame")
        self.assertEqual(outcome[0], 0)            # the connection was closed instead


class ExponentTests(TestCase):
    """Public exponents other than 65537, on both sides, over real sockets."""

    @defer.inlineCallbacks
    def test_huge_client_exponent_refused(self) -> None:
        """A key_exchange with e close to n gets the plain 400, then the server closes."""
        server = yield start_server(self)
        modulus = rsa_key("client").public_key().public_numbers().n
        for exponent in (modulus - 2, 3):
            public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
            client = _SwappedKeyClient(public.public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii"))
            yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.tcp_port),
                                  client)
            yield client.closed.addTimeout(5, reactor)
            self.assertEqual(len(client.received), 3)    # [1], [3], then the refusal
            self.assertEqual(json.loads(client.received[2]), {
                "response": 400, "error": "'public_key': public exponent must be 65537"})

    @defer.inlineCallbacks
    def test_client_refuses_server_key_with_exponent_3(self) -> None:
        """A server whose (real, signing) key has e = 3 is refused by the client."""
        factory = Factory.forProtocol(lambda: _HandshakeOnlyServer(legacy_e3_key()))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = JimTestClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                              client)
        self.addCleanup(client.close)
        error = yield self.assertFailure(client.ready, HandshakeError)
        self.assertEqual(error.message,
                         "server key is unacceptable: public exponent must be 65537")
        yield wait_closed(client)


class ForwardSecrecyTests(TestCase):
    """A recorded session does not open with the long-term RSA private keys alone."""

    @defer.inlineCallbacks
    def _recorded_session(self, suite: str) -> Any:
        server = yield start_server(self)
        tap, tap_port = listen_tap(self, server.tcp_port)
        client = yield connect_recording(self, tap_port, (suite,))
        reply = yield client.request("register", **new_user("recorded", PASSWORD))
        self.assertEqual(reply["response"], 201)
        yield client.close()
        return Recording(tap), client.drawn        # drawn: Nc, then the X25519 private key

    @staticmethod
    def _z(recording: Recording, drawn: list[bytes]) -> bytes:
        """Z, with the client's ephemeral key (which only the client ever held)."""
        ephemeral = X25519PrivateKey.from_private_bytes(drawn[1])
        return ephemeral.exchange(X25519PublicKey.from_public_bytes(
            recording.share(recording.reply)))

    @defer.inlineCallbacks
    def test_aes_gcm(self) -> None:
        """aes-256-gcm: keys from S alone open no recorded frame; keys from S || Z do."""
        recording, drawn = yield self._recorded_session("aes-256-gcm")
        s = rsa_key("client").decrypt(recording.encrypted, OAEP_LABEL_FREE)  # a stolen key
        request, answer = recording.phase3_c2s[0], recording.phase3_s2c[0]
        for ikm in (s, s + bytes(32)):
            for protocol in ("messenger/1", "messenger/2", handshake.PROTOCOL):
                c2s = hkdf(ikm, recording.ns, recording.nc, protocol, "aes-256-gcm c2s")
                s2c = hkdf(ikm, recording.ns, recording.nc, protocol, "aes-256-gcm s2c")
                self.assertIsNone(gcm_open(c2s, 1, 0, request))
                self.assertIsNone(gcm_open(s2c, 2, 0, answer))
        z = self._z(recording, drawn)
        c2s = hkdf(s + z, recording.ns, recording.nc, "messenger/2", "aes-256-gcm c2s")
        opened = gcm_open(c2s, 1, 0, request)
        self.assertEqual(json.loads(opened)["user"]["password"], PASSWORD)

    @defer.inlineCallbacks
    def test_rsa_oaep(self) -> None:
        """rsa-oaep: the server's private key and S give only masked bytes; S || Z reads."""
        recording, drawn = yield self._recorded_session("rsa-oaep")
        s = rsa_key("client").decrypt(recording.encrypted, OAEP_LABEL_FREE)  # a stolen key
        sid = recording.session_id()
        request = recording.phase3_c2s[0]
        masked = oaep_chunks(rsa_key("server"), request, sid, 1, 0)
        self.assertGreater(len(masked), 100)      # the RSA layer itself does come off
        self.assertNotIn(PASSWORD.encode(), masked)
        for protocol in ("messenger/1", "messenger/2"):
            key = hkdf(s, recording.ns, recording.nc, protocol, "rsa-oaep enc c2s")
            self.assertNotIn(PASSWORD.encode(), ctr(key, 1, 0, masked))
        key = hkdf(s + self._z(recording, drawn), recording.ns, recording.nc, "messenger/2",
                   "rsa-oaep enc c2s")
        opened = json.loads(ctr(key, 1, 0, masked))
        self.assertEqual(opened["user"]["password"], PASSWORD)


# -- helpers ---------------------------------------------------------------------------------

@functools.cache
def legacy_e3_key() -> rsa.RSAPrivateKey:
    """A real RSA key with the legacy public exponent 3 (it can sign)."""
    return rsa.generate_private_key(public_exponent=3, key_size=2048)


class _SwappedKeyClient(Int32StringReceiver):
    """Runs the client handshake but sends another public key in its key_exchange."""

    def __init__(self, public_pem: str) -> None:
        self.steps = ClientHandshake(SECRET, rsa_key("client"))
        self.public_pem = public_pem
        self.received: list[bytes] = []
        self.closed: defer.Deferred[None] = defer.Deferred()

    def stringReceived(self, data: bytes) -> None:
        self.received.append(data)
        if len(self.received) > 2:     # the answer to the key exchange: done either way
            self.transport.loseConnection()
            return
        frame, _ = self.steps.receive(data)
        if len(self.received) == 2:
            exchange = jim.decode(frame)
            exchange["public_key"] = self.public_pem
            frame = jim.encode(exchange)
        self.sendString(frame)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


class _HandshakeOnlyServer(Int32StringReceiver):
    """A loopback peer that runs the real ServerHandshake with a given key, nothing more."""

    def __init__(self, key: Any) -> None:
        self.handshake = ServerHandshake(SECRET, key)

    def connectionMade(self) -> None:
        self.sendString(self.handshake.start())

    def stringReceived(self, data: bytes) -> None:
        try:
            reply, _ = self.handshake.receive(data)
        except HandshakeError:
            self.transport.loseConnection()
            return
        self.sendString(reply)
