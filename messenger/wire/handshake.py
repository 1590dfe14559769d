"""Phases 1 and 2 of a connection, on both sides, as state machines without I/O.

Phase 1 is a mutual HMAC challenge proving that both ends know the deployment's shared
secret. Phase 2 is the key exchange: the client sends its RSA public key, the suites it
accepts and an ephemeral X25519 share; the server answers with its long-term key, the
chosen suite, its own ephemeral X25519 share, a fresh 32-byte secret encrypted to the
client's key (RSA-OAEP-SHA256) and an RSA-PSS signature over the transcript (a DER
SEQUENCE of all of these, see `messenger.wire.transcript`). The session keys derive from
the RSA-carried secret and the X25519 shared secret together (`messenger.wire.kex`).

`ServerHandshake` and `ClientHandshake` take frame payloads in and give payloads out; the
protocols in ``server/`` and ``client/`` only move bytes. Each ends with an `Established`
holding the phase-3 `Channel`.

Thread-safety: `ServerHandshake.receive` (and `ClientHandshake.receive`) is synchronous,
makes no reactor call and touches only its own object, so the server may run it in a
worker thread (its RSA private-key work is the expensive part); the caller gives one
handshake one frame at a time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from messenger.wire import jim, keys
from messenger.wire.errors import BadRequest, Forbidden, MessengerError
from messenger.wire.kex import (
    SHARE_SIZE,
    UnusableShare,
    derive_key,
    make_channel,
    new_ephemeral,
    share_of,
    shared_secret,
)
from messenger.wire.suites import CLIENT_TO_SERVER, OAEP, SERVER_TO_CLIENT, SUITES, Channel
from messenger.wire.transcript import (
    PROTOCOL,
    VERSION,
    TranscriptFields,
    parse_transcript,
    session_id,
    transcript,
)

__all__ = [
    "PROTOCOL", "VERSION", "ClientHandshake", "Established", "HandshakeError",
    "ServerHandshake", "ServerKeyChanged", "TranscriptFields", "derive_key",
    "make_channel", "parse_transcript", "session_id", "transcript",
]

NONCE_SIZE = 32
SECRET_SIZE = 32
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
HMAC_ERROR = "hmac error"


class HandshakeError(MessengerError):
    """The handshake failed; ``reply`` is the plain frame to send before closing, if any."""

    def __init__(self, message: str, code: int = 400, reply: bytes | None = None) -> None:
        super().__init__(message, code)
        self.reply = reply


class ServerKeyChanged(HandshakeError):
    """The server presented a key other than the one pinned for its address."""

    def __init__(self, address: str, pinned: str, presented: str, known_servers: str) -> None:
        super().__init__(
            f"server key changed: {address} presented {presented} but {pinned} is pinned in"
            f" {known_servers}. If the server's key was replaced on purpose, remove that line"
            " (or run with --accept-new-key) to trust the new key.", 403)
        self.address = address
        self.pinned = pinned
        self.presented = presented


# -- primitives ---------------------------------------------------------------------------

def hmac_digest(secret: bytes, nonce: bytes) -> str:
    """Hex HMAC-SHA256 of a raw nonce under the shared secret."""
    return hmac.new(secret, nonce, sha256).hexdigest()


def digest_matches(secret: bytes, nonce: bytes, digest: Any) -> bool:
    """Constant-time check of a peer's hex digest."""
    if type(digest) is not str or len(digest) != 64 or not digest.isascii():
        return False
    return hmac.compare_digest(hmac_digest(secret, nonce), digest.lower())


