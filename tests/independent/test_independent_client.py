"""Black-box tests of a real ``twistd messenger`` server with the independent client.

The server runs as a child process, started as docs/OPERATIONS.md says; the client
(tests/independent/client.py) was written from docs/PROTOCOL.md alone.  Every expectation
below is taken from PROTOCOL.md, CALLS.md section 0 or OPERATIONS.md.
"""

import atexit
import base64
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from twisted.trial.unittest import SynchronousTestCase

from tests.independent import client as jim
from tests.independent.client import Client, HandshakeRefused, ProtocolError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = os.path.join(ROOT, ".venv", "bin", "twistd")
PROTOCOL_MD = os.path.join(ROOT, "docs", "PROTOCOL.md")
HOST = "127.0.0.1"
ADMIN = "root"
ADMIN_PASSWORD = "root password 1"
PASSWORD = "correct horse battery"
SQL = "x'; DROP TABLE users;--"


# --------------------------------------------------------------------------- fixtures


def _die_with_parent():
    """Child side of Popen: get SIGTERM if the test process dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    """A port free for both TCP and UDP (the relay uses the TCP port number)."""
    for _ in range(50):
        tcp = socket.socket()
        tcp.bind((HOST, 0))
        port = tcp.getsockname()[1]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((HOST, port))
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
        return port
    raise RuntimeError("no free port")


class ServerProcess:
    """``twistd -n --pidfile= messenger ...`` in a fresh data directory."""

    def __init__(self, label, *options):
        self.label = label
        self.options = [str(o) for o in options]
        self.dir = tempfile.mkdtemp(prefix=f"indep_{label}_")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.process = None
        self.port = None
        self.secret = None
        self.fingerprint = None

    def start(self):
        self.port = free_port()
        args = [TWISTD, "-n", "--pidfile=", "messenger", "--data-dir", self.data_dir,
                "--port", str(self.port), "--interface", HOST,
                "--scrypt-n", "16", "--rsa-bits", "2048",
                "--connections-per-minute", "0", "--logins-per-minute", "0",
                "--connections-per-minute-network", "0", "--logins-per-minute-network", "0",
                "--requests-per-second", "0", "--bad-requests-per-second", "0"] + self.options
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log_text()
            if "Messenger listening on" in text:
                break
            if self.process.poll() is not None:
                raise RuntimeError("server exited:\n" + text)
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("server did not start:\n" + self.log_text())
        with open(os.path.join(self.data_dir, "secret"), encoding="utf-8") as f:
            self.secret = f.read().strip().encode("utf-8")
        found = re.search(r"Generated server key \S+: (sha256:[0-9a-f]{64})", self.log_text())
        self.fingerprint = found.group(1) if found else None
        return self

    def log_text(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.log.close()
            self.process = None
            shutil.rmtree(self.dir, ignore_errors=True)


_SERVERS = {}


def server(label="shared", *options):
    """A server shared by the tests of one label, stopped when the test run ends."""
    if label not in _SERVERS:
        s = ServerProcess(label, *options).start()
        _SERVERS[label] = s
        atexit.register(s.stop)
        if label == "shared":
            c = Client(HOST, s.port, s.secret, client_key()).connect()
            s.first_registration = c.register(ADMIN, ADMIN_PASSWORD, "root@example.org")
            second = Client(HOST, s.port, s.secret, client_key()).connect()
            s.second_registration = second.register("second", PASSWORD, "second@example.org")
            for conn in (c, second):
                conn.request("quit")
                conn.wait_closed()
    return _SERVERS[label]


_KEYS = {}


def client_key(bits=2048):
    if bits not in _KEYS:
        _KEYS[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _KEYS[bits]


_counter = itertools.count(1)


def unique(prefix="u"):
    return f"{prefix}{next(_counter):03d}"


class ServerTestCase(SynchronousTestCase):
    """Helpers: connections that are cleaned up, logins, reply assertions."""

    label = "shared"
    options = ()

    def setUp(self):
        self.server = server(self.label, *self.options)

    def connect(self, suites=jim.SUITES, key=None, srv=None, **kw):
        srv = srv or self.server
        c = Client(HOST, srv.port, srv.secret, key or client_key(), suites=suites, **kw)
        c.connect()
        self.addCleanup(self._dispose, c)
        return c

    @staticmethod
    def _dispose(c):
        if c.sock is None or c.closed:
            c.close()
            return
        try:
            c.send_message({"action": "quit", "id": jim.new_id(), "time": time.time()})
            c.wait_closed(2)
        except Exception:
            pass
        c.close()

    def user(self, prefix="u", suites=jim.SUITES, **extra):
        """Register a fresh account on a new connection; return (client, name)."""
        name = unique(prefix)
        c = self.connect(suites=suites)
        reply = c.register(name, PASSWORD, name + "@example.org", **extra)
        self.assertReply(reply, 201)
        return c, name

    def admin(self):
        """A connection logged in as the first (administrator) account."""
        for _ in range(40):
            c = self.connect()
            reply = c.login(ADMIN, ADMIN_PASSWORD)
            if reply["response"] != 409:
                break
            c.close()
            time.sleep(0.05)
        self.assertReply(reply, 200)
        self.assertTrue(reply["user"]["admin"])
        return c

    def assertReply(self, reply, code, **expected):
        self.assertEqual(reply.get("response"), code, reply)
        self.assertNotIn("action", reply)
        self.assertIsInstance(reply.get("time"), (int, float), reply)
        if code >= 400:
            self.assertIsInstance(reply.get("error"), str, reply)
            self.assertTrue(reply["error"], reply)
        for key, value in expected.items():
            self.assertEqual(reply.get(key), value, reply)
        return reply

    def assertStillUp(self, c, logged_in=True):
        """A good request on the same connection is answered normally."""
        if logged_in:
            self.assertReply(c.request("get_contacts"), 202)
        else:
            self.assertReply(c.request("get_contacts"), 401,
                             error="log in first: 'get_contacts' needs an authenticated session")

    def assertUser(self, user, name, admin=False, premium=False):
        self.assertEqual(user, {"account_name": name, "email": name + "@example.org",
                                "admin": admin, "premium": premium})

    def mails_to(self, address, count, timeout=5):
        """The mails in the Maildir addressed to ``address`` (waits for ``count``)."""
        maildir = os.path.join(self.server.data_dir, "Maildir", "new")
        deadline = time.monotonic() + timeout
        while True:
            found = []
            for fn in sorted(os.listdir(maildir)) if os.path.isdir(maildir) else []:
                with open(os.path.join(maildir, fn), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                if f"\nTo: {address}\n" in text:
                    found.append(text)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def assertNoPush(self, c, action, seconds=0.25):
        c.pump(seconds)
        self.assertEqual([p for p in c.pushes if p.get("action") == action], [])

    def raw_connection(self, srv=None):
        srv = srv or self.server
        s = socket.create_connection((HOST, srv.port), timeout=5)
        self.addCleanup(s.close)
        return s


def send_plain(sock, obj):
    payload = obj if isinstance(obj, bytes) else jim.encode_json(obj)
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def read_plain(sock):
    """One plain frame, or None when the server closed the connection."""
    header = _read(sock, 4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    return _read(sock, length)


def _read(sock, n):
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None
        data += chunk
    return data


def closed(sock, timeout=5):
    """True when the server closes the socket without sending anything more."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# --------------------------------------------------------------------------- worked example


def _section(text, start, end):
    i = text.index(start)
    j = text.index(end, i) if end else len(text)
    return text[i:j]


def _hex_after(text, label):
    """The hex digits printed after ``label`` (same line after ':' and following lines)."""
    i = text.index(label)
    line_end = text.index("\n", i)
    rest = text[i:line_end].rsplit(":", 1)[1].strip()
    if rest:
        return bytes.fromhex(rest)
    out = []
    for line in text[line_end + 1:].splitlines():
        stripped = line.strip()
        if not stripped or not re.fullmatch(r"[0-9a-f]+", stripped):
            break
        out.append(stripped)
    return bytes.fromhex("".join(out))


def _json_after(text, label):
    i = text.index(label) + len(label)
    return text[i:text.index("\n", i)].strip()


class WorkedExampleTests(SynchronousTestCase):
    """Section 13's published vectors, recomputed with the independent code."""

    def setUp(self):
        with open(PROTOCOL_MD, encoding="utf-8") as f:
            doc = f.read()
        keys = _section(doc, "### The example keys (TEST ONLY)", None)
        pems = re.findall(r"-----BEGIN (?:PUBLIC|PRIVATE) KEY-----.*?"
                          r"-----END (?:PUBLIC|PRIVATE) KEY-----\n", keys, re.S)
        self.server_pub = serialization.load_pem_public_key(pems[0].encode())
        self.server_priv = serialization.load_pem_private_key(pems[1].encode(), None)
        self.client_pub = serialization.load_pem_public_key(pems[2].encode())
        self.client_priv = serialization.load_pem_private_key(pems[3].encode(), None)
        self.client_pem = pems[2]
        self.aes = _section(doc, "### Output for `aes-256-gcm`", "### Output for `rsa-oaep`")
        self.rsa = _section(doc, "### Output for `rsa-oaep`", "### The example keys")
        self.secret = b"example shared secret"
        self.ns = bytes(range(0, 32))
        self.nc = bytes(range(32, 64))
        self.s = bytes(range(64, 96))
        # the ephemeral X25519 private keys of section 13's inputs
        self.client_x = X25519PrivateKey.from_private_bytes(bytes(range(0x60, 0x80)))
        self.server_x = X25519PrivateKey.from_private_bytes(bytes(range(0x80, 0xa0)))
        self.xc = jim.raw_share(self.client_x)
        self.xs = jim.raw_share(self.server_x)
        self.z = jim.x25519(self.client_x, self.xs)

    def test_phase1_frames_and_digests(self):
        """Frames [1] to [3] and both HMAC digests match the published bytes."""
        ex = self.aes
        c1 = {"action": "challenge", "version": 2, "nonce": jim.b64encode(self.ns)}
        self.assertEqual(jim.encode_json(c1).decode(), _json_after(ex, "json: ").strip())
        d1 = jim.hmac_hex(self.secret, self.ns)
        d2 = jim.hmac_hex(self.secret, self.nc)
        digests = re.findall(r"digest: ([0-9a-f]{64})", ex)
        self.assertEqual(digests[:2], [d1, d2])
        c2 = {"action": "challenge_response", "digest": d1, "nonce": jim.b64encode(self.nc)}
        wire = jim.encode_json(c2)
        self.assertEqual(struct.pack(">I", len(wire)) + wire,
                         _hex_after(ex[ex.index("[2] C->S"):], "wire = length || payload"))
        c3 = {"response": 200, "digest": d2}
        wire = jim.encode_json(c3)
        self.assertEqual(struct.pack(">I", len(wire)) + wire,
                         _hex_after(ex[ex.index("[3] S->C"):], "wire = length || payload"))

    def test_key_exchange_frame(self):
        """Frame [4] built from the example client key and X25519 key is the published one."""
        ex = self.aes
        self.assertEqual(jim.spki_pem(self.client_pub), self.client_pem)
        self.assertEqual(self.xc, _hex_after(ex, "client share = its X25519 public key"))
        frame = jim.encode_json({"action": "key_exchange", "public_key": self.client_pem,
                                 "suites": ["aes-256-gcm", "rsa-oaep"],
                                 "share": jim.b64encode(self.xc)})
        self.assertEqual(struct.pack(">I", len(frame)) + frame,
                         _hex_after(ex[ex.index("[4] C->S"):], "wire = length || payload"))

    def _transcript(self, ex, offered, suite):
        encrypted = _hex_after(ex, "encrypted secret = RSA-OAEP-SHA256")
        self.assertEqual(len(encrypted), 256)
        self.assertEqual(_hex_after(ex, "server share = X25519 public key"), self.xs)
        reply = json.loads(_json_after(ex[ex.index("[5] S->C"):], "json: "))
        self.assertEqual(jim.b64decode(reply["share"]), self.xs)
        self.assertEqual(jim.b64decode(reply["secret"]), encrypted)
        t = jim.transcript(self.ns, self.nc, jim.spki_der(self.client_pub),
                           jim.spki_der(self.server_pub), offered, suite, encrypted,
                           self.xc, self.xs)
        self.assertEqual(t, _hex_after(ex, "transcript DER"))
        signature = _hex_after(ex, "signature = RSA-PSS")
        self.assertEqual(jim.b64decode(reply["signature"]), signature)
        self.server_pub.verify(signature, t, jim.PSS, hashes.SHA256())
        self.assertEqual(self.client_priv.decrypt(encrypted, jim.OAEP), self.s)
        self.assertEqual(jim.session_id(t), _hex_after(ex, "session id = SHA-256"))
        return t

    def test_transcript_signature_and_secret(self):
        """The DER transcript rebuilt with pyasn1 equals the published one and verifies."""
        t = self._transcript(self.aes, ["aes-256-gcm", "rsa-oaep"], "aes-256-gcm")
        self.assertEqual(len(t), 1047)
        self.assertEqual(jim.fingerprint(self.server_pub),
                         "sha256:d448677531a0afd8047900eca538b0cc0fec896bf6e71eec07692b97f88187d4")
        self.assertEqual(jim.fingerprint(self.client_pub),
                         "sha256:4affb15a8de8b792d069b2d205b1864c32d6192dc422571a35adf05d3ae476a3")

    def test_x25519_and_hkdf_keys(self):
        """Z (both ways) and the six HKDF keys from IKM = S || Z equal the published ones."""
        self.assertEqual(jim.x25519(self.server_x, self.xc), self.z)
        for text, labels in ((self.aes, ("aes-256-gcm c2s", "aes-256-gcm s2c")),
                             (self.rsa, ("rsa-oaep mac c2s", "rsa-oaep mac s2c",
                                         "rsa-oaep enc c2s", "rsa-oaep enc s2c"))):
            self.assertEqual(_hex_after(text, "Z = X25519(client private key"), self.z)
            self.assertEqual(_hex_after(text, "IKM = S || Z (64 bytes)"), self.s + self.z)
            for label in labels:
                self.assertEqual(jim.derive(self.s + self.z, self.ns, self.nc, label),
                                 _hex_after(text, f"info 'messenger/2 {label}' ->"))

    def test_gcm_frames(self):
        """The aes-256-gcm frames [6] and [7] seal to the published ciphertexts."""
        ex = self.aes
        channel = jim.GcmChannel(self.s + self.z, self.ns, self.nc)
        for marker, direction in (("[6] C->S", 1), ("[7] S->C", 2)):
            part = ex[ex.index(marker):]
            plaintext = _json_after(part, "plaintext json: ").encode("utf-8")
            expected = _hex_after(part, "ciphertext (") + _hex_after(part, "GCM tag")
            key = channel.seal_key if direction == 1 else channel.open_key
            sealed = key.encrypt(jim.GcmChannel.nonce(direction, 0), plaintext, None)
            self.assertEqual(sealed, expected)
            self.assertEqual(_hex_after(part, "wire = length"),
                             struct.pack(">I", len(sealed)) + sealed)
        # and the client opens the server's frame [7] through its channel
        part = ex[ex.index("[7] S->C"):]
        payload = _hex_after(part, "ciphertext (") + _hex_after(part, "GCM tag")
        self.assertEqual(json.loads(channel.open(payload))["response"], 201)

    def test_rsa_oaep_frames(self):
        """The rsa-oaep frames: mask, labels, chunks and tags check out with the keys."""
        ex = self.rsa
        t = self._transcript(ex, ["rsa-oaep"], "rsa-oaep")
        sid = jim.session_id(t)
        ikm = self.s + self.z
        for marker, direction, way, receiver in (
                ("[6] C->S", 1, "c2s", self.server_priv),
                ("[7] S->C", 2, "s2c", self.client_priv)):
            part = ex[ex.index(marker):]
            plaintext = _json_after(part, "plaintext json: ").encode("utf-8")
            masked = jim.RsaOaepChannel.mask(jim.derive(ikm, self.ns, self.nc,
                                                        f"rsa-oaep enc {way}"),
                                             direction, 0, plaintext)
            self.assertEqual(masked, _hex_after(part, "masked = AES-256-CTR"))
            label = jim.RsaOaepChannel.label(sid, direction, 0, 0)
            self.assertEqual(label, _hex_after(part, "label of chunk 0 ="))
            chunk = _hex_after(part, "chunk 0 = RSA-OAEP")
            self.assertEqual(len(chunk), 256)
            self.assertEqual(receiver.decrypt(chunk, jim.oaep_with_label(label)), masked)
            self.assertRaises(ValueError, receiver.decrypt, chunk, jim.OAEP)  # no label
            mac_key = jim.derive(ikm, self.ns, self.nc, f"rsa-oaep mac {way}")
            tag = _hex_after(part, "tag = HMAC")
            expected = jim.hmac.new(mac_key, bytes([direction]) + struct.pack(">Q", 0) + chunk,
                                    jim.hashlib.sha256).digest()
            self.assertEqual(tag, expected)
            self.assertEqual(_hex_after(part, "wire = length"),
                             struct.pack(">I", 256 + 32) + chunk + tag)
        # the client side channel opens frame [7]
        client_side = jim.RsaOaepChannel(ikm, self.ns, self.nc, sid, self.client_priv,
                                         self.server_pub)
        part = ex[ex.index("[7] S->C"):]
        payload = _hex_after(part, "chunk 0 = RSA-OAEP") + _hex_after(part, "tag = HMAC")
        self.assertEqual(json.loads(client_side.open(payload))["response"], 201)


