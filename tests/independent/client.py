"""A minimal, blocking Messenger client written only from docs/PROTOCOL.md.

It deliberately imports nothing from the ``messenger`` package: it is the proof that the
specification is enough to talk to the server.  It covers framing (section 2), the HMAC
challenge (section 4, both directions checked), the key exchange with both cipher suites,
ephemeral X25519 shares and signature verification over the DER transcript (section 5,
built with pyasn1), HKDF from S || Z (section 6), the phase-3 channels with rsa-oaep's
labels and mask (section 7) and JIM requests, replies, pushes and probe answers
(section 8), and files ("Files": binary file frames, uploads with progress, downloads by
reads).
"""

import base64
import binascii
import collections
import hashlib
import hmac
import json
import os
import socket
import struct
import time

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import char, namedtype, univ

PROTOCOL = "messenger/2"
VERSION = 2
SUITES = ("aes-256-gcm", "rsa-oaep")
HANDSHAKE_LIMIT = 16 * 1024
FRAME_LIMIT = 1024 * 1024
C2S = 0x01
S2C = 0x02
UPLOAD_DATA, READ, FILE_DATA = 0x01, 0x02, 0x03   # binary file frames ("Files")

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def oaep_with_label(label):
    """RSA-OAEP, SHA-256, MGF1-SHA-256, with an OAEP label (section 7, rsa-oaep)."""
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                        label=label)


class ProtocolError(Exception):
    """The peer broke the protocol; the connection was (or must be) closed."""


class HandshakeRefused(ProtocolError):
    """The server answered a handshake step with an error frame (``response`` >= 400)."""

    def __init__(self, frame):
        ProtocolError.__init__(self, frame.get("error"))
        self.frame = frame


class ConnectionClosed(ProtocolError):
    """The server closed the TCP connection."""


# --------------------------------------------------------------------------- encodings


def b64encode(raw):
    """Standard, padded base64 (section 1)."""
    return base64.b64encode(raw).decode("ascii")


def b64decode(text, limit=8192):
    """Strict standard padded base64: anything else is a protocol error."""
    if not isinstance(text, str) or len(text) > limit:
        raise ProtocolError("not a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ProtocolError(f"bad base64: {e}")
    if b64encode(raw) != text:  # refuses unpadded / non-canonical text
        raise ProtocolError("non-canonical base64")
    return raw


def encode_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _refuse_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number too large for a double: {text}")
    return value


def decode_json(payload):
    """One JSON object in UTF-8 (section 1), else ProtocolError."""
    try:
        text = payload.decode("utf-8")
        if text.startswith("\ufeff"):
            raise ValueError("byte-order mark")
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"frame is not valid JSON: {e}")
    if not isinstance(obj, dict):
        raise ProtocolError("frame is not a JSON object")
    return obj


def hmac_hex(key, message):
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def spki_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def fingerprint(public_key):
    """Section 11: sha256: + hex SHA-256 of the DER SubjectPublicKeyInfo."""
    return "sha256:" + hashlib.sha256(spki_der(public_key)).hexdigest()


def load_public_key(pem):
    """The 'accepted public keys' rule of section 5."""
    if not isinstance(pem, str) or len(pem) > 4096:
        raise ProtocolError("public key must be a PEM string of at most 4096 characters")
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError) as e:
        raise ProtocolError(f"public key is not a valid PEM SubjectPublicKeyInfo: {e}")
    if not isinstance(key, rsa.RSAPublicKey):
        raise ProtocolError("public key must be an RSA key")
    if not 2048 <= key.key_size <= 4096:
        raise ProtocolError("RSA key must have 2048 to 4096 bits")
    if key.public_numbers().e != 65537:
        raise ProtocolError("public exponent must be 65537")
    return key


def raw_share(private):
    """The 32-byte X25519 share (RFC 7748 public key) of an ephemeral private key."""
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


def x25519(private, share):
    """Z = X25519(private, share); an all-zero Z (a low-order share) is refused."""
    if len(share) != 32:
        raise ProtocolError("an X25519 share is 32 bytes")
    try:
        z = private.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        raise ProtocolError("the X25519 share gives an all-zero secret")
    if z == bytes(32):
        raise ProtocolError("the X25519 share gives an all-zero secret")
    return z


# --------------------------------------------------------------------------- transcript


class _Suites(univ.SequenceOf):
    componentType = char.UTF8String()


