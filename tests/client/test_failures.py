"""Tests for messenger.client.failures: every failure becomes the typed error of its
condition. Handshake refusals come from the real `ClientHandshake` against the real
`ServerHandshake`, so a change of the wire's wording that would break the typing fails
here."""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet import error as net_error
from twisted.trial import unittest

from messenger.client import errors
from messenger.client.failures import connection_error, describe, reply_error
from messenger.client.tls import HostnameMismatch, TlsSettingsError
from messenger.wire import jim
from messenger.wire.handshake import ClientHandshake, HandshakeError, ServerHandshake
from tests.support.keys import rsa_key
from tests.support.server import SECRET


def refusal(action: str, code: int, text: str, **extra) -> errors.MessengerError:
    return reply_error(action, {"response": code, "error": text, "id": "x", **extra})


class ReplyErrorTests(unittest.TestCase):
    def test_the_code_picks_the_class(self):
        """Without a refinement, each code has its class, with the server's text."""
        cases = [(400, errors.BadRequest), (401, errors.NotAuthorised),
                 (402, errors.WrongCredentials), (403, errors.Forbidden),
                 (404, errors.NotFound), (409, errors.Conflict), (410, errors.Gone),
                 (500, errors.ServerError), (503, errors.ServiceUnavailable)]
        for code, cls in cases:
            error = refusal("history", code, "text")
            self.assertIs(type(error), cls, code)
            self.assertEqual((error.code, error.message), (code, "text"))

    def test_retry_after_is_kept(self):
        """429 carries retry_after; so does a 503 that gives one."""
        self.assertEqual(refusal("msg", 429, "slow", retry_after=2.5).retry_after, 2.5)
        self.assertEqual(refusal("msg", 503, "busy", retry_after=4).retry_after, 4.0)

    def test_the_action_refines_the_code(self):
        """A 403 to a login is a lock, to an admin action a role, to broadcast premium;
        a 402 to set_password is the current password; elsewhere the code's class."""
        cases = [("authenticate", 403, "account locked", errors.AccountLocked),
                 ("register", 403, "account locked", errors.AccountLocked),
                 ("admin_audit", 403, "administrators only", errors.AdminsOnly),
                 ("broadcast", 403, "only premium", errors.PremiumOnly),
                 ("set_password", 402, "wrong password", errors.WrongPassword),
                 ("call_dial", 403, "not in your contacts", errors.Forbidden),
                 ("call_dial", 403, "'bob' has blocked you: ...", errors.BlockedByUser),
                 ("msg", 403, "'bob' has blocked you: ...", errors.BlockedByUser)]
        for action, code, text, cls in cases:
            self.assertIs(type(refusal(action, code, text)), cls, action)

    def test_documented_texts_decide_where_the_code_cannot(self):
        """409 to a login: the account elsewhere, a taken name, a taken address; 401 to
        resume: expired or invalid; 400 to register: the premium code."""
        cases = [("resume", 409, "already connected: elsewhere", errors.AlreadyConnected),
                 ("register", 409, "account name already taken", errors.NameTaken),
                 ("register", 409, "e-mail address already taken", errors.EmailTaken),
                 ("add_contact", 409, "already in your contacts", errors.Conflict),
                 ("resume", 401, "resume token expired: log in", errors.TokenExpired),
                 ("resume", 401, "invalid resume token", errors.TokenInvalid),
                 ("register", 400, "invalid or already used premium code",
                  errors.InvalidPremiumCode),
                 ("register", 400, "bad e-mail", errors.BadRequest)]
        for action, code, text, cls in cases:
            self.assertIs(type(refusal(action, code, text)), cls, text)

    def test_a_lock_says_until_when(self):
        """AccountLocked.locked_until is the timed lock's end, None for an admin lock."""
        self.assertEqual(refusal("resume", 403, "locked", locked_until=12.0).locked_until,
                         12.0)
        self.assertIsNone(refusal("resume", 403, "locked", locked_until=None).locked_until)

    def test_an_unknown_server_error_code_is_a_server_error(self):
        """A 5xx without a class of its own still reads as the server's trouble."""
        error = refusal("msg", 507, "full")
        self.assertIsInstance(error, errors.ServerError)
        self.assertEqual(error.code, 507)