# --------------------------------------------------------------------------- handshake


class FrameProxy:
    """A man in the middle that may rewrite the client's frames of phases 1 and 2."""

    def __init__(self, target_port, rewrite):
        self.target_port = target_port
        self.rewrite = rewrite
        self.listener = socket.socket()
        self.listener.bind((HOST, 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        client, _ = self.listener.accept()
        upstream = socket.create_connection((HOST, self.target_port))
        threading.Thread(target=self.pipe, args=(upstream, client, None), daemon=True).start()
        self.pipe(client, upstream, self.rewrite)

    @staticmethod
    def pipe(src, dst, rewrite):
        n = 0
        try:
            while True:
                payload = read_plain(src)
                if payload is None:
                    break
                if rewrite is not None:
                    payload = rewrite(n, payload)
                n += 1
                send_plain(dst, payload)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


class HandshakeTests(ServerTestCase):
    """Phases 1 and 2 against the real server, in both suites."""

    def test_aes_suite(self):
        """Offering both suites gives aes-256-gcm and a working, pinned channel."""
        c = self.connect(pinned=self.server.fingerprint)
        self.assertEqual(c.suite, "aes-256-gcm")
        self.assertEqual(c.fingerprint, self.server.fingerprint)
        self.assertStillUp(c, logged_in=False)
        reply = self.assertReply(c.request("quit"), 200, alert="bye")
        self.assertEqual(c.wait_closed(), [])
        self.assertEqual(len(reply["id"]), 32)

    def test_rsa_oaep_suite(self):
        """Offering only rsa-oaep gives rsa-oaep; multi-chunk frames work both ways."""
        c = self.connect(suites=["rsa-oaep"], key=client_key(3072))
        self.assertEqual(c.suite, "rsa-oaep")
        name = unique("oaep")
        self.assertReply(c.register(name, PASSWORD, name + "@example.org"), 201)
        body = "\u00e9\u4e2d" * 300 + "x" * 700  # several 190/318-byte pieces each way
        ack = self.assertReply(c.request("msg", to=name, message=body), 200)
        push = c.wait_push("msg")
        self.assertEqual(push["message"], body)
        self.assertEqual(push["msg_id"], ack["msg_id"])
        self.assertGreater(c.channel.sent, 1)

    def test_server_preference_order(self):
        """The server picks its own first choice whatever the client's order."""
        c = self.connect(suites=["rsa-oaep", "aes-256-gcm"])
        self.assertEqual(c.suite, "aes-256-gcm")
        self.assertStillUp(c, logged_in=False)

    def test_unknown_and_duplicate_suites_kept_in_transcript(self):
        """Unknown names and duplicates are ignored but signed as sent."""
        c = self.connect(suites=["chacha-poly", "rsa-oaep", "rsa-oaep"])
        self.assertEqual(c.suite, "rsa-oaep")
        self.assertStillUp(c, logged_in=False)

    def test_wrong_secret(self):
        """A wrong shared secret gets exactly the documented 403 bytes, then a close."""
        s = self.raw_connection()
        challenge = json.loads(read_plain(s))
        self.assertEqual((challenge["action"], challenge["version"]), ("challenge", 2))
        ns = jim.b64decode(challenge["nonce"])
        self.assertEqual(len(ns), 32)
        send_plain(s, {"action": "challenge_response",
                       "digest": jim.hmac_hex(b"not the secret", ns),
                       "nonce": jim.b64encode(os.urandom(32))})
        self.assertEqual(read_plain(s), b'{"response":403,"error":"hmac error"}')
        self.assertTrue(closed(s))
        c = Client(HOST, self.server.port, b"not the secret", client_key())
        e = self.assertRaises(HandshakeRefused, c.connect)
        self.assertEqual(e.frame, {"response": 403, "error": "hmac error"})

    def test_uppercase_digest_accepted(self):
        """The server compares the client's digest case-insensitively."""
        s = self.raw_connection()
        ns = jim.b64decode(json.loads(read_plain(s))["nonce"])
        nc = os.urandom(32)
        send_plain(s, {"action": "challenge_response",
                       "digest": jim.hmac_hex(self.server.secret, ns).upper(),
                       "nonce": jim.b64encode(nc)})
        reply = json.loads(read_plain(s))
        self.assertEqual(reply, {"response": 200,
                                 "digest": jim.hmac_hex(self.server.secret, nc)})

    def _phase1_error(self, frame, error):
        s = self.raw_connection()
        read_plain(s)
        send_plain(s, frame)
        self.assertEqual(json.loads(read_plain(s)), {"response": 400, "error": error})
        self.assertTrue(closed(s))

    def test_phase1_errors(self):
        """Malformed challenge responses get the documented 400 texts and a close."""
        good = jim.b64encode(os.urandom(32))
        self._phase1_error(b"not json", "frame is not valid JSON")
        self._phase1_error({"action": "key_exchange", "digest": "0" * 64, "nonce": good},
                           "expected the 'challenge_response' step of the handshake")
        self._phase1_error({"action": "challenge_response", "digest": "0" * 64,
                            "nonce": good.rstrip("=")}, "'nonce' must be a base64 string")
        urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
        self._phase1_error({"action": "challenge_response", "digest": "0" * 64,
                            "nonce": urlsafe}, "'nonce' must be a base64 string")
        self._phase1_error({"action": "challenge_response", "digest": "0" * 64,
                            "nonce": jim.b64encode(os.urandom(16))},
                           "'nonce' must encode 32 bytes")

    def _keyx_error(self, frame, error):
        s = self.raw_connection()
        ns = jim.b64decode(json.loads(read_plain(s))["nonce"])
        send_plain(s, {"action": "challenge_response",
                       "digest": jim.hmac_hex(self.server.secret, ns),
                       "nonce": jim.b64encode(os.urandom(32))})
        self.assertEqual(json.loads(read_plain(s))["response"], 200)
        send_plain(s, frame)
        reply = json.loads(read_plain(s))
        self.assertEqual(reply["response"], 400)
        self.assertIsInstance(reply["error"], str)
        if error is not None:
            self.assertEqual(reply, {"response": 400, "error": error})
        self.assertTrue(closed(s))

    def test_phase2_errors(self):
        """Malformed key exchanges get the documented 400 texts and a close."""
        pem = jim.spki_pem(client_key().public_key())
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self._keyx_error(b"not json", "frame is not valid JSON")
        self._keyx_error(b"[]", None)
        self._keyx_error({"action": "challenge_response", "public_key": pem,
                          "suites": ["aes-256-gcm"]},
                         "expected the 'key_exchange' step of the handshake")
        self._keyx_error({"action": "key_exchange", "public_key": jim.spki_pem(small.public_key()),
                          "suites": ["aes-256-gcm"]},
                         "'public_key': RSA key must have 2048 to 4096 bits")
        self._keyx_error({"action": "key_exchange", "public_key": "garbage",
                          "suites": ["aes-256-gcm"]},
                         "'public_key': public key is not a valid PEM SubjectPublicKeyInfo")
        self._keyx_error({"action": "key_exchange", "public_key": pem, "suites": "aes-256-gcm"},
                         "'suites' must be a list of 1 to 8 suite names")
        self._keyx_error({"action": "key_exchange", "public_key": pem, "suites": []},
                         "'suites' must be a list of 1 to 8 suite names")
        share = jim.b64encode(os.urandom(32))
        self._keyx_error({"action": "key_exchange", "public_key": pem, "suites": ["des"],
                          "share": share},
                         "no common cipher suite; this server offers: aes-256-gcm, rsa-oaep")

    def test_phase2_share_errors(self):
        """A missing share (a messenger/1 client), a bad or a low-order share: 400s."""
        pem = jim.spki_pem(client_key().public_key())
        frame = {"action": "key_exchange", "public_key": pem, "suites": ["aes-256-gcm"]}
        self._keyx_error(frame, "key_exchange has no 'share': this server speaks messenger/2"
                                " (an ephemeral X25519 share is required); upgrade the client")
        for share, error in (("AAAA", "'share' must encode 32 bytes"),
                             ("not base64!", "'share' must be a base64 string"),
                             (jim.b64encode(bytes(32)),
                              "'share' is not a usable X25519 public key")):
            self._keyx_error(dict(frame, share=share), error)

    def test_phase2_exponent_errors(self):
        """Client keys with e = 3 or e close to n are refused: e must be 65537."""
        n = client_key().public_key().public_numbers().n
        for e in (3, n - 2):
            pem = jim.spki_pem(rsa.RSAPublicNumbers(e, n).public_key())
            self._keyx_error({"action": "key_exchange", "public_key": pem,
                              "suites": ["aes-256-gcm"], "share": jim.b64encode(os.urandom(32))},
                             "'public_key': public exponent must be 65537")

    def test_downgrade_detected(self):
        """A man in the middle who trims the offered suites breaks the signature."""
        def rewrite(n, payload):
            if n == 1:  # frame [4]
                frame = json.loads(payload)
                frame["suites"] = ["rsa-oaep"]
                return jim.encode_json(frame)
            return payload
        proxy = FrameProxy(self.server.port, rewrite)
        self.addCleanup(proxy.close)
        c = Client(HOST, proxy.port, self.server.secret, client_key(),
                   suites=["aes-256-gcm", "rsa-oaep"])
        e = self.assertRaises(ProtocolError, c.connect)
        self.assertEqual(str(e), "bad transcript signature")

    def test_client_checks_server_digest(self):
        """The client refuses a peer that does not know the shared secret."""
        listener = socket.socket()
        listener.bind((HOST, 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        got = []

        def fake_server():
            conn, _ = listener.accept()
            with conn:
                send_plain(conn, {"action": "challenge", "version": 2,
                                  "nonce": jim.b64encode(os.urandom(32))})
                got.append(read_plain(conn))
                send_plain(conn, {"response": 200, "digest": "0" * 64})
                got.append(read_plain(conn))  # None: the client closed, sent nothing
        t = threading.Thread(target=fake_server, daemon=True)
        t.start()
        c = Client(HOST, listener.getsockname()[1], b"secret", client_key())
        e = self.assertRaises(ProtocolError, c.connect)
        self.assertEqual(str(e), "the server failed the HMAC check")
        t.join(5)
        self.assertEqual(got[1], None)

    def test_version_1_server_refused(self):
        """A messenger/1 server's challenge is refused, naming both versions, silently."""
        listener = socket.socket()
        listener.bind((HOST, 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        got = []

        def fake_server():
            conn, _ = listener.accept()
            with conn:
                send_plain(conn, {"action": "challenge", "version": 1,
                                  "nonce": jim.b64encode(os.urandom(32))})
                got.append(read_plain(conn))  # None: the client sent nothing
        t = threading.Thread(target=fake_server, daemon=True)
        t.start()
        c = Client(HOST, listener.getsockname()[1], b"secret", client_key())
        e = self.assertRaises(ProtocolError, c.connect)
        self.assertEqual(str(e), "the server speaks protocol version 1, we speak 2")
        t.join(5)
        self.assertEqual(got, [None])

    def test_spliced_rsa_oaep_frame_closes(self):
        """A recorded rsa-oaep authenticate, re-tagged in another session, is refused."""
        owner, name = self.user("splice")
        owner.request("quit")
        owner.wait_closed()
        victim = self.connect(suites=["rsa-oaep"])
        sent = []
        send = victim.send_frame
        victim.send_frame = lambda payload: (sent.append(payload), send(payload))[1]
        self.assertReply(victim.login(name, PASSWORD), 200)
        self.assertReply(victim.request("quit"), 200)
        victim.wait_closed()
        attacker = self.connect(suites=["rsa-oaep"])
        chunks = sent[0][:-32]
        tag = jim.hmac.new(attacker.channel.mac_c2s, b"\x01" + struct.pack(
            ">Q", attacker.channel.sent) + chunks, jim.hashlib.sha256).digest()
        attacker.channel.sent += 1
        attacker.send_frame(chunks + tag)
        self.assertEqual(attacker.wait_closed(), [])

    def test_section12_sketch(self):
        """The minimal client printed in section 12 works against the real server."""
        with open(PROTOCOL_MD, encoding="utf-8") as f:
            doc = f.read()
        section = _section(doc, "## 12. A minimal client", "## 13. Worked example")
        code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        namespace = {}
        exec(compile(code, "PROTOCOL.md section 12", "exec"), namespace)
        sock, send, receive, channel, fp = namespace["connect"](
            HOST, self.server.port, self.server.secret, client_key(), self.server.fingerprint)
        self.addCleanup(sock.close)
        self.assertEqual(fp, self.server.fingerprint)
        name = unique("sketch")
        reply = namespace["request"](send, receive, channel, "register",
                                     user={"account_name": name, "password": PASSWORD,
                                           "email": name + "@example.org"})
        self.assertEqual(reply["response"], 201)
        reply = namespace["request"](send, receive, channel, "msg", to=name, message="hi")
        self.assertEqual(reply["response"], 200)
        self.assertEqual(namespace["request"](send, receive, channel, "quit")["alert"], "bye")

    def test_odd_sized_rsa_keys(self):
        """rsa-oaep works with 2050-bit keys on both ends (k = ceil(bits / 8))."""
        srv = ServerProcess("oddkey")
        os.makedirs(srv.data_dir, mode=0o700)
        odd = rsa.generate_private_key(public_exponent=65537, key_size=2050)
        path = os.path.join(srv.data_dir, "server_key.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(odd.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        srv.start()
        self.addCleanup(srv.stop)
        c = self.connect(suites=["rsa-oaep"], key=client_key(2050), srv=srv)
        self.assertEqual((c.server_key.key_size, c.suite), (2050, "rsa-oaep"))
        self.assertEqual(c.fingerprint, jim.fingerprint(odd.public_key()))
        self.assertReply(c.register("oddkey", PASSWORD, "oddkey@example.org"), 201)
        body = "z" * 1000  # 6 chunks of k - 66 = 191 bytes each way
        self.assertReply(c.request("msg", to="oddkey", message=body), 200)
        self.assertEqual(c.wait_push("msg")["message"], body)

    def test_pinned_key_mismatch(self):
        """A different pinned fingerprint stops the client before phase 3."""
        c = Client(HOST, self.server.port, self.server.secret, client_key(),
                   pinned="sha256:" + "0" * 64)
        e = self.assertRaises(ProtocolError, c.connect)
        self.assertIn("server key changed", str(e))

    def test_handshake_frame_too_large(self):
        """A handshake frame over 16 KiB is refused in plain text and closed."""
        s = self.raw_connection()
        read_plain(s)
        s.sendall(struct.pack(">I", 16385))
        self.assertEqual(json.loads(read_plain(s)),
                         {"response": 400,
                          "error": "frame too large (16385 bytes; the limit is 16384)"})
        self.assertTrue(closed(s))


# --------------------------------------------------------------------------- phase 3 channel


class ChannelTests(ServerTestCase):
    """Phase-3 framing, envelope and malformed frames (sections 8 and 9)."""

    def test_malformed_plaintexts(self):
        """Non-JSON, non-object and out-of-range plaintexts get 400 with id null."""
        c = self.connect()
        for raw in (b"garbage", b"[]", b'"x"', b"1", b"null", b"NaN", b'{"a":Infinity}',
                    b"\xef\xbb\xbf{}", b"\xff\xfe", b'{"a":"\xed\xa0\x80"}', b""):
            c.send_plaintext(raw)
            reply = c.wait_reply()
            self.assertReply(reply, 400)
            self.assertIsNone(reply["id"], raw[:20])
            self.assertStillUp(c, logged_in=False)

    def test_envelope_errors(self):
        """Bad id, time or action get 400 and the connection stays up."""
        c, _ = self.user()
        rid = jim.new_id()
        for message in ({"action": "get_contacts", "id": rid.upper(), "time": 1},
                        {"action": "get_contacts", "id": "x", "time": 1},
                        {"action": "get_contacts", "id": 5, "time": 1},
                        {"action": "get_contacts", "time": 1}):
            reply = c.send_request(message)
            self.assertReply(reply, 400)
            self.assertIsNone(reply["id"])
            self.assertStillUp(c)
        for message in ({"action": "get_contacts", "id": jim.new_id(), "time": "now"},
                        {"action": "get_contacts", "id": jim.new_id(), "time": True},
                        {"action": "get_contacts", "id": jim.new_id()},
                        {"action": 5, "id": jim.new_id(), "time": 1},
                        {"id": jim.new_id(), "time": 1}):
            reply = c.send_request(message)
            self.assertReply(reply, 400)
            self.assertEqual(reply["id"], message["id"])
            self.assertStillUp(c)

    def test_json_limits(self):
        """Big integers, huge numbers, NaN and deep nesting inside a request, per section 1."""
        c = self.connect()

        def send(extra):
            c.send_plaintext(b'{"action":"get_contacts","id":"%s","time":1,"x":%s}'
                             % (jim.new_id().encode(), extra))
            return c.wait_reply()
        self.assertReply(send(b"1" * 4300), 401)  # parsed, then refused for the state
        self.assertReply(send(b"[" * 50 + b"]" * 50), 401)
        for extra in (b"1" * 4301, b"1e400", b"-1e400", b"NaN", b"-Infinity",
                      b"[" * 5000 + b"]" * 5000):
            reply = self.assertReply(send(extra), 400)
            self.assertIsNone(reply["id"])
        self.assertStillUp(c, logged_in=False)

    def test_duplicate_keys(self):
        """When a key repeats, the last value wins."""
        c, name = self.user()
        c.send_plaintext(b'{"action":"msg","id":"%s","time":1,"to":"nobody-here","to":"%s",'
                         b'"message":"dup"}' % (jim.new_id().encode(), name.encode()))
        self.assertReply(c.wait_reply(), 200)
        self.assertEqual(c.wait_push("msg")["to"], name)

    def test_unknown_action_and_keys(self):
        """Unknown actions are 400; unknown keys are ignored."""
        c, _ = self.user()
        self.assertReply(c.request("fly"), 400, error="unknown action 'fly'")
        self.assertReply(c.request("get_contacts", colour="blue"), 202)

    def test_replayed_id(self):
        """A request id reused in one connection is refused as a replay."""
        c, _ = self.user()
        message = {"action": "get_contacts", "id": jim.new_id(), "time": time.time()}
        self.assertReply(c.send_request(dict(message)), 202)
        self.assertReply(c.send_request(dict(message)), 400,
                         error="request id already used in this session (replay refused)")
        self.assertStillUp(c)

    def test_state_errors(self):
        """After-login actions before login are 401; login actions after login are 400."""
        c = self.connect()
        self.assertReply(c.request("msg", to="root", message="x"), 401,
                         error="log in first: 'msg' needs an authenticated session")
        name = unique()
        self.assertReply(c.register(name, PASSWORD, name + "@example.org"), 201)
        attempts = (("register", {"user": {"account_name": unique(), "password": PASSWORD,
                                           "email": "z@example.org"}}),
                    ("authenticate", {"user": {"account_name": name, "password": PASSWORD}}),
                    ("resume", {"user": {"account_name": name}, "token": "x" * 43}))
        for action, fields in attempts:
            self.assertReply(c.request(action, **fields), 400,
                             error=f"'{action}' is not allowed after login")
        self.assertStillUp(c)

    def test_tampered_frame_closes(self):
        """A frame that fails to open makes the server close without a word."""
        c = self.connect()
        payload = bytearray(c.channel.seal(jim.encode_json(
            {"action": "get_contacts", "id": jim.new_id(), "time": time.time()})))
        payload[0] ^= 1
        c.send_frame(bytes(payload))
        self.assertEqual(c.wait_closed(), [])

    def test_out_of_order_frame_closes(self):
        """A frame sealed with a skipped counter is refused by closing."""
        c = self.connect(suites=["rsa-oaep"])
        c.channel.sent += 1
        c.send_message({"action": "get_contacts", "id": jim.new_id(), "time": time.time()})
        self.assertEqual(c.wait_closed(), [])

    def test_phase3_frame_too_large(self):
        """Before login an announced frame over 16 KiB, after login one over max_frame
        (128 KiB) gets an encrypted 400 without id, then a close (section 10)."""
        c = self.connect()
        c.sock.sendall(struct.pack(">I", 16385))
        frames = c.wait_closed()
        self.assertEqual(len(frames), 1)
        self.assertEqual(frames[0]["response"], 400)
        self.assertEqual(frames[0]["error"],
                         "frame too large (16385 bytes; the limit is 16384)")
        self.assertIsNone(frames[0].get("id"))
        c, _ = self.user()
        c.sock.sendall(struct.pack(">I", 131073))
        frames = c.wait_closed()
        self.assertEqual(frames[-1]["error"],
                         "frame too large (131073 bytes; the limit is 131072)")


# --------------------------------------------------------------------------- accounts


class AccountTests(ServerTestCase):
    """register, authenticate, resume, quit, logout, set_password."""

    def test_first_user_is_admin(self):
        """The first account is an administrator, the next one is not."""
        first = self.server.first_registration
        self.assertReply(first, 201)
        self.assertEqual(first["user"], {"account_name": ADMIN, "email": "root@example.org",
                                         "admin": True, "premium": False})
        self.assertNotIn("token", first)
        self.assertUser(self.server.second_registration["user"], "second")

    def test_register_and_login(self):
        """A registered account logs in on a new connection; names match any case."""
        c, name = self.user()
        self.assertReply(c.request("quit"), 200, alert="bye")
        c.wait_closed()
        d = self.connect()
        reply = self.assertReply(d.login(name.upper(), PASSWORD), 200)
        self.assertUser(reply["user"], name)
        self.assertNotIn("token", reply)

    def test_welcome_mail(self):
        """Registering delivers a welcome e-mail into the data directory's Maildir."""
        _, name = self.user("mail")
        found = self.mails_to(name + "@example.org", 1)
        self.assertEqual(len(found), 1)
        self.assertIn(name, found[0])

    def test_register_conflicts(self):
        """Taken names and addresses (any case) are 409."""
        c, name = self.user()
        d = self.connect()
        self.assertReply(d.register(name.upper(), PASSWORD, unique() + "@example.org"), 409,
                         error="account name already taken")
        self.assertReply(d.register(unique(), PASSWORD, (name + "@example.org").upper()), 409,
                         error="e-mail address already taken")
        self.assertStillUp(d, logged_in=False)

    def test_wrong_credentials(self):
        """A wrong password and an unknown name get the same 402."""
        _, name = self.user()
        d = self.connect()
        for user in (name, unique("ghost")):
            self.assertReply(d.login(user, "wrong password"), 402,
                             error="wrong account name or password")
        self.assertStillUp(d, logged_in=False)

    def test_already_connected(self):
        """A second session of a live account is refused with 409."""
        c, name = self.user()
        d = self.connect()
        reply = self.assertReply(d.login(name, PASSWORD), 409)
        self.assertTrue(reply["error"].startswith("already connected"), reply)
        self.assertStillUp(c)

    def test_lockout_after_failures(self):
        """Five wrong passwords lock the account with 403 and locked_until."""
        c, name = self.user()
        c.request("quit")
        c.wait_closed()
        d = self.connect()
        for _ in range(5):
            self.assertReply(d.login(name, "wrong password"), 402)
        reply = self.assertReply(d.login(name, PASSWORD), 403)
        self.assertTrue(reply["error"].startswith("account locked until "), reply)
        self.assertTrue(reply["error"].endswith(" UTC"), reply)
        self.assertGreater(reply["locked_until"], time.time() + 60)
        self.assertEqual(len(self.mails_to(name + "@example.org", 2)), 2)  # welcome, lockout
        admin = self.admin()
        self.assertReply(admin.request("admin_unlock", user_id=name), 200)
        self.assertReply(d.login(name, PASSWORD), 200)

    def test_resume_tokens(self):
        """remember gives a token that resumes; bad or foreign tokens are 401."""
        c, name = self.user()
        reply = c.request("quit")
        self.assertReply(reply, 200)
        c.wait_closed()
        d = self.connect()
        login = self.assertReply(d.login(name, PASSWORD, remember=True), 200)
        token = login["token"]
        self.assertRegex(token, r"^[A-Za-z0-9_-]{43}$")
        self.assertGreater(login["token_expires"], time.time() + 29 * 86400)
        d.request("quit")
        d.wait_closed()
        e = self.connect()
        resumed = self.assertReply(e.request("resume", user={"account_name": name},
                                             token=token), 200)
        self.assertUser(resumed["user"], name)
        self.assertNotIn("token", resumed)
        self.assertLess(abs(resumed["token_expires"] - login["token_expires"]), 1)
        self.assertStillUp(e)
        other, other_name = self.user()
        f = self.connect()
        self.assertReply(f.request("resume", user={"account_name": other_name}, token=token),
                         401, error="invalid resume token: log in with your password")
        self.assertReply(f.request("resume", user={"account_name": name}, token="A" * 43),
                         401, error="invalid resume token: log in with your password")
        self.assertStillUp(f, logged_in=False)

    def test_register_remember(self):
        """register with remember returns token and token_expires."""
        d = self.connect()
        other = unique()
        reply = self.assertReply(d.register(other, PASSWORD, other + "@example.org",
                                            remember=True), 201)
        self.assertRegex(reply["token"], r"^[A-Za-z0-9_-]{43}$")
        self.assertIsInstance(reply["token_expires"], (int, float))

    def test_quit_keeps_token(self):
        """quit says bye and closes; the token still resumes."""
        c = self.connect()
        name = unique()
        token = c.register(name, PASSWORD, name + "@example.org", remember=True)["token"]
        self.assertReply(c.request("quit"), 200, alert="bye")
        self.assertEqual(c.wait_closed(), [])
        d = self.connect()
        self.assertReply(d.request("resume", user={"account_name": name}, token=token), 200)

    def test_quit_before_login(self):
        """quit is allowed before login."""
        c = self.connect()
        self.assertReply(c.request("quit"), 200, alert="bye")
        self.assertEqual(c.wait_closed(), [])

    def test_logout_revokes_token(self):
        """logout replies, closes and revokes the session's token."""
        c = self.connect()
        name = unique()
        token = c.register(name, PASSWORD, name + "@example.org", remember=True)["token"]
        self.assertReply(c.request("logout"), 200, alert="logged out")
        self.assertEqual(c.wait_closed(), [])
        d = self.connect()
        self.assertReply(d.request("resume", user={"account_name": name}, token=token), 401,
                         error="invalid resume token: log in with your password")
        self.assertReply(d.request("logout"), 401)

    def test_set_password(self):
        """set_password checks the old one, replaces the token and the password."""
        c = self.connect()
        name = unique()
        token = c.register(name, PASSWORD, name + "@example.org", remember=True)["token"]
        self.assertReply(c.request("set_password", old_password="nope nope",
                                   new_password="new password 1"), 402, error="wrong password")
        reply = self.assertReply(c.request("set_password", old_password=PASSWORD,
                                           new_password="new password 1"), 200,
                                 alert="password changed")
        new_token = reply["token"]
        self.assertNotEqual(new_token, token)
        self.assertIsInstance(reply["token_expires"], (int, float))
        c.request("quit")
        c.wait_closed()
        d = self.connect()
        self.assertReply(d.request("resume", user={"account_name": name}, token=token), 401)
        self.assertReply(d.login(name, PASSWORD), 402)
        self.assertReply(d.request("resume", user={"account_name": name}, token=new_token), 200)
        d.request("quit")
        d.wait_closed()
        e = self.connect()
        self.assertReply(e.login(name, "new password 1"), 200)
        r = self.assertReply(e.request("set_password", old_password="new password 1",
                                       new_password=PASSWORD), 200)
        self.assertNotIn("token", r)


# --------------------------------------------------------------------------- contacts, search


class ContactTests(ServerTestCase):
    """get_contacts, add_contact, del_contact, search_users."""

    def test_contacts(self):
        """Adding, listing (alphabetical, any case) and deleting contacts."""
        c, me = self.user("me")
        zed = "Zed" + unique("z")
        z = self.connect()
        self.assertReply(z.register(zed, PASSWORD, zed + "@example.org"), 201)
        _, amy = self.user("amy")
        reply = self.assertReply(c.request("add_contact", user_id=zed.lower()), 201)
        self.assertEqual(reply["contact"], {"account_name": zed, "status": "online"})
        self.assertReply(c.request("add_contact", user_id=amy), 201)
        self.assertReply(c.request("get_contacts"), 202,
                         alert=[{"account_name": amy, "status": "online"},
                                {"account_name": zed, "status": "online"}])
        self.assertReply(c.request("add_contact", user_id=amy.upper()), 409,
                         error=f"'{amy}' is already in your contacts")
        self.assertReply(c.request("add_contact", user_id=me), 400,
                         error="you cannot add yourself as a contact")
        self.assertReply(c.request("add_contact", user_id="nobody-here"), 404,
                         error="no user named 'nobody-here'")
        # one-way: zed's list does not change
        self.assertReply(z.request("get_contacts"), 202, alert=[])
        self.assertReply(c.request("del_contact", user_id=amy), 200)
        self.assertReply(c.request("del_contact", user_id=amy), 404,
                         error=f"'{amy}' is not in your contacts")
        self.assertReply(c.request("del_contact", user_id="nobody-here"), 404,
                         error="no user named 'nobody-here'")
        self.assertReply(c.request("get_contacts"), 202,
                         alert=[{"account_name": zed, "status": "online"}])
        z.request("quit")
        z.wait_closed()
        self.assertReply(c.request("get_contacts"), 202,
                         alert=[{"account_name": zed, "status": "offline"}])

    def test_search(self):
        """Substring search, any case, without the caller, paged, contact flag."""
        tag = unique("srch")
        names = [f"{tag}_{s}" for s in ("a", "B", "c", "d", "e")]
        for n in names:
            cc = self.connect()
            self.assertReply(cc.register(n, PASSWORD, n + "@example.org"), 201)
            cc.request("quit")
            cc.wait_closed()
        c = self.connect()
        me = tag + "-me"
        self.assertReply(c.register(me, PASSWORD, me + "@example.org"), 201)
        self.assertReply(c.request("add_contact", user_id=names[2]), 201)
        page = self.assertReply(c.request("search_users", query=tag.upper(), limit=2), 202)
        self.assertEqual(page["alert"], [{"account_name": names[0], "contact": False},
                                         {"account_name": names[1], "contact": False}])
        self.assertTrue(page["more"])
        page = self.assertReply(c.request("search_users", query=tag, offset=2, limit=2), 202)
        self.assertEqual(page["alert"], [{"account_name": names[2], "contact": True},
                                         {"account_name": names[3], "contact": False}])
        self.assertTrue(page["more"])
        page = self.assertReply(c.request("search_users", query=tag, offset=4), 202)
        self.assertEqual([u["account_name"] for u in page["alert"]], [names[4]])
        self.assertFalse(page["more"])
        # % and _ are plain characters; SQL metacharacters are just text
        self.assertReply(c.request("search_users", query="%"), 202, alert=[], more=False)
        found = self.assertReply(c.request("search_users", query=tag + "_"), 202)
        self.assertEqual(len(found["alert"]), 5)
        self.assertReply(c.request("search_users", query=SQL), 202, alert=[], more=False)
        self.assertReply(c.request("search_users", query=tag + "_a"), 202,
                         alert=[{"account_name": names[0], "contact": False}], more=False)


# --------------------------------------------------------------------------- messages


class BlockTests(ServerTestCase):
    """block_user, unblock_user, get_blocked and the refusals of msg and call_dial."""

    def test_block_refuses_messages_and_calls(self):
        """A blocked user's msg and call_dial get 403 with the documented error; the
        owner may still write; after unblock_user the messages pass again."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        self.assertReply(a.request("add_contact", user_id=bob), 201)
        self.assertReply(b.request("add_contact", user_id=alice), 201)
        self.assertReply(a.request("block_user", user_id=bob.upper()), 201,
                         blocked={"account_name": bob})
        refused = f"'{alice}' has blocked you: your messages and calls to them are refused"
        self.assertReply(b.request("msg", to=alice, message="hi"), 403, error=refused)
        self.assertReply(b.request("call_dial", user_id=alice), 403, error=refused)
        self.assertReply(a.request("msg", to=bob, message="one way"), 200)
        self.assertEqual(b.wait_push("msg")["message"], "one way")
        listed = self.assertReply(a.request("get_blocked"), 202, more=False)
        self.assertEqual([x["account_name"] for x in listed["alert"]], [bob])
        self.assertIsInstance(listed["alert"][0]["since"], (int, float))
        self.assertReply(b.request("get_blocked"), 202, alert=[])
        self.assertReply(a.request("block_user", user_id=bob), 409,
                         error=f"'{bob}' is already blocked")
        self.assertReply(a.request("block_user", user_id=alice), 400,
                         error="you cannot block yourself")
        self.assertReply(a.request("block_user", user_id="nobody-here"), 404,
                         error="no user named 'nobody-here'")
        self.assertReply(a.request("unblock_user", user_id=bob), 200)
        self.assertReply(a.request("unblock_user", user_id=bob), 404,
                         error=f"'{bob}' is not blocked")
        self.assertReply(b.request("msg", to=alice, message="again"), 200)
        self.assertEqual(a.wait_push("msg")["message"], "again")


class MessageTests(ServerTestCase):
    """msg, sync, history, resending."""

    def test_msg_ack_then_push(self):
        """msg is acknowledged with msg_id and time, then pushed to the recipient."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        ack = self.assertReply(a.request("msg", to=bob.upper(), message="Hello, Bob!"), 200)
        self.assertIsInstance(ack["msg_id"], int)
        push = b.wait_push("msg")
        self.assertEqual(push, {"action": "msg", "msg_id": ack["msg_id"], "time": ack["time"],
                                "from": alice, "to": bob, "message": "Hello, Bob!"})
        again = self.assertReply(a.request("msg", to=bob, message=SQL, **{"from": alice}), 200)
        self.assertGreater(again["msg_id"], ack["msg_id"])
        self.assertEqual(b.wait_push("msg")["message"], SQL)
        self.assertReply(a.request("msg", to=bob, message="x", **{"from": bob}), 400,
                         error="'from' must be your own account name")
        self.assertReply(a.request("msg", to="nobody-here", message="x"), 404,
                         error="no user named 'nobody-here'")
        self.assertReply(a.request("msg", to=bob, message="x" * 16385), 400,
                         error="'message' is larger than 16384 bytes")
        self.assertReply(a.request("msg", to=bob, message="\u00e9" * 8193), 400,
                         error="'message' is larger than 16384 bytes")
        self.assertReply(a.request("msg", to=bob, message="\u00e9" * 8192), 200)
        self.assertReply(a.request("msg", to=alice, message="note to self"), 200)
        self.assertEqual(a.wait_push("msg")["message"], "note to self")

    def test_offline_and_sync_paging(self):
        """Messages to an offline user wait for sync, which pages with since/limit."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        b.request("quit")
        b.wait_closed()
        ids = [self.assertReply(a.request("msg", to=bob, message=f"m{i}"), 200)["msg_id"]
               for i in range(5)]
        self.assertEqual(ids, sorted(ids))
        self.assertReply(a.request("msg", to=alice, message="mine"), 200)
        d = self.connect()
        self.assertReply(d.login(bob, PASSWORD), 200)
        page = self.assertReply(d.request("sync", since=0, limit=2), 202)
        self.assertEqual([m["msg_id"] for m in page["alert"]], ids[:2])
        self.assertTrue(page["more"])
        m = page["alert"][0]
        self.assertEqual(set(m), {"msg_id", "time", "from", "to", "message"})
        self.assertEqual((m["from"], m["to"], m["message"]), (alice, bob, "m0"))
        page = self.assertReply(d.request("sync", since=ids[1], limit=2), 202)
        self.assertEqual([m["msg_id"] for m in page["alert"]], ids[2:4])
        page = self.assertReply(d.request("sync", since=ids[3]), 202)
        self.assertEqual([m["msg_id"] for m in page["alert"]], ids[4:])
        self.assertFalse(page["more"])
        # the sender's own messages are not in its sync
        mine = self.assertReply(a.request("sync", since=ids[0]), 202)
        self.assertEqual([m["message"] for m in mine["alert"]], ["mine"])

    def test_history_paging(self):
        """history pages backwards, each page oldest first, both directions."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        ids = []
        for i in range(5):
            sender, to = (a, bob) if i % 2 == 0 else (b, alice)
            ids.append(self.assertReply(sender.request("msg", to=to, message=f"h{i}"),
                                        200)["msg_id"])
        page = self.assertReply(a.request("history", limit=2, **{"with": bob}), 202)
        self.assertEqual([m["msg_id"] for m in page["alert"]], ids[3:])
        self.assertTrue(page["more"])
        page = self.assertReply(a.request("history", before=page["alert"][0]["msg_id"],
                                          limit=2, **{"with": bob.upper()}), 202)
        self.assertEqual([m["msg_id"] for m in page["alert"]], ids[1:3])
        self.assertTrue(page["more"])
        page = self.assertReply(b.request("history", before=ids[1], **{"with": alice}), 202)
        self.assertEqual([m["message"] for m in page["alert"]], ["h0"])
        self.assertFalse(page["more"])
        full = self.assertReply(b.request("history", **{"with": alice}), 202)
        self.assertEqual([(m["from"], m["to"]) for m in full["alert"]],
                         [(alice, bob), (bob, alice)] * 2 + [(alice, bob)])
        self.assertReply(a.request("history", **{"with": "nobody-here"}), 404,
                         error="no user named 'nobody-here'")

    def test_resend_same_id_after_reconnect(self):
        """A resent msg with the same id is answered with the first result, not stored."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        message = {"action": "msg", "id": jim.new_id(), "time": time.time(), "to": bob,
                   "message": "once"}
        first = self.assertReply(a.send_request(dict(message)), 200)
        b.wait_push("msg")
        a.request("quit")
        a.wait_closed()
        a2 = self.connect()
        self.assertReply(a2.login(alice, PASSWORD), 200)
        again = self.assertReply(a2.send_request(dict(message, message="twice")), 200)
        self.assertEqual((again["msg_id"], again["time"]), (first["msg_id"], first["time"]))
        self.assertNoPush(b, "msg")
        history = b.request("history", **{"with": alice})
        self.assertEqual([m["message"] for m in history["alert"]], ["once"])


# --------------------------------------------------------------------------- presence


class PresenceTests(ServerTestCase):
    """presence action and presence pushes."""

    def test_presence_pushes(self):
        """Watchers see online, away, online and offline; no push for no change."""
        w, watcher = self.user("watch")
        b, bob = self.user("bob")
        b.request("quit")
        b.wait_closed()
        self.assertReply(w.request("add_contact", user_id=bob), 201,
                         contact={"account_name": bob, "status": "offline"})
        b = self.connect()
        self.assertReply(b.login(bob, PASSWORD), 200)
        push = w.wait_push("presence")
        self.assertEqual((push["action"], push["account_name"], push["status"]),
                         ("presence", bob, "online"))
        self.assertIsInstance(push["time"], (int, float))
        self.assertReply(b.request("presence", status="away"), 200)
        self.assertEqual(w.wait_push("presence")["status"], "away")
        self.assertReply(b.request("presence", status="away"), 200)
        self.assertNoPush(w, "presence")
        self.assertReply(w.request("get_contacts"), 202,
                         alert=[{"account_name": bob, "status": "away"}])
        self.assertReply(b.request("presence", status="online"), 200)
        self.assertEqual(w.wait_push("presence")["status"], "online")
        self.assertReply(b.request("presence", status="offline"), 400)
        b.request("quit")
        self.assertEqual(w.wait_push("presence")["status"], "offline")
        # bob does not watch the watcher: one-way
        b2 = self.connect()
        self.assertReply(b2.login(bob, PASSWORD), 200)
        self.assertReply(w.request("presence", status="away"), 200)
        self.assertNoPush(b2, "presence")


# --------------------------------------------------------------------------- broadcasts


class BroadcastTests(ServerTestCase):
    """broadcast and get_broadcasts, as ordinary, premium and admin accounts."""

    def test_ordinary_user_refused(self):
        """An ordinary account gets 403 and nothing is stored."""
        c, _ = self.user()
        self.assertReply(c.request("broadcast", message="hi all"), 403,
                         error="only premium or admin accounts can broadcast; register with "
                               "a premium code or ask an administrator")
        self.assertStillUp(c)

    def test_premium_broadcast(self):
        """A premium account broadcasts; others get a push, the sender none; feed pages."""
        admin = self.admin()
        code = self.assertReply(admin.request("admin_create_code"), 201)["code"]
        admin.request("quit")
        admin.wait_closed()
        listener, _ = self.user("listen")
        vip, vname = self.user("vip", premium_code=code)
        texts = [f"b{i} {unique()}" for i in range(3)]
        ids = []
        for text in texts:
            reply = self.assertReply(vip.request("broadcast", message=text), 200)
            ids.append(reply["broadcast_id"])
            push = listener.wait_push("broadcast")
            self.assertEqual(push, {"action": "broadcast", "broadcast_id": reply["broadcast_id"],
                                    "time": reply["time"], "from": vname, "message": text})
        self.assertNoPush(vip, "broadcast")
        page = self.assertReply(listener.request("get_broadcasts", limit=2), 202)
        self.assertEqual([b["broadcast_id"] for b in page["alert"]], [ids[2], ids[1]])
        self.assertTrue(page["more"])
        self.assertEqual(set(page["alert"][0]), {"broadcast_id", "time", "from", "message"})
        page = self.assertReply(listener.request("get_broadcasts", before=ids[1], limit=1), 202)
        self.assertEqual([b["message"] for b in page["alert"]], [texts[0]])
        self.assertReply(vip.request("broadcast", message="x" * 16385), 400,
                         error="'message' is larger than 16384 bytes")

    def test_admin_broadcast_and_resend(self):
        """An admin may broadcast; a resend with the same id after reconnect is not repeated."""
        admin = self.admin()
        listener, _ = self.user("listen")
        message = {"action": "broadcast", "id": jim.new_id(), "time": time.time(),
                   "message": "maintenance " + unique()}
        first = self.assertReply(admin.send_request(dict(message)), 200)
        listener.wait_push("broadcast")
        admin.request("quit")
        admin.wait_closed()
        admin = self.admin()
        again = self.assertReply(admin.send_request(dict(message)), 200)
        self.assertEqual(again["broadcast_id"], first["broadcast_id"])
        self.assertNoPush(listener, "broadcast")


# --------------------------------------------------------------------------- premium codes


class PremiumCodeTests(ServerTestCase):
    """admin_create_code, admin_list_codes and registering with a code."""

    def test_codes(self):
        """A code makes one premium account, in any case and spacing; reuse is 400."""
        admin = self.admin()
        made = self.assertReply(admin.request("admin_create_code"), 201)
        code, code_id = made["code"], made["code_id"]
        self.assertRegex(code, r"^[A-Z0-9]{4}(-[A-Z0-9]{4}){3}$")
        self.assertIsInstance(code_id, int)
        c = self.connect()
        name = unique("vip")
        reply = self.assertReply(c.register(name, PASSWORD, name + "@example.org",
                                            premium_code=" " + code.lower().replace("-", " ")),
                                 201)
        self.assertUser(reply["user"], name, premium=True)
        d = self.connect()
        other = unique("late")
        self.assertReply(d.register(other, PASSWORD, other + "@example.org", premium_code=code),
                         400, error="invalid or already used premium code")
        self.assertReply(d.register(other, PASSWORD, other + "@example.org",
                                    premium_code="AAAA-BBBB-CCCC-DDDD"),
                         400, error="invalid or already used premium code")
        # no account was created: the same connection registers without a code
        self.assertUser(self.assertReply(d.register(other, PASSWORD, other + "@example.org"),
                                         201)["user"], other)
        codes = self.assertReply(admin.request("admin_list_codes", limit=200), 202)
        entry = [e for e in codes["alert"] if e["code_id"] == code_id][0]
        self.assertEqual(entry["hint"], code[:4] + "-\u2026")
        self.assertEqual((entry["created_by"], entry["used_by"]), (ADMIN, name))
        self.assertIsInstance(entry["used"], (int, float))
        self.assertIsInstance(entry["created"], (int, float))
        self.assertEqual(codes["alert"][0]["code_id"],
                         max(e["code_id"] for e in codes["alert"]))  # newest first
        self.assertIn("more", codes)
        page = self.assertReply(admin.request("admin_list_codes", offset=0, limit=1), 202)
        self.assertEqual(len(page["alert"]), 1)


# --------------------------------------------------------------------------- admin


ADMIN_REQUESTS = [
    ("admin_list_users", {}),
    ("admin_set_admin", {"user_id": "second", "value": False}),
    ("admin_set_premium", {"user_id": "second", "value": False}),
    ("admin_lock", {"user_id": "second", "minutes": 5}),
    ("admin_unlock", {"user_id": "second"}),
    ("admin_login_history", {"user_id": "second"}),
    ("admin_create_code", {}),
    ("admin_list_codes", {}),
    ("admin_delete_user", {"user_id": "second"}),
    ("admin_audit", {}),
]


class AdminTests(ServerTestCase):
    """Every admin action, as administrator and as an ordinary account."""

    def test_non_admin_refused(self):
        """Every admin action is 403 for an ordinary account and does nothing."""
        c, _ = self.user()
        for action, fields in ADMIN_REQUESTS:
            self.assertReply(c.request(action, **fields), 403, error="administrators only")
        self.assertStillUp(c)
        # fields are validated before the role is checked (section 8)
        self.assertReply(c.request("admin_lock", user_id="second", minutes=0), 400)
        admin = self.admin()
        users = admin.request("admin_list_users", query="second")["alert"]
        self.assertEqual([(u["account_name"], u["locked"]) for u in users], [("second", False)])

    def test_list_users(self):
        """admin_list_users filters by substring and returns admin-user objects."""
        tag = unique("lst")
        names = [tag + s for s in ("x", "y", "z")]
        for n in names:
            cc = self.connect()
            cc.register(n, PASSWORD, n + "@example.org")
            if n != names[0]:
                cc.request("quit")
                cc.wait_closed()
        admin = self.admin()
        page = self.assertReply(admin.request("admin_list_users", query=tag.upper(), limit=2),
                                202)
        self.assertEqual([u["account_name"] for u in page["alert"]], names[:2])
        self.assertTrue(page["more"])
        u = page["alert"][0]
        self.assertEqual(set(u), {"account_name", "email", "admin", "premium", "locked",
                                  "locked_until", "created", "online"})
        self.assertEqual((u["online"], page["alert"][1]["online"]), (True, False))
        self.assertEqual((u["locked"], u["locked_until"]), (False, None))
        page = self.assertReply(admin.request("admin_list_users", query=tag, offset=2), 202)
        self.assertEqual([u["account_name"] for u in page["alert"]], names[2:])
        self.assertFalse(page["more"])
        everyone = self.assertReply(admin.request("admin_list_users", limit=2), 202)
        self.assertEqual(everyone["alert"][0]["account_name"], ADMIN)

    def test_set_admin_and_premium(self):
        """Role changes reply with the admin user and push account to the user."""
        admin = self.admin()
        b, bob = self.user("bob")
        reply = self.assertReply(admin.request("admin_set_premium", user_id=bob, value=True),
                                 200)
        self.assertTrue(reply["user"]["premium"])
        self.assertIn("locked", reply["user"])
        push = b.wait_push("account")
        self.assertUser(push["user"], bob, premium=True)
        self.assertReply(b.request("broadcast", message="now I can"), 200)
        self.assertReply(admin.request("admin_set_premium", user_id=bob, value=False), 200)
        self.assertUser(b.wait_push("account")["user"], bob)
        self.assertReply(b.request("broadcast", message="now I cannot"), 403)
        reply = self.assertReply(admin.request("admin_set_admin", user_id=bob, value=True), 200)
        self.addCleanup(admin.request, "admin_set_admin", user_id=bob, value=False)
        self.assertTrue(reply["user"]["admin"])
        self.assertUser(b.wait_push("account")["user"], bob, admin=True)
        self.assertReply(b.request("admin_list_users", limit=1), 202)
        self.assertReply(admin.request("admin_set_admin", user_id=bob, value=False), 200)
        self.assertUser(b.wait_push("account")["user"], bob)
        self.assertReply(b.request("admin_list_users"), 403)
        self.assertReply(admin.request("admin_set_admin", user_id="nobody-here", value=True),
                         404, error="no user named 'nobody-here'")
        self.assertReply(admin.request("admin_set_premium", user_id="nobody-here", value=True),
                         404, error="no user named 'nobody-here'")

    def test_last_admin(self):
        """The only administrator cannot lose the role."""
        admin = self.admin()
        self.assertReply(admin.request("admin_set_admin", user_id=ADMIN, value=False), 409,
                         error="the last administrator who can log in cannot lose the "
                               "admin role, be locked or be deleted; make another "
                               "administrator first")
        self.assertReply(admin.request("admin_lock", user_id=ADMIN), 400,
                         error="you cannot lock your own account")
        self.assertReply(admin.request("admin_delete_user", user_id=ADMIN), 400,
                         error="you cannot delete your own account here")

    def test_lock_and_unlock(self):
        """A lock kicks the user with a notice and refuses logins until unlocked."""
        admin = self.admin()
        b = self.connect()
        bob = unique("bob")
        token = b.register(bob, PASSWORD, bob + "@example.org", remember=True)["token"]
        self.assertReply(admin.request("add_contact", user_id=bob), 201)
        reply = self.assertReply(admin.request("admin_lock", user_id=bob), 200)
        self.assertEqual((reply["user"]["locked"], reply["user"]["locked_until"]), (True, None))
        frames = b.wait_closed()
        self.assertEqual([(f["action"], f["level"]) for f in frames], [("notice", 101)])
        self.assertIsInstance(frames[0]["message"], str)
        self.assertEqual(admin.wait_push("presence")["status"], "offline")
        d = self.connect()
        self.assertReply(d.login(bob, PASSWORD), 403, error="account locked by an administrator",
                         locked_until=None)
        self.assertReply(d.request("resume", user={"account_name": bob}, token=token), 403,
                         error="account locked by an administrator")
        self.assertReply(admin.request("admin_unlock", user_id=bob), 200)
        self.assertReply(d.login(bob, PASSWORD), 200)
        reply = self.assertReply(admin.request("admin_lock", user_id=bob, minutes=30), 200)
        self.assertLess(abs(reply["user"]["locked_until"] - (time.time() + 1800)), 60)
        d.wait_closed()
        e = self.connect()
        locked = self.assertReply(e.login(bob, PASSWORD), 403)
        self.assertLess(abs(locked["locked_until"] - reply["user"]["locked_until"]), 1)
        unlocked = self.assertReply(admin.request("admin_unlock", user_id=bob), 200)
        self.assertEqual((unlocked["user"]["locked"], unlocked["user"]["locked_until"]),
                         (False, None))
        self.assertReply(admin.request("admin_lock", user_id="nobody-here"), 404)
        self.assertReply(admin.request("admin_unlock", user_id="nobody-here"), 404)

    def test_login_history(self):
        """admin_login_history lists attempts newest first with the documented fields."""
        b, bob = self.user("bob")
        b.request("quit")
        b.wait_closed()
        d = self.connect()
        self.assertReply(d.login(bob, "wrong password"), 402)
        self.assertReply(d.login(bob, PASSWORD, remember=True), 200)
        admin = self.admin()
        page = self.assertReply(admin.request("admin_login_history", user_id=bob), 202)
        rows = page["alert"]
        self.assertEqual([(r["method"], r["success"]) for r in rows],
                         [("password", True), ("password", False), ("register", True)])
        self.assertEqual(set(rows[0]), {"login_id", "time", "address", "method", "success"})
        self.assertEqual(rows[0]["address"], HOST)
        self.assertFalse(page["more"])
        page = self.assertReply(admin.request("admin_login_history", user_id=bob, limit=1,
                                              before=rows[0]["login_id"]), 202)
        self.assertEqual(page["alert"], [rows[1]])
        self.assertTrue(page["more"])
        self.assertReply(admin.request("admin_login_history", user_id="nobody-here"), 404)

    def test_delete_user(self):
        """Deleting kicks the user with a notice and removes contacts and messages."""
        admin = self.admin()
        b, bob = self.user("bob")
        w, watcher = self.user("watch")
        self.assertReply(admin.request("admin_set_premium", user_id=bob, value=True), 200)
        b.wait_push("account")
        said = self.assertReply(b.request("broadcast", message="last words"), 200)
        self.assertReply(w.request("add_contact", user_id=bob), 201)
        self.assertReply(b.request("add_contact", user_id=watcher), 201)
        self.assertReply(w.request("msg", to=bob, message="bye soon"), 200)
        self.assertReply(admin.request("admin_delete_user", user_id=bob), 200)
        frames = b.wait_closed()
        self.assertEqual([(f["action"], f["level"]) for f in frames[-1:]], [("notice", 101)])
        self.assertReply(w.request("get_contacts"), 202, alert=[])
        self.assertReply(w.request("history", **{"with": bob}), 404)
        self.assertReply(admin.request("admin_delete_user", user_id=bob), 404,
                         error=f"no user named '{bob}'")
        d = self.connect()
        self.assertReply(d.login(bob, PASSWORD), 402)
        feed = admin.request("get_broadcasts", before=said["broadcast_id"] + 1, limit=1)
        self.assertEqual(feed["alert"], [{"broadcast_id": said["broadcast_id"],
                                          "time": said["time"], "from": bob,
                                          "message": "last words"}])

    def test_audit(self):
        """Admin actions are audited, newest first, the view itself recorded after."""
        admin = self.admin()
        _, bob = self.user("bob")
        admin.request("admin_list_users", query=bob)
        admin.request("admin_set_admin", user_id=bob, value=True)
        admin.request("admin_set_admin", user_id=bob, value=False)
        admin.request("admin_set_premium", user_id=bob, value=True)
        admin.request("admin_set_premium", user_id=bob, value=False)
        admin.request("admin_lock", user_id=bob, minutes=5)
        admin.request("admin_unlock", user_id=bob)
        admin.request("admin_lock", user_id=bob)
        admin.request("admin_unlock", user_id=bob)
        admin.request("admin_login_history", user_id=bob)
        admin.request("admin_create_code")
        admin.request("admin_list_codes")
        admin.request("admin_delete_user", user_id=bob)
        page = self.assertReply(admin.request("admin_audit", limit=13), 202)
        entries = list(reversed(page["alert"]))
        self.assertEqual([e["action"] for e in entries],
                         ["list_users", "set_admin", "clear_admin", "set_premium",
                          "clear_premium", "lock", "unlock", "lock", "unlock", "login_history",
                          "create_premium_code", "list_premium_codes", "delete_user"])
        self.assertEqual({e["actor"] for e in entries}, {ADMIN})
        self.assertEqual([e["target"] for e in entries[1:10]], [bob] * 9)
        self.assertRegex(entries[5]["detail"], r"^until [0-9]")
        self.assertEqual(entries[7]["detail"], "until unlocked")
        self.assertEqual(entries[12]["detail"], bob + "@example.org")
        page = self.assertReply(admin.request("admin_audit", limit=3), 202)
        self.assertEqual(set(page["alert"][0]), {"audit_id", "time", "actor", "action",
                                                 "target", "detail"})
        self.assertTrue(page["more"])
        nxt = self.assertReply(admin.request("admin_audit", limit=1,
                                             before=page["alert"][0]["audit_id"]), 202)
        self.assertEqual(nxt["alert"][0]["audit_id"], page["alert"][1]["audit_id"])
        latest = self.assertReply(admin.request("admin_audit", limit=1), 202)
        self.assertEqual(latest["alert"][0]["action"], "view_audit")


# --------------------------------------------------------------------------- calls


class CallTests(ServerTestCase):
    """call_dial, call_hangup and the call_ring, call_start, call_end pushes."""

    def pair(self):
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        self.assertReply(a.request("add_contact", user_id=bob), 201)
        self.assertReply(b.request("add_contact", user_id=alice), 201)
        return a, alice, b, bob

    def test_call_start_and_hangup(self):
        """Dial, ring, dial back, call_start to both, hang up, call_end to both."""
        a, alice, b, bob = self.pair()
        ring = self.assertReply(a.request("call_dial", user_id=bob, codecs=["opus", "pcm"]), 200,
                                state="ringing")
        call_id = ring["call_id"]
        self.assertRegex(call_id, r"^[0-9a-f]{16}$")
        push = b.wait_push("call_ring")
        self.assertEqual((push["call_id"], push["from"]), (call_id, alice))
        again = self.assertReply(a.request("call_dial", user_id=bob), 200, state="ringing")
        self.assertEqual(again["call_id"], call_id)
        self.assertReply(b.request("call_dial", user_id=alice, codecs=["opus", "pcm"]), 200,
                         state="active", call_id=call_id)
        starts = [a.wait_push("call_start"), b.wait_push("call_start")]
        for member, (start, peer) in enumerate(zip(starts, (bob, alice))):
            self.assertEqual((start["call_id"], start["member"], start["peer"]),
                             (call_id, member, peer))
            self.assertEqual(len(jim.b64decode(start["key"])), 32)
            self.assertEqual(len(jim.b64decode(start["token"])), 32)
            self.assertEqual(start["relay"], [HOST, self.server.port])
            self.assertNotIn("peer_endpoints", start)   # endpoints come from the relay
            self.assertIsInstance(start.get("relay_tcp", 0), int)   # optional
            self.assertEqual(start["codec"], "opus")
        self.assertEqual(starts[0]["key"], starts[1]["key"])
        self.assertNotEqual(starts[0]["token"], starts[1]["token"])
        self.assertReply(b.request("call_hangup", call_id=call_id), 200, call_id=call_id)
        for c in (a, b):
            end = c.wait_push("call_end")
            self.assertEqual((end["call_id"], end["reason"], end["by"]), (call_id, "hangup", bob))
        self.assertReply(a.request("call_hangup"), 404, error="no such call")

    def test_codec_fallback(self):
        """The codec is the caller's first choice the callee offers, else pcm."""
        a, alice, b, bob = self.pair()
        self.assertReply(a.request("call_dial", user_id=bob, codecs=["opus", "pcm"]), 200)
        b.wait_push("call_ring")
        self.assertReply(b.request("call_dial", user_id=alice, codecs=["pcm"]), 200,
                         state="active")
        self.assertEqual(a.wait_push("call_start")["codec"], "pcm")
        self.assertReply(a.request("call_hangup"), 200)

    def test_decline_and_cancel(self):
        """The callee hanging up declines; the caller hanging up cancels."""
        a, alice, b, bob = self.pair()
        call_id = a.request("call_dial", user_id=bob)["call_id"]
        b.wait_push("call_ring")
        self.assertReply(b.request("call_hangup"), 200, call_id=call_id)
        for c in (a, b):
            self.assertEqual((c.wait_push("call_end")["reason"]), "declined")
        call_id = a.request("call_dial", user_id=bob)["call_id"]
        b.wait_push("call_ring")
        self.assertReply(a.request("call_hangup", call_id=call_id), 200)
        for c in (a, b):
            end = c.wait_push("call_end")
            self.assertEqual((end["reason"], end["by"]), ("cancelled", alice))

    def test_disconnected(self):
        """A member's connection ending ends the call as disconnected."""
        a, alice, b, bob = self.pair()
        a.request("call_dial", user_id=bob)
        b.wait_push("call_ring")
        b.request("call_dial", user_id=alice)
        b.wait_push("call_start")
        a.request("quit")
        end = b.wait_push("call_end")
        self.assertEqual((end["reason"], end["by"]), ("disconnected", alice))
        self.assertReply(b.request("call_hangup"), 404)

    def test_dial_errors(self):
        """Self, strangers, unknown, offline and busy dials get the documented codes."""
        a, alice, b, bob = self.pair()
        c, carol = self.user("carol")
        self.assertReply(a.request("call_dial", user_id=alice), 400)
        self.assertReply(a.request("call_dial", user_id=carol), 403,
                         error=f"'{carol}' is not in your contacts; add them first")
        self.assertReply(a.request("add_contact", user_id=carol), 201)
        self.assertReply(c.request("add_contact", user_id=bob), 201)
        self.assertReply(a.request("call_dial", user_id="nobody-here"), 404)
        self.assertReply(a.request("call_dial", user_id=bob), 200, state="ringing")
        b.wait_push("call_ring")
        self.assertReply(c.request("call_dial", user_id=bob), 409,
                         error=f"'{bob}' is busy in another call")
        self.assertReply(a.request("call_dial", user_id=carol), 409,
                         error="you are already in a call; hang up first")
        self.assertReply(a.request("call_hangup"), 200)
        c.request("quit")
        c.wait_closed()
        self.assertReply(a.request("call_dial", user_id=carol), 410,
                         error=f"'{carol}' is offline")
        self.assertReply(a.request("call_hangup", call_id="0123456789abcdef"), 404,
                         error="no such call")
        # call_id is documented as 16 hex digits, but any other text is simply not found
        self.assertReply(a.request("call_hangup", call_id=SQL), 404, error="no such call")
        self.assertStillUp(a)


# --------------------------------------------------------------------------- bad input


BAD_USER = [None, "alice", 5, [], {"account_name": 5, "password": PASSWORD},
            {"account_name": "ab", "password": PASSWORD},
            {"account_name": SQL, "password": PASSWORD},
            {"account_name": "a" * 12000, "password": PASSWORD},
            {"account_name": "_alice", "password": PASSWORD},
            {"account_name": "alice", "password": 12345678},
            {"password": PASSWORD}, {"account_name": "alice"}]

NAME_BAD = [None, 5, True, [], {}, "", "ab", "a" * 33, "a" * 12000, SQL, "bob smith",
            "robert'); --", "x%", "\u00e9mile"]

LIMIT_BAD = ["10", True, 1.5, -1, [], 2 ** 64]


def _with(base, **override):
    out = dict(base)
    for k, v in override.items():
        if v is _MISSING:
            out.pop(k, None)
        else:
            out[k] = v
    return out


_MISSING = object()

BAD_AFTER_LOGIN = {
    "logout": [],
    "get_contacts": [],
    "admin_create_code": [],
    "set_password": [{}, {"old_password": PASSWORD}, {"new_password": "new password 1"},
                     {"old_password": 5, "new_password": "new password 1"},
                     {"old_password": PASSWORD, "new_password": "short"},
                     {"old_password": PASSWORD, "new_password": "x" * 1025},
                     {"old_password": PASSWORD, "new_password": ["new password 1"]},
                     {"old_password": "x" * 12000, "new_password": "new password 1"}],
    "presence": [{}, {"status": "offline"}, {"status": 1}, {"status": "ONLINE "},
                 {"status": "x" * 100000}, {"status": SQL}],
    "add_contact": [{"user_id": v} for v in NAME_BAD],
    "del_contact": [{"user_id": v} for v in NAME_BAD],
    "block_user": [{"user_id": v} for v in NAME_BAD],
    "unblock_user": [{"user_id": v} for v in NAME_BAD],
    "get_blocked": [{"after": v} for v in NAME_BAD if v is not None]
                   + [{"limit": 0}, {"limit": 1001}] + [{"limit": v} for v in LIMIT_BAD],
    "search_users": [{}, {"query": ""}, {"query": "a" * 33}, {"query": 5}, {"query": ["a"]},
                     {"query": "a" * 100000}, {"query": "a", "offset": -1},
                     {"query": "a", "offset": 100001}, {"query": "a", "offset": "0"},
                     {"query": "a", "limit": 0}, {"query": "a", "limit": 51}]
                    + [{"query": "a", "limit": v} for v in LIMIT_BAD],
    "msg": [{}, {"to": "second"}, {"message": "hi"}, {"to": "second", "message": 5},
            {"to": "second", "message": ""}, {"to": "second", "message": "x" * 65537},
            {"to": "second", "message": ["hi"]}, {"to": 5, "message": "hi"},
            {"to": SQL, "message": "hi"}, {"to": "a" * 120000, "message": "hi"},
            {"to": "second", "message": "hi", "from": 5}],
    "sync": [{}, {"since": -1}, {"since": "0"}, {"since": True}, {"since": 1.0},
             {"since": 0, "limit": 0}, {"since": 0, "limit": 1001}]
            + [{"since": 0, "limit": v} for v in LIMIT_BAD],
    "file_upload": [{}, {"name": "a", "size": 1, "mime": "text/plain"},
                    {"name": "a/b", "size": 1, "mime": "text/plain", "sha256": "a" * 64},
                    {"name": "a", "size": -1, "mime": "text/plain", "sha256": "a" * 64},
                    {"name": "a", "size": 1, "mime": "text", "sha256": "a" * 64},
                    {"name": "a", "size": 1, "mime": "text/plain", "sha256": "A" * 64}],
    "file_finish": [{}, {"upload_id": 0}, {"upload_id": "1"}],
    "file_cancel": [{}, {"upload_id": -1}],
    "file_get": [{}, {"file_id": 0}, {"file_id": 1.5}],
    "history": [{}, {"with": 5}, {"with": SQL}, {"with": "a" * 120000},
                {"with": "second", "before": "x"}, {"with": "second", "before": -1},
                {"with": "second", "limit": 0}, {"with": "second", "limit": 201}]
               + [{"with": "second", "limit": v} for v in LIMIT_BAD],
    "broadcast": [{}, {"message": 5}, {"message": ""}, {"message": "x" * 65537},
                  {"message": {"text": "hi"}}],
    "get_broadcasts": [{"before": "x"}, {"before": -1}, {"limit": 0}, {"limit": 101}]
                      + [{"limit": v} for v in LIMIT_BAD],
    "admin_list_users": [{"query": ""}, {"query": "a" * 33}, {"query": 5},
                         {"offset": -1}, {"offset": "1"}, {"limit": 0}, {"limit": 201}]
                        + [{"limit": v} for v in LIMIT_BAD],
    "admin_set_admin": [{}, {"user_id": "second"}, {"user_id": "second", "value": "true"},
                        {"user_id": "second", "value": 1}, {"user_id": "second", "value": 0},
                        {"value": True}] + [{"user_id": v, "value": True} for v in NAME_BAD],
    "admin_set_premium": [{}, {"user_id": "second"}, {"user_id": "second", "value": "false"},
                          {"user_id": "second", "value": 1}]
                         + [{"user_id": v, "value": True} for v in NAME_BAD],
    "admin_lock": [{}, {"user_id": "second", "minutes": 0},
                   {"user_id": "second", "minutes": 10 ** 7 + 1},
                   {"user_id": "second", "minutes": "30"}, {"user_id": "second", "minutes": 1.5},
                   {"user_id": "second", "minutes": True}]
                  + [{"user_id": v} for v in NAME_BAD],
    "admin_unlock": [{"user_id": v} for v in NAME_BAD],
    "admin_login_history": [{}, {"user_id": "second", "before": "x"},
                            {"user_id": "second", "limit": 0},
                            {"user_id": "second", "limit": 201}]
                           + [{"user_id": v} for v in NAME_BAD]
                           + [{"user_id": "second", "limit": v} for v in LIMIT_BAD],
    "admin_list_codes": [{"offset": -1}, {"offset": "0"}, {"limit": 0}, {"limit": 201}]
                        + [{"limit": v} for v in LIMIT_BAD],
    "admin_delete_user": [{"user_id": v} for v in NAME_BAD],
    "admin_audit": [{"before": "x"}, {"before": -1}, {"limit": 0}, {"limit": 201}]
                   + [{"limit": v} for v in LIMIT_BAD],
    "call_dial": [{"user_id": v} for v in NAME_BAD]
                 + [{"user_id": "second", "codecs": "pcm"}, {"user_id": "second", "codecs": [1]},
                    {"user_id": "second", "codecs": {"pcm": 1}}],
    "call_hangup": [{"call_id": 5}, {"call_id": ["0123456789abcdef"]}, {"call_id": True},
                    {"call_id": "x" * 10000}, {"call_id": ""}],
}

BAD_BEFORE_LOGIN = {
    "quit": [],
    "register": [{"user": u} for u in BAD_USER]
                + [{"user": {"account_name": "alice", "password": "short", "email": "a@b.org"}},
                   {"user": {"account_name": "alice", "password": "x" * 1025, "email": "a@b.org"}},
                   {"user": {"account_name": "alice", "password": PASSWORD}},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "no-at-sign"}},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "a b@c.org"}},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "a@b..org"}},
                   {"user": {"account_name": "alice", "password": PASSWORD,
                             "email": "a" * 65 + "@b.org"}},
                   {"user": {"account_name": "alice", "password": PASSWORD,
                             "email": "a@" + "b" * 260 + ".org"}},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": 5}},
                   {"user": {"account_name": "alice", "password": PASSWORD,
                             "email": SQL + "@x.org"}},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "a@b.org"},
                    "premium_code": 5},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "a@b.org"},
                    "premium_code": ""},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "a@b.org"},
                    "premium_code": "x" * 65},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "a@b.org"},
                    "remember": "yes"},
                   {"user": {"account_name": "alice", "password": PASSWORD, "email": "a@b.org"},
                    "remember": 1}],
    "authenticate": [{"user": u} for u in BAD_USER]
                    + [{"user": {"account_name": "alice", "password": PASSWORD}, "remember": 1},
                       {"user": {"account_name": "alice", "password": PASSWORD},
                        "remember": "true"}],
    "resume": [{}, {"token": "x" * 43}, {"user": {"account_name": "alice"}},
               {"user": {"account_name": "alice"}, "token": 5},
               {"user": {"account_name": SQL}, "token": "x" * 43},
               {"user": "alice", "token": "x" * 43},
               {"user": {"account_name": 5}, "token": "x" * 43},
               {"user": {"account_name": "alice"}, "token": ""},
               {"user": {"account_name": "alice"}, "token": "x" * 12000},
               {"user": {"account_name": "alice"}, "token": ["x" * 43]}],
}