class MessengerTranscript(univ.Sequence):
    """The ASN.1 type of section 5."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("protocol", char.UTF8String()),
        namedtype.NamedType("serverNonce", univ.OctetString()),
        namedtype.NamedType("clientNonce", univ.OctetString()),
        namedtype.NamedType("clientKey", univ.OctetString()),
        namedtype.NamedType("serverKey", univ.OctetString()),
        namedtype.NamedType("offeredSuites", _Suites()),
        namedtype.NamedType("suite", char.UTF8String()),
        namedtype.NamedType("encryptedSecret", univ.OctetString()),
        namedtype.NamedType("clientShare", univ.OctetString()),
        namedtype.NamedType("serverShare", univ.OctetString()),
    )


def transcript(ns, nc, client_key_der, server_key_der, offered, suite, encrypted, xc, xs):
    """DER of MessengerTranscript, built with pyasn1."""
    t = MessengerTranscript()
    t["protocol"] = PROTOCOL
    t["serverNonce"] = ns
    t["clientNonce"] = nc
    t["clientKey"] = client_key_der
    t["serverKey"] = server_key_der
    suites = _Suites()
    for i, name in enumerate(offered):
        suites[i] = name
    t["offeredSuites"] = suites
    t["suite"] = suite
    t["encryptedSecret"] = encrypted
    t["clientShare"] = xc
    t["serverShare"] = xs
    return der_encoder.encode(t)


def session_id(t):
    """SID = SHA-256 of the DER transcript (section 5)."""
    return hashlib.sha256(t).digest()


def derive(ikm, ns, nc, label):
    """Section 6: IKM = S || Z."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ns + nc,
                info=(f"{PROTOCOL} {label}").encode("ascii")).derive(ikm)


# --------------------------------------------------------------------------- channels


class GcmChannel:
    """aes-256-gcm (section 7), client side."""

    suite = "aes-256-gcm"

    def __init__(self, ikm, ns, nc):
        self.seal_key = AESGCM(derive(ikm, ns, nc, "aes-256-gcm c2s"))
        self.open_key = AESGCM(derive(ikm, ns, nc, "aes-256-gcm s2c"))
        self.sent = 0
        self.received = 0

    @staticmethod
    def nonce(direction, counter):
        return bytes([direction]) + b"\x00\x00\x00" + struct.pack(">Q", counter)

    def seal(self, plaintext):
        payload = self.seal_key.encrypt(self.nonce(C2S, self.sent), plaintext, None)
        self.sent += 1
        return payload

    def open(self, payload):
        try:
            plaintext = self.open_key.decrypt(self.nonce(S2C, self.received), payload, None)
        except (InvalidTag, ValueError):
            raise ProtocolError("frame failed authentication")
        self.received += 1
        return plaintext