def b64decode(name: str, value: Any, size: int | None = None) -> bytes:
    if type(value) is not str or len(value) > 8192:
        raise BadRequest(f"'{name}' must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"'{name}' must be a base64 string") from None
    if size is not None and len(raw) != size:
        raise BadRequest(f"'{name}' must encode {size} bytes")
    return raw


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass
class Established:
    """The outcome of a finished handshake."""

    channel: Channel
    suite: str
    server_fingerprint: str
    peer_key: rsa.RSAPublicKey
    session_id: bytes = b""   # SHA-256 of the DER transcript


def _plain(message: dict[str, Any]) -> bytes:
    return jim.encode(message)


def _decode_plain(payload: bytes, expected_action: str | None) -> dict[str, Any]:
    message = jim.decode(payload)
    if expected_action is not None and message.get("action") != expected_action:
        raise BadRequest(f"expected the '{expected_action}' step of the handshake")
    return message


# -- server side --------------------------------------------------------------------------

class ServerHandshake:
    """The server's half: send the challenge, check the response, answer the key exchange."""

    def __init__(self, secret: bytes, server_key: rsa.RSAPrivateKey,
                 suites: Sequence[str] = SUITES,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self._secret = secret
        self._key = server_key
        self._suites = tuple(suites)
        self._random = random
        self._server_nonce = random(NONCE_SIZE)
        self._client_nonce = b""
        self.state = "challenge"

    def start(self) -> bytes:
        """The first frame: the challenge."""
        return _plain({"action": "challenge", "version": VERSION,
                       "nonce": b64(self._server_nonce)})

    def receive(self, payload: bytes) -> tuple[bytes, Established | None]:
        """Take one client frame; return the reply and, at the end, the channel.

        Raises `HandshakeError` whose ``reply`` the caller sends before closing.
        """
        try:
            if self.state == "challenge":
                return self._on_response(payload), None
            if self.state == "keyx":
                return self._on_key_exchange(payload)
        except HandshakeError:
            self.state = "failed"
            raise
        except MessengerError as error:
            self.state = "failed"
            raise HandshakeError(error.message, error.code,
                                 _plain({"response": error.code, "error": error.message})) \
                from None
        raise HandshakeError("handshake already finished", 400)

    def _on_response(self, payload: bytes) -> bytes:
        message = _decode_plain(payload, "challenge_response")
        client_nonce = b64decode("nonce", message.get("nonce"), NONCE_SIZE)
        if not digest_matches(self._secret, self._server_nonce, message.get("digest")):
            raise HandshakeError(HMAC_ERROR, Forbidden.code,
                                 _plain({"response": Forbidden.code, "error": HMAC_ERROR}))
        self._client_nonce = client_nonce
        self.state = "keyx"
        return _plain({"response": 200, "digest": hmac_digest(self._secret, client_nonce)})

    def _on_key_exchange(self, payload: bytes) -> tuple[bytes, Established]:
        message = _decode_plain(payload, "key_exchange")
        try:
            client_key = keys.parse_public_pem(message.get("public_key"))
        except keys.InvalidPublicKey as error:
            raise BadRequest(f"'public_key': {error}") from None
        offered = message.get("suites")
        if (type(offered) is not list or not 1 <= len(offered) <= 8
                or any(type(s) is not str or len(s) > 32 or not s.isascii() for s in offered)):
            raise BadRequest("'suites' must be a list of 1 to 8 suite names")
        client_share = _client_share(message)
        chosen = next((s for s in self._suites if s in offered), None)
        if chosen is None:
            raise BadRequest("no common cipher suite; this server offers: "
                             + ", ".join(self._suites))
        secret = self._random(SECRET_SIZE)
        ephemeral = new_ephemeral(self._random)
        try:
            agreed = shared_secret(ephemeral, client_share)
        except UnusableShare:
            raise BadRequest("'share' is not a usable X25519 public key") from None
        encrypted = client_key.encrypt(secret, OAEP)
        server_public = self._key.public_key()
        server_share = share_of(ephemeral)
        der = transcript(TranscriptFields(
            self._server_nonce, self._client_nonce, keys.public_der(client_key),
            keys.public_der(server_public), tuple(offered), chosen, encrypted, client_share,
            server_share))
        signature = self._key.sign(der, PSS, hashes.SHA256())
        reply = _plain({"response": 200, "public_key": keys.public_pem(server_public),
                        "suite": chosen, "share": b64(server_share), "secret": b64(encrypted),
                        "signature": b64(signature)})
        session = session_id(der)
        channel = make_channel(chosen, SERVER_TO_CLIENT, secret, agreed, self._server_nonce,
                               self._client_nonce, session, self._key, client_key)
        self.state = "done"
        return reply, Established(channel, chosen, keys.fingerprint(server_public), client_key,
                                  session)


def _client_share(message: dict[str, Any]) -> bytes:
    """The client's X25519 share from [4]; a messenger/1 client (none) is told so."""
    if "share" not in message:
        raise BadRequest(f"key_exchange has no 'share': this server speaks {PROTOCOL}"
                         " (an ephemeral X25519 share is required); upgrade the client")
    return b64decode("share", message["share"], SHARE_SIZE)


# -- client side --------------------------------------------------------------------------

PinCheck = Callable[[rsa.RSAPublicKey], None]


class ClientHandshake:
    """The client's half: answer the challenge, check the server, verify the key exchange.

    ``check_server_key`` is the pinning hook: it is called with the server's public key
    once the transcript signature has verified, and raises (`ServerKeyChanged`) to
    refuse it.
    """

    def __init__(self, secret: bytes, client_key: rsa.RSAPrivateKey,
                 suites: Sequence[str] = SUITES,
                 check_server_key: PinCheck | None = None,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self._secret = secret
        self._key = client_key
        self._suites = tuple(suites)
        self._check_server_key = check_server_key
        self._random = random
        self._server_nonce = b""
        self._client_nonce = random(NONCE_SIZE)
        self._ephemeral: X25519PrivateKey | None = None
        self.state = "challenge"

    def receive(self, payload: bytes) -> tuple[bytes | None, Established | None]:
        """Take one server frame; return the frame to send (if any) and, at the end, the channel.

        Raises `HandshakeError` (or `ServerKeyChanged`) when the server fails a check.
        """
        try:
            message = jim.decode(payload)
        except BadRequest as error:
            raise HandshakeError(f"server sent an invalid handshake frame: {error.message}") \
                from None
        response = message.get("response")
        if isinstance(response, int) and response >= 400:
            text = message.get("error") if isinstance(message.get("error"), str) else "error"
            self.state = "failed"
            error = HandshakeError(f"Server rejected the connection: {text}", response)
            retry = message.get("retry_after")
            if type(retry) in (int, float) and 0 <= retry < 86400:
                error.extra["retry_after"] = retry  # a 429 says when to come back
            raise error
        if self.state == "challenge":
            return self._on_challenge(message), None
        if self.state == "digest":
            return self._on_digest(message), None
        if self.state == "keyx":
            return None, self._on_key_exchange(message)
        raise HandshakeError("unexpected frame after the handshake")

    def _on_challenge(self, message: dict[str, Any]) -> bytes:
        if message.get("action") != "challenge":
            raise HandshakeError("server did not start with a challenge")
        if type(message.get("version")) is not int or message.get("version") != VERSION:
            raise HandshakeError(f"server speaks protocol version {message.get('version')!r},"
                                 f" this client speaks {VERSION} ({PROTOCOL}): upgrade the"
                                 " older side")
        try:
            self._server_nonce = b64decode("nonce", message.get("nonce"), NONCE_SIZE)
        except BadRequest as error:
            raise HandshakeError(f"server challenge is malformed: {error.message}") from None
        self.state = "digest"
        return _plain({"action": "challenge_response",
                       "digest": hmac_digest(self._secret, self._server_nonce),
                       "nonce": b64(self._client_nonce)})

    def _on_digest(self, message: dict[str, Any]) -> bytes:
        if message.get("response") != 200 or not digest_matches(
                self._secret, self._client_nonce, message.get("digest")):
            self.state = "failed"
            raise HandshakeError("server failed the HMAC check: it does not know the shared"
                                 " secret", 403)
        self.state = "keyx"
        self._ephemeral = new_ephemeral(self._random)
        return _plain({"action": "key_exchange", "public_key": keys.public_pem(
            self._key.public_key()), "suites": list(self._suites),
            "share": b64(share_of(self._ephemeral))})

    def _on_key_exchange(self, message: dict[str, Any]) -> Established:
        self.state = "failed"
        if message.get("response") != 200:
            raise HandshakeError("server answered the key exchange without a 200")
        try:
            server_key = keys.parse_public_pem(message.get("public_key"))
        except keys.InvalidPublicKey as error:
            raise HandshakeError(f"server key is unacceptable: {error}") from None
        suite = message.get("suite")
        if suite not in self._suites:
            raise HandshakeError(f"server chose a suite this client did not offer: {suite!r}")
        try:
            server_share = b64decode("share", message.get("share"), SHARE_SIZE)
            encrypted = b64decode("secret", message.get("secret"))
            signature = b64decode("signature", message.get("signature"))
        except BadRequest as error:
            raise HandshakeError(f"server key exchange is malformed: {error.message}") from None
        assert self._ephemeral is not None
        der = transcript(TranscriptFields(
            self._server_nonce, self._client_nonce, keys.public_der(self._key.public_key()),
            keys.public_der(server_key), self._suites, suite, encrypted,
            share_of(self._ephemeral), server_share))
        try:
            server_key.verify(signature, der, PSS, hashes.SHA256())
        except InvalidSignature:
            raise HandshakeError("server's handshake signature is invalid", 403) from None
        if self._check_server_key is not None:
            # After the signature: the server has proved it holds this key's private half,
            # so a trust-on-first-use hook may record it.
            self._check_server_key(server_key)
        try:
            secret = self._key.decrypt(encrypted, OAEP)
        except ValueError:
            raise HandshakeError("server's session secret does not decrypt") from None
        if len(secret) != SECRET_SIZE:
            raise HandshakeError("server's session secret has the wrong size")
        try:
            agreed = shared_secret(self._ephemeral, server_share)
        except UnusableShare:
            raise HandshakeError("server's X25519 share is unusable") from None
        self._ephemeral = None  # forward secrecy: nothing of it outlives the handshake
        session = session_id(der)
        channel = make_channel(suite, CLIENT_TO_SERVER, secret, agreed, self._server_nonce,
                               self._client_nonce, session, self._key, server_key)
        self.state = "done"
        return Established(channel, suite, keys.fingerprint(server_key), server_key, session)