ENVELOPE_BAD = [{"time": "now"}, {"time": True}, {"time": None}, {"time": [1]},
                {"id": "X" * 32}, {"id": 12345}, {"id": "0" * 31}]


class BadInputTests(ServerTestCase):
    """Bad input to every action is a 400 with an error; the connection stays up."""

    def _check(self, c, action, fields, logged_in):
        message = {"action": action, "id": jim.new_id(), "time": time.time()}
        message.update(fields)
        reply = c.send_request(message)
        self.assertEqual(reply.get("response"), 400, (action, str(fields)[:200], reply))
        self.assertIsInstance(reply.get("error"), str)
        self.assertTrue(reply["error"])
        self.assertLess(len(reply["error"]), 500, "the error echoes the input")
        self.assertStillUp(c, logged_in)

    def test_every_action_after_login(self):
        """Each after-login action, bad fields and bad envelopes: 400, still up."""
        admin = self.admin()
        for action, variants in BAD_AFTER_LOGIN.items():
            for fields in variants + ENVELOPE_BAD:
                self._check(admin, action, fields, True)
        # the database is intact after all those names
        users = self.assertReply(admin.request("admin_list_users", query="second"), 202)
        self.assertEqual([u["account_name"] for u in users["alert"]], ["second"])

    def test_every_action_before_login(self):
        """Each before-login action, bad fields and bad envelopes: 400, still up."""
        c = self.connect()
        for action, variants in BAD_BEFORE_LOGIN.items():
            for fields in variants + ENVELOPE_BAD:
                self._check(c, action, fields, False)
        name = unique()
        self.assertReply(c.register(name, PASSWORD, name + "@example.org"), 201)

    def test_documented_error_texts(self):
        """The error texts quoted in section 8 are the server's."""
        c = self.connect()
        self.assertReply(c.request("authenticate", user={"password": PASSWORD}), 400,
                         error="'user.account_name' is required")
        self.assertReply(c.request("authenticate", user={"account_name": None,
                                                         "password": PASSWORD}), 400,
                         error="'user.account_name' is required")
        name = unique()
        c.register(name, PASSWORD, name + "@example.org")
        self.assertReply(c.request("sync", since=0, limit="5"), 400,
                         error="'limit' must be an integer")
        self.assertReply(c.request("msg", to=name, message=""), 400,
                         error="'message' must be 1 to 65536 characters long")
        self.assertReply(c.request("msg", to=name, message="x", **{"from": None}), 200)
        self.assertReply(c.request("search_users", query="a", limit=None), 202)

    def test_unpaired_surrogate(self):
        """A text field holding an unpaired surrogate is refused with 400."""
        c, name = self.user()
        raw = (f'{{"action":"msg","id":"{jim.new_id()}","time":1,"to":"{name}",'
               f'"message":"a\\ud800b"}}').encode()
        c.send_plaintext(raw)
        self.assertReply(c.wait_reply(), 400)
        self.assertStillUp(c)