class HandshakeErrorTests(unittest.TestCase):
    def run_handshake(self, client_secret: bytes = SECRET,
                      challenge: bytes | None = None) -> errors.MessengerError:
        """Run both halves until the client fails; the typed error of its failure."""
        server = ServerHandshake(SECRET, rsa_key("server", 2048))
        client = ClientHandshake(client_secret, rsa_key("client", 2048))
        frame = challenge if challenge is not None else server.start()
        try:
            while True:
                reply, _ = client.receive(frame)
                try:
                    frame, _ = server.receive(reply)
                except HandshakeError as refused:
                    frame = refused.reply
        except HandshakeError as error:
            return connection_error(error)

    def test_the_servers_hmac_refusal_is_an_hmac_error(self):
        """A wrong shared secret: HmacError, 'hmac error'."""
        error = self.run_handshake(client_secret=b"not the secret")
        self.assertIsInstance(error, errors.HmacError)
        self.assertEqual((error.message, error.code), ("hmac error", 403))

    def test_a_server_without_the_secret_is_not_authentic(self):
        """A server that accepts the client's digest with a wrong one of its own (it
        does not know the secret): ServerNotAuthentic."""
        server = ServerHandshake(SECRET, rsa_key("server", 2048))
        client = ClientHandshake(SECRET, rsa_key("client", 2048))
        client.receive(server.start())
        forged = jim.encode({"response": 200, "digest": "00" * 32})
        with self.assertRaises(HandshakeError) as raised:
            client.receive(forged)
        self.assertIsInstance(connection_error(raised.exception), errors.ServerNotAuthentic)

    def test_another_protocol_version_is_the_wrong_protocol(self):
        """A challenge of another version: WrongProtocol."""
        challenge = jim.encode({"action": "challenge", "version": 99, "nonce": "AA=="})
        self.assertIsInstance(self.run_handshake(challenge=challenge), errors.WrongProtocol)
        other = jim.encode({"action": "hello"})
        self.assertIsInstance(self.run_handshake(challenge=other), errors.WrongProtocol)

    def test_too_many_connections_keeps_retry_after(self):
        """The plain 429 before the handshake: TooManyConnections with retry_after."""
        frame = jim.encode({"response": 429, "error": "too many connections",
                            "retry_after": 7})
        error = self.run_handshake(challenge=frame)
        self.assertIsInstance(error, errors.TooManyConnections)
        self.assertEqual(error.retry_after, 7.0)


class ConnectionErrorTests(unittest.TestCase):
    def test_socket_errors_are_typed_unreachable(self):
        """Refused, unknown host, timeouts and closes say the server was not reached."""
        cases = [(net_error.ConnectionRefusedError(), errors.ConnectionRefused),
                 (net_error.DNSLookupError("x"), errors.HostNotFound),
                 (net_error.TimeoutError(), errors.ConnectTimedOut),
                 (net_error.TCPTimedOutError(), errors.ConnectTimedOut),
                 (net_error.ConnectionDone(), errors.ConnectionClosed),
                 (net_error.ConnectionLost(), errors.ConnectionClosed),
                 (net_error.NoRouteError(), errors.ServerUnreachable),
                 (OSError(113, "No route to host"), errors.ServerUnreachable)]
        for raw, cls in cases:
            error = connection_error(raw)
            self.assertIsInstance(error, cls, raw)
            self.assertIsInstance(error, errors.ServerUnreachable, raw)

    def test_tls_failures_are_typed(self):
        """A refused certificate or a TLS error: TlsRefused with TLS's reason; unusable
        settings: TlsSettingsInvalid. Neither is 'unreachable'."""
        refused = connection_error(HostnameMismatch("example.org", ["other.org"]))
        self.assertIsInstance(refused, errors.TlsRefused)
        self.assertIn("hostname mismatch", refused.message)
        self.assertIsInstance(connection_error(SSL.Error([])), errors.TlsRefused)
        self.assertIsInstance(connection_error(TlsSettingsError("no CA file")),
                              errors.TlsSettingsInvalid)
        self.assertNotIsInstance(refused, errors.ServerUnreachable)

    def test_typed_errors_pass_through(self):
        """An error that is typed already stays what it is."""
        violation = errors.ProtocolViolation("bad frame")
        self.assertIs(connection_error(violation), violation)
        expired = errors.TokenExpired("expired")
        self.assertIs(connection_error(expired), expired)

    def test_anything_else_while_connecting_is_unreachable(self):
        """An unexpected failure of the connect itself still means: not reached."""
        self.assertIsInstance(connection_error(RuntimeError("odd"), connecting=True),
                              errors.ServerUnreachable)
        self.assertIs(type(connection_error(RuntimeError("odd"))), errors.ConnectionFailed)

    def test_describe_is_one_line_for_anything(self):
        """describe gives one readable line for connection errors and refusals."""
        self.assertIn("refused", describe(net_error.ConnectionRefusedError()))
        self.assertIn("closed", describe(net_error.ConnectionDone()))
        self.assertEqual(describe(refusal("resume", 409, "already connected")),
                         "already connected")
        self.assertEqual(describe(ValueError()), "ValueError")