class RsaOaepChannel:
    """rsa-oaep (section 7), client side: mask, chunk with labels to the server key, tag."""

    suite = "rsa-oaep"

    def __init__(self, ikm, ns, nc, sid, my_key, server_key):
        self.my_key = my_key
        self.server_key = server_key
        self.sid = sid
        self.mac_c2s = derive(ikm, ns, nc, "rsa-oaep mac c2s")
        self.mac_s2c = derive(ikm, ns, nc, "rsa-oaep mac s2c")
        self.enc_c2s = derive(ikm, ns, nc, "rsa-oaep enc c2s")
        self.enc_s2c = derive(ikm, ns, nc, "rsa-oaep enc s2c")
        self.sent = 0
        self.received = 0

    @staticmethod
    def k(key):
        return (key.key_size + 7) // 8

    @staticmethod
    def mask(key, direction, counter, data):
        """AES-256-CTR from direction || 000000 || counter64 || 00000000 (both ways)."""
        block = bytes([direction]) + b"\x00\x00\x00" + struct.pack(">Q", counter) + bytes(4)
        return Cipher(algorithms.AES(key), modes.CTR(block)).encryptor().update(data)

    @staticmethod
    def label(sid, direction, counter, index):
        """L_i = SID || direction || counter (uint64 BE) || i (uint32 BE)."""
        return sid + bytes([direction]) + struct.pack(">Q", counter) + struct.pack(">I", index)

    def seal(self, plaintext):
        k = self.k(self.server_key)
        size = k - 66
        masked = self.mask(self.enc_c2s, C2S, self.sent, plaintext)
        pieces = [masked[i:i + size] for i in range(0, len(masked), size)] or [b""]
        chunks = b"".join(
            self.server_key.encrypt(piece, oaep_with_label(self.label(self.sid, C2S, self.sent,
                                                                      i)))
            for i, piece in enumerate(pieces))
        tag = hmac.new(self.mac_c2s, bytes([C2S]) + struct.pack(">Q", self.sent) + chunks,
                       hashlib.sha256).digest()
        self.sent += 1
        return chunks + tag

    def open(self, payload):
        k = self.k(self.my_key)
        body, tag = payload[:-32], payload[-32:]
        if len(payload) < k + 32 or len(body) % k:
            raise ProtocolError("rsa-oaep frame has a wrong length")
        expected = hmac.new(self.mac_s2c, bytes([S2C]) + struct.pack(">Q", self.received) + body,
                            hashlib.sha256).digest()
        if not hmac.compare_digest(tag, expected):
            raise ProtocolError("frame failed authentication")
        try:
            masked = b"".join(
                self.my_key.decrypt(body[i:i + k], oaep_with_label(
                    self.label(self.sid, S2C, self.received, i // k)))
                for i in range(0, len(body), k))
        except ValueError:
            raise ProtocolError("rsa-oaep chunk does not decrypt")
        plaintext = self.mask(self.enc_s2c, S2C, self.received, masked)
        self.received += 1
        return plaintext


# --------------------------------------------------------------------------- connection


def new_id():
    """32 lowercase hex digits, 128 random bits (section 8)."""
    return os.urandom(16).hex()


class Client:
    """One connection to a Messenger server.

    ``connect()`` runs phases 1 and 2; then ``request()`` sends a request and returns its
    reply, queueing pushes (``pushes``) and answering probes on the way.
    """

    def __init__(self, host, port, shared_secret, key, suites=SUITES, timeout=10.0,
                 pinned=None, answer_probes=True):
        if isinstance(shared_secret, str):
            shared_secret = shared_secret.strip().encode("utf-8")
        self.host = host
        self.port = port
        self.shared_secret = shared_secret
        self.key = key
        self.offered = list(suites)
        self.timeout = timeout
        self.pinned = pinned
        self.answer_probes = answer_probes
        self.sock = None
        self.channel = None
        self.server_key = None
        self.suite = None
        self.fingerprint = None
        self.pushes = collections.deque()
        self.file_data = collections.deque()   # (file id, offset, bytes), in arrival order
        self.probes_answered = 0
        self.closed = False
        self._buffer = bytearray()
        self.before_close = []

    # ---- framing (section 2)

    def open_socket(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.settimeout(self.timeout)
        return self.sock

    def send_frame(self, payload):
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def _fill(self):
        """Read more bytes into the receive buffer (socket timeouts propagate)."""
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise ConnectionClosed("connection closed by the server")
        self._buffer += chunk

    def recv_frame(self, limit=None):
        """One whole frame.  A timeout leaves partial data buffered for the next call."""
        if limit is None:
            limit = FRAME_LIMIT if self.channel is not None else HANDSHAKE_LIMIT
        while len(self._buffer) < 4:
            self._fill()
        (length,) = struct.unpack(">I", self._buffer[:4])
        if length > limit:
            raise ProtocolError(f"frame too large ({length} bytes)")
        while len(self._buffer) < 4 + length:
            self._fill()
        payload = bytes(self._buffer[4:4 + length])
        del self._buffer[:4 + length]
        return payload

    def recv_plain(self):
        return decode_json(self.recv_frame())

    # ---- handshake (sections 4 and 5)

    def connect(self):
        self.open_socket()
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise
        return self

    def _check_refusal(self, frame):
        code = frame.get("response")
        if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
            raise HandshakeRefused(frame)

    def _handshake(self):
        # [1]
        challenge = self.recv_plain()
        self._check_refusal(challenge)
        if challenge.get("action") != "challenge":
            raise ProtocolError("expected a challenge")
        version = challenge.get("version")
        if version != VERSION or isinstance(version, bool):
            raise ProtocolError(f"the server speaks protocol version {version!r}, we speak"
                                f" {VERSION}")
        ns = b64decode(challenge.get("nonce"))
        if len(ns) != 32:
            raise ProtocolError("server nonce is not 32 bytes")
        # [2]
        nc = os.urandom(32)
        self.send_frame(encode_json({"action": "challenge_response",
                                     "digest": hmac_hex(self.shared_secret, ns),
                                     "nonce": b64encode(nc)}))
        # [3]
        reply = self.recv_plain()
        self._check_refusal(reply)
        digest = reply.get("digest")
        if reply.get("response") != 200 or not isinstance(digest, str):
            raise ProtocolError("unexpected reply to challenge_response")
        if not hmac.compare_digest(digest.lower().encode("utf-8", "replace"),
                                   hmac_hex(self.shared_secret, nc).encode("ascii")):
            raise ProtocolError("the server failed the HMAC check")
        # [4]
        my_public = self.key.public_key()
        ephemeral = X25519PrivateKey.generate()
        xc = raw_share(ephemeral)
        self.send_frame(encode_json({"action": "key_exchange", "public_key": spki_pem(my_public),
                                     "suites": self.offered, "share": b64encode(xc)}))
        # [5]
        reply = self.recv_plain()
        self._check_refusal(reply)
        if reply.get("response") != 200:
            raise ProtocolError("unexpected reply to key_exchange")
        server_key = load_public_key(reply.get("public_key"))
        suite = reply.get("suite")
        if suite not in self.offered or suite not in SUITES:
            raise ProtocolError(f"the server chose a suite we did not offer: {suite!r}")
        xs = b64decode(reply.get("share"))
        if len(xs) != 32:
            raise ProtocolError("the server's X25519 share is not 32 bytes")
        encrypted = b64decode(reply.get("secret"))
        signature = b64decode(reply.get("signature"))
        t = transcript(ns, nc, spki_der(my_public), spki_der(server_key), self.offered,
                       suite, encrypted, xc, xs)
        try:
            server_key.verify(signature, t, PSS, hashes.SHA256())
        except InvalidSignature:
            raise ProtocolError("bad transcript signature")
        fp = fingerprint(server_key)
        if self.pinned is not None and fp != self.pinned:
            raise ProtocolError(f"server key changed: presented {fp} but {self.pinned} is pinned")
        try:
            secret = self.key.decrypt(encrypted, OAEP)
        except ValueError:
            raise ProtocolError("the secret does not decrypt")
        if len(secret) != 32:
            raise ProtocolError("the session secret is not 32 bytes")
        z = x25519(ephemeral, xs)
        del ephemeral  # forward secrecy: the private half is not kept
        self.server_key = server_key
        self.suite = suite
        self.fingerprint = fp
        self.transcript = t
        self.session_id = session_id(t)
        if suite == "aes-256-gcm":
            self.channel = GcmChannel(secret + z, ns, nc)
        else:
            self.channel = RsaOaepChannel(secret + z, ns, nc, self.session_id, self.key,
                                          server_key)

    # ---- phase 3 (section 8)

    def send_plaintext(self, plaintext):
        """Seal arbitrary bytes (for malformed-request tests)."""
        self.send_frame(self.channel.seal(plaintext))

    def send_message(self, message):
        self.send_plaintext(encode_json(message))

    def receive_message(self):
        """One decrypted phase-3 JSON object; probes are answered here. Binary file
        frames ("Files": first byte 0x01, 0x02 or 0x03) read meanwhile are queued in
        ``file_data`` as (file id, offset, bytes)."""
        while True:
            frame = self.receive_any()
            if frame is not None:
                return frame

    def receive_any(self):
        """One phase-3 frame: a JSON object is returned (probes answered), a binary
        file frame is queued in ``file_data`` and None returned."""
        plaintext = self.channel.open(self.recv_frame())
        if plaintext[:1] in (b"\x01", b"\x02", b"\x03"):
            if plaintext[0] != FILE_DATA or len(plaintext) < 17:
                raise ProtocolError(f"unexpected binary frame of type {plaintext[0]}")
            file_id, offset = struct.unpack(">QQ", plaintext[1:17])
            self.file_data.append((file_id, offset, plaintext[17:]))
            return None
        frame = decode_json(plaintext)
        if frame.get("action") == "probe" and "id" in frame and self.answer_probes:
            self.send_message({"response": 200, "id": frame["id"], "time": time.time()})
            self.probes_answered += 1
        return frame

    def request(self, action, **fields):
        """Send one request with a fresh id; return its reply (pushes are queued)."""
        message = {"action": action, "id": new_id(), "time": time.time()}
        message.update(fields)
        return self.send_request(message)

    def send_request(self, message):
        """Send a ready-made request (any shape) and wait for the reply with its id."""
        self.send_message(message)
        rid = message.get("id")
        return self.wait_reply(rid if isinstance(rid, str) else None)

    def wait_reply(self, request_id=None):
        """The next reply whose ``id`` is ``request_id`` or null (any reply if None)."""
        while True:
            frame = self.receive_message()
            if "response" in frame and "action" not in frame:
                if request_id is None or frame.get("id") in (request_id, None):
                    return frame
                raise ProtocolError(f"reply to an unknown request: {frame!r}")
            if frame.get("action") != "probe":
                self.pushes.append(frame)

    def wait_push(self, action, timeout=5.0, match=None):
        """The next push with this ``action`` (earlier queued ones first)."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in list(self.pushes):
                if frame.get("action") == action and (match is None or match(frame)):
                    self.pushes.remove(frame)
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {action!r} push within {timeout} s")
            self.sock.settimeout(remaining)
            try:
                frame = self.receive_message()
            except TimeoutError:
                raise TimeoutError(f"no {action!r} push within {timeout} s")
            finally:
                if self.sock is not None:
                    self.sock.settimeout(self.timeout)
            if frame.get("action") != "probe":
                self.pushes.append(frame)

    def pump(self, seconds):
        """Read (and queue) everything for a while, answering probes."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.sock.settimeout(remaining)
            try:
                frame = self.receive_message()
            except TimeoutError:
                return
            finally:
                if self.sock is not None:
                    self.sock.settimeout(self.timeout)
            if frame.get("action") != "probe":
                self.pushes.append(frame)

    def wait_closed(self, timeout=5.0):
        """Read until the server closes; return the frames seen before (decrypted).

        Probes are not answered here.  On TimeoutError the frames read so far stay in
        ``self.before_close`` and a later call goes on from there.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the server did not close the connection")
            self.sock.settimeout(remaining)
            try:
                payload = self.recv_frame()
            except ConnectionClosed:
                frames, self.before_close = self.before_close, []
                return frames
            except TimeoutError:
                raise TimeoutError("the server did not close the connection")
            finally:
                if self.sock is not None:
                    self.sock.settimeout(self.timeout)
            self.before_close.append(decode_json(self.channel.open(payload)) if self.channel
                                     else decode_json(payload))

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
        self.closed = True

    # ---- conveniences

    def login(self, name, password, remember=None):
        fields = {"user": {"account_name": name, "password": password}}
        if remember is not None:
            fields["remember"] = remember
        return self.request("authenticate", **fields)

    def register(self, name, password, email, **extra):
        return self.request("register", user={"account_name": name, "password": password,
                                              "email": email}, **extra)

    # ---- files ("Files")

    def send_chunk(self, upload_id, offset, data):
        """One upload-data frame: 0x01, upload id, offset (uint64 each), the bytes."""
        self.send_plaintext(bytes([UPLOAD_DATA]) + struct.pack(">QQ", upload_id, offset)
                            + data)

    def send_read(self, file_id, offset, length):
        """One read frame: 0x02, file id, offset (uint64), length (uint32)."""
        self.send_plaintext(bytes([READ]) + struct.pack(">QQI", file_id, offset, length))

    def upload(self, data, name="file.bin", mime="application/octet-stream",
               chunk=60000, window=4 * 1024 * 1024):
        """file_upload, chunks at most ``window`` bytes beyond the last file_progress,
        file_finish; returns the finish reply."""
        reply = self.request("file_upload", name=name, size=len(data), mime=mime,
                             sha256=hashlib.sha256(data).hexdigest())
        if reply.get("response") not in (200, 201):
            return reply
        upload_id, offset = reply["upload_id"], reply["offset"]
        confirmed = offset
        while offset < len(data):
            while offset < len(data) and offset - confirmed < window:
                self.send_chunk(upload_id, offset, data[offset:offset + chunk])
                offset += len(data[offset:offset + chunk])
            if offset < len(data):
                push = self.wait_push("file_progress",
                                      match=lambda p: p.get("upload_id") == upload_id)
                confirmed = push["offset"]
        return self.request("file_finish", upload_id=upload_id)

    def download(self, file_id, size, read=512 * 1024):
        """Read ``size`` bytes of a file this connection was granted (file_get first)."""
        for offset in range(0, size, read):
            self.send_read(file_id, offset, min(read, size - offset))
        parts, received = [], 0
        while received < size:
            while not self.file_data:
                frame = self.receive_any()
                if frame is not None and frame.get("action") != "probe":
                    self.pushes.append(frame)
            got_id, offset, data = self.file_data.popleft()
            if got_id != file_id or offset != received:
                raise ProtocolError(f"file data at {offset} of {got_id}, expected {received}")
            parts.append(data)
            received += len(data)
        return b"".join(parts)