# --------------------------------------------------------------------------- files


class FileTests(ServerTestCase):
    """"Files": uploads in binary frames, attachments, downloads by the participants."""

    def test_upload_attach_download(self):
        """Upload (progress pushes, finish), attach in a msg, the recipient's push
        carries the attachment, the recipient downloads it whole; a third user is refused
        with the same 403 as for a file that does not exist."""
        alice, _ = self.user("fa")
        bob, bob_name = self.user("fb")
        carol, _ = self.user("fc")
        data = os.urandom(3_000_000)
        done = self.assertReply(alice.upload(data, name="notes.txt", mime="text/plain",
                                             window=1024 * 1024), 201)
        file = done["file"]
        self.assertEqual((file["name"], file["size"], file["mime"], file["sha256"]),
                         ("notes.txt", len(data), "text/plain",
                          jim.hashlib.sha256(data).hexdigest()))
        self.assertReply(alice.request("msg", to=bob_name, message="",
                                       attachment={"file_id": file["file_id"],
                                                   "name": "read me.txt"}), 200)
        push = bob.wait_push("msg")
        self.assertEqual(push["attachment"], {**file, "name": "read me.txt"})
        self.assertEqual(push["message"], "")
        self.assertReply(bob.request("file_get", file_id=file["file_id"]), 200, file=file)
        self.assertEqual(bob.download(file["file_id"], len(data), read=100_000), data)
        refused = self.assertReply(carol.request("file_get", file_id=file["file_id"]), 403,
                                   error="you cannot download this file")
        missing = carol.request("file_get", file_id=file["file_id"] + 10**6)
        self.assertEqual({k: missing[k] for k in ("response", "error")},
                         {k: refused[k] for k in ("response", "error")})
        carol.send_read(file["file_id"], 0, 10)
        error = carol.wait_push("file_error")
        self.assertEqual((error["file_id"], error["response"]), (file["file_id"], 403))

    def test_resume_and_refusals(self):
        """A chunk that leaves a gap gets a file_error with the offset to go on from; a
        second file_upload of the same content resumes (200, that offset); a finish
        before the end is 409; a wrong SHA-256 is 400; a read past the end is refused."""
        alice, _ = self.user("fr")
        data = os.urandom(200_000)
        started = self.assertReply(alice.request(
            "file_upload", name="a.bin", size=len(data), mime="application/octet-stream",
            sha256=jim.hashlib.sha256(data).hexdigest()), 201, offset=0)
        upload_id = started["upload_id"]
        alice.send_chunk(upload_id, 0, data[:50_000])
        alice.send_chunk(upload_id, 80_000, data[80_000:90_000])
        error = alice.wait_push("file_error")
        self.assertEqual((error["upload_id"], error["response"], error["offset"]),
                         (upload_id, 409, 50_000))
        resumed = self.assertReply(alice.request(
            "file_upload", name="a.bin", size=len(data), mime="application/octet-stream",
            sha256=jim.hashlib.sha256(data).hexdigest()), 200, upload_id=upload_id,
            offset=50_000)
        alice.send_chunk(upload_id, resumed["offset"], data[50_000:150_000])
        self.assertReply(alice.request("file_finish", upload_id=upload_id), 409,
                         offset=150_000)
        alice.send_chunk(upload_id, 150_000, data[150_000:])
        file = self.assertReply(alice.request("file_finish", upload_id=upload_id), 201)["file"]
        self.assertReply(alice.request("file_get", file_id=file["file_id"]), 200)
        alice.send_read(file["file_id"], len(data), 1)
        error = alice.wait_push("file_error")
        self.assertEqual((error["response"], error["size"]), (400, len(data)))
        wrong = alice.request("file_upload", name="b.bin", size=10, mime="text/plain",
                              sha256="0" * 64)
        alice.send_chunk(wrong["upload_id"], 0, b"0123456789")
        self.assertReply(alice.request("file_finish", upload_id=wrong["upload_id"]), 400)

    def test_limits_in_the_login_reply(self):
        """The login reply announces the largest file; a larger one is refused at the
        start with max_size."""
        c = self.connect()
        name = unique("fl")
        reply = self.assertReply(c.register(name, PASSWORD, name + "@example.org"), 201)
        largest = reply["limits"]["max_file_size"]
        self.assertReply(c.request("file_upload", name="big", size=largest + 1,
                                   mime="application/octet-stream", sha256="a" * 64),
                         400, max_size=largest)

    def test_binary_frames_before_login(self):
        """A binary file frame before login is answered 401 with "id": null."""
        c = self.connect()
        c.send_read(1, 0, 10)
        self.assertReply(c.wait_reply(), 401, id=None)


# --------------------------------------------------------------------------- timeouts


class TimeoutTests(ServerTestCase):
    """Login timeout, probes and the ring timeout, on a server with short timers."""

    label = "timeouts"
    options = ("--login-timeout", "1.5", "--probe-interval", "0.5", "--probe-timeout", "2",
               "--ring-timeout", "1", "--handshake-timeout", "1", "--token-days", "0.00002",
               "--auto-register")

    def test_token_expiry(self):
        """A resume token past token_expires is refused as expired."""
        c = self.connect()
        name = unique()
        reply = self.assertReply(c.register(name, PASSWORD, name + "@example.org",
                                            remember=True), 201)
        self.assertLess(reply["token_expires"] - reply["time"], 3)
        c.request("quit")
        c.wait_closed()
        time.sleep(max(0, reply["token_expires"] - time.time()) + 0.2)
        d = self.connect()
        self.assertReply(d.request("resume", user={"account_name": name},
                                   token=reply["token"]), 401,
                         error="resume token expired: log in with your password")

    def test_auto_register(self):
        """With --auto-register an unknown name logging in gets an account (201)."""
        c = self.connect()
        name = unique("auto")
        refused = self.assertReply(c.login(name, "short"), 400)
        self.assertIn("8", refused["error"])
        reply = self.assertReply(c.login(name, PASSWORD), 201)
        self.assertEqual(reply["user"]["email"], name + "@auto-registered.invalid")
        c.request("quit")
        c.wait_closed()
        d = self.connect()
        self.assertReply(d.login(name, PASSWORD), 200)

    def test_login_timeout(self):
        """No login in time: an encrypted 401 'login timed out' without id, then a close."""
        c = self.connect()
        frames = c.wait_closed(5)
        self.assertEqual(len(frames), 1)
        self.assertEqual((frames[0]["response"], frames[0]["error"]), (401, "login timed out"))
        self.assertNotIn("id", frames[0])
        self.assertIsInstance(frames[0]["time"], (int, float))

    def test_handshake_timeout(self):
        """A client that stops after the challenge is closed without a word."""
        s = self.raw_connection()
        self.assertEqual(json.loads(read_plain(s))["action"], "challenge")
        start = time.monotonic()
        self.assertTrue(closed(s, 5))
        self.assertLess(time.monotonic() - start, 4)

    def test_probes_answered(self):
        """A client that answers probes stays connected through silence."""
        c, _ = self.user()
        c.pump(2.0)
        self.assertGreaterEqual(c.probes_answered, 1)
        self.assertStillUp(c)

    def test_probe_unanswered(self):
        """A client that ignores probes is dropped and shown offline."""
        w, watcher = self.user("watch")
        name = unique("mute")
        m = self.connect(answer_probes=False)
        self.assertReply(m.register(name, PASSWORD, name + "@example.org"), 201)
        self.assertReply(w.request("add_contact", user_id=name), 201)
        deadline = time.monotonic() + 6
        while True:  # keep the watcher answering its own probes meanwhile
            w.pump(0.1)
            try:
                frames = m.wait_closed(0.1)
                break
            except TimeoutError:
                self.assertLess(time.monotonic(), deadline, "the silent client was not dropped")
        self.assertTrue(all(f.get("action") == "probe" for f in frames), frames)
        self.assertTrue(frames)
        probe = frames[0]
        self.assertRegex(probe["id"], r"^[0-9a-f]{32}$")
        self.assertEqual(w.wait_push("presence", match=lambda p: p["account_name"] == name)
                         ["status"], "offline")

    def test_ring_timeout(self):
        """An unanswered call ends with reason 'no answer' for both."""
        a, alice = self.user("alice")
        b, bob = self.user("bob")
        a.request("add_contact", user_id=bob)
        call_id = self.assertReply(a.request("call_dial", user_id=bob), 200)["call_id"]
        b.wait_push("call_ring")
        for c in (a, b):
            end = c.wait_push("call_end", timeout=5)
            self.assertEqual((end["call_id"], end["reason"], end["by"]),
                             (call_id, "no answer", None))


# --------------------------------------------------------------------------- limits, shutdown


class LimitAndShutdownTests(ServerTestCase):
    """Rate limits and the shutdown notice, each on a server of its own."""

    def own_server(self, *options):
        srv = ServerProcess("own", *options).start()
        self.addCleanup(srv.stop)
        return srv

    def test_connection_rate_limit(self):
        """Connections over the limit get one plain 429 frame and are closed."""
        srv = self.own_server("--connections-per-minute", "2")
        for _ in range(2):
            self.connect(srv=srv)
        s = self.raw_connection(srv)
        frame = json.loads(read_plain(s))
        self.assertEqual((frame["response"], frame["error"]),
                         (429, "too many connections from your address"))
        self.assertGreater(frame["retry_after"], 0)
        self.assertTrue(closed(s))

    def test_request_rate_limit(self):
        """Requests over the burst get 429 with retry_after; the connection stays up."""
        srv = self.own_server("--requests-per-second", "2", "--request-burst", "3")
        c = self.connect(srv=srv)
        replies = [c.request("get_contacts") for _ in range(4)]
        self.assertEqual([r["response"] for r in replies], [401, 401, 401, 429])
        self.assertEqual(replies[3]["error"], "too many requests; slow down")
        self.assertGreater(replies[3]["retry_after"], 0)
        time.sleep(replies[3]["retry_after"] + 0.1)
        self.assertStillUp(c, logged_in=False)

    def test_flood_closes(self):
        """After 20 refusals in a row a last 429 is sent and the connection closed."""
        srv = self.own_server("--requests-per-second", "0.1", "--request-burst", "1")
        c = self.connect(srv=srv)
        for _ in range(30):
            try:
                c.send_message({"action": "get_contacts", "id": jim.new_id(),
                                "time": time.time()})
            except OSError:
                break
        frames = c.wait_closed(5)
        codes = [f["response"] for f in frames]
        self.assertEqual(codes[0], 401)
        self.assertEqual(codes[1:], [429] * 21)
        self.assertEqual(frames[-1]["error"], "too many requests; closing the connection")
        self.assertEqual({f["error"] for f in frames[1:-1]}, {"too many requests; slow down"})

    def test_login_rate_limit(self):
        """Login attempts over the per-address limit get 429 and are not checked."""
        srv = self.own_server("--logins-per-minute", "2")
        c = self.connect(srv=srv)
        self.assertReply(c.register("first", PASSWORD, "first@example.org"), 201)
        c.request("quit")
        c.wait_closed()
        d = self.connect(srv=srv)
        self.assertReply(d.login("first", "wrong password"), 402)
        reply = self.assertReply(d.login("first", PASSWORD), 429,
                                 error="too many login attempts from your address; "
                                       "try again later")
        self.assertGreater(reply["retry_after"], 0)
        self.assertStillUp(d, logged_in=False)

    def test_shutdown_notice(self):
        """SIGTERM sends logged-in users the shutdown notice, then closes."""
        srv = self.own_server()
        c = self.connect(srv=srv)
        c.register("first", PASSWORD, "first@example.org")
        srv.process.send_signal(signal.SIGTERM)
        frames = c.wait_closed(10)
        self.assertEqual([(f.get("action"), f.get("level"), f.get("message")) for f in frames],
                         [("notice", 101, "The server is shutting down.")])
