"""The sentences of messenger.client.ui.messages: every failure a person can meet says what
happened and what to do, never a traceback."""

from __future__ import annotations

import time

from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from messenger.client import errors
from messenger.client.calls import controller as calls
from messenger.client.calls.controller import CallStatus
from messenger.client.events import ConnectionState
from messenger.client.failures import reply_error
from messenger.client.tls import TlsSettingsError
from messenger.client.ui import messages
from messenger.client.ui.settings import SecretFileError

ADDRESS = "chat.example.org:7777"


def refusal(action: str, code: int, text: str, **extra) -> errors.MessengerError:
    """The typed error the core gives for an error reply to ``action``."""
    return reply_error(action, {"response": code, "error": text, **extra})


class ExplainTests(TestCase):
    def explain(self, error: BaseException) -> str:
        text = messages.explain(error, ADDRESS)
        self.assertNotIn("Traceback", text)
        self.assertTrue((text[0].isupper() or text.startswith("'")) and text.endswith("."),
                        text)
        return text

    def test_hmac_error(self) -> None:
        """The server's hmac refusal keeps its words and points at the secret file."""
        text = self.explain(errors.HmacError("hmac error", 403))
        self.assertTrue(text.startswith("Server rejected the connection: hmac error."))
        self.assertIn("secret file", text)

    def test_handshake_failures(self) -> None:
        """Too many connections, a server without the secret, another protocol."""
        self.assertIn("too many connections", self.explain(
            errors.TooManyConnections("too many", 429)))
        self.assertIn("shared-secret check", self.explain(
            errors.ServerNotAuthentic("server failed the HMAC check", 403)))
        self.assertIn("does not speak the Messenger protocol", self.explain(
            errors.WrongProtocol("server speaks protocol version 9")))

    def test_login_refusals(self) -> None:
        """Wrong password, already connected, taken names, a bad premium code."""
        self.assertIn("Wrong password or account name", self.explain(
            refusal("authenticate", 402, "wrong account name or password")))
        self.assertTrue(self.explain(refusal("set_password", 402, "wrong password"))
                        .startswith("Wrong password."))
        self.assertIn("This account is already connected", self.explain(
            refusal("authenticate", 409, "already connected: this account has a live"
                    " session elsewhere")))
        self.assertIn("account name is already taken", self.explain(
            refusal("register", 409, "account name already taken")))
        self.assertIn("e-mail address already has an account", self.explain(
            refusal("register", 409, "e-mail address already taken")))
        self.assertIn("premium code is not valid", self.explain(
            refusal("register", 400, "invalid or already used premium code")))

    def test_role_refusals(self) -> None:
        """An admin action and a broadcast refused for the account's role."""
        self.assertEqual(self.explain(refusal("admin_lock", 403, "administrators only")),
                         "Only administrators can do that.")
        self.assertIn("Only premium accounts", self.explain(
            refusal("broadcast", 403, "only premium or admin accounts can broadcast")))

    def test_locks(self) -> None:
        """A timed lock says until when in local time; an admin lock says who can help."""
        until = time.mktime((2026, 1, 1, 14, 5, 0, 0, 0, -1))
        text = self.explain(refusal("authenticate", 403, "account locked until"
                                    " 2026-01-01 13:05 UTC", locked_until=until))
        self.assertIn("Account locked until 14:05", text)
        text = self.explain(refusal("resume", 403, "account locked by an administrator",
                                    locked_until=None))
        self.assertIn("locked by an administrator", text)

    def test_server_key_changed(self) -> None:
        """A changed key names both fingerprints (shortened) and how to accept it."""
        error = errors.ServerKeyChanged(ADDRESS, "sha256:" + "a" * 64, "sha256:" + "b" * 64,
                                        "/home/u/.config/messenger/known_servers")
        text = self.explain(error)
        self.assertTrue(text.startswith("Server key changed"))
        self.assertIn("sha256:bbbbbbbbbbbbbbbb…", text)
        self.assertIn("Trust the server's new key", text)

    def test_network_failures(self) -> None:
        """Refused, unknown name, timeout, closed: each one sentence with the address."""
        self.assertIn(f"Cannot reach the server at {ADDRESS}: nothing is listening",
                      self.explain(errors.ConnectionRefused("connection refused")))
        self.assertIn("could not be found", self.explain(errors.HostNotFound("x")))
        self.assertIn("did not answer in time", self.explain(errors.ConnectTimedOut("x")))
        self.assertIn("closed the connection", self.explain(errors.ConnectionClosed("x")))
        self.assertIn("Cannot connect", self.explain(
            errors.ServerUnreachable("[Errno 113] No route to host")))
        self.assertIn("Secure connection refused: the server's", self.explain(
            errors.TlsRefused("The server's TLS certificate is not trusted.")))

    def test_failure_objects_and_client_errors(self) -> None:
        """A Failure is unwrapped; local client errors and 5xx have their own words."""
        self.assertIn("Not connected", self.explain(errors.NotConnected("stopped")))
        self.assertIn("Cannot reach", messages.explain(
            Failure(errors.ConnectionRefused("connection refused")), ADDRESS))
        self.assertIn("connection to the server at", self.explain(
            errors.NoResponse("no data from the server for 90 s")))
        self.assertIn("had a problem", self.explain(refusal("msg", 500, "internal error")))
        self.assertIn("had a problem", self.explain(refusal("msg", 503, "busy")))
        self.assertIn("Try again in 3 s", self.explain(
            refusal("msg", 429, "slow down", retry_after=2.6)))
        self.assertIn("when they are online", self.explain(
            refusal("call_dial", 410, "'bob' is offline")))
        self.assertEqual(self.explain(errors.NoSavedLogin("no saved login for x")),
                         "Log in with your password.")
        self.assertIn("no longer valid", self.explain(
            refusal("resume", 401, "resume token expired: log in with your password")))

    def test_settings_problems(self) -> None:
        """A missing secret file and bad TLS settings say where to fix them."""
        self.assertIn("Server settings", self.explain(SecretFileError(
            "There is no shared-secret file at /x. Choose the file ... in Server settings.")))
        self.assertIn("Fix them in Server settings",
                      self.explain(TlsSettingsError("give either a CA file or a pin")))

    def test_unknown_error(self) -> None:
        """Anything else still reads as a sentence."""
        self.assertEqual(self.explain(ValueError("odd")), "Something went wrong: odd.")


class StateTests(TestCase):
    def test_states(self) -> None:
        """The status bar's words for each state; the countdown follows the clock."""
        describe = messages.describe_state
        self.assertEqual(describe(ConnectionState("online")), "Online")
        self.assertEqual(describe(ConnectionState("handshaking")), "Connecting…")
        self.assertEqual(describe(ConnectionState("offline")), "Offline")
        state = ConnectionState("reconnecting", reason="connection refused", retry_in=4.2,
                                retry_at=104.2)
        self.assertEqual(describe(state, now=100.0), "Reconnecting in 5 s (connection"
                                                     " refused)")
        self.assertEqual(describe(state, now=103.5), "Reconnecting in 1 s (connection"
                                                     " refused)")
        self.assertEqual(describe(ConnectionState("failed", reason="hmac error")),
                         "Offline: hmac error")


class CallTextTests(TestCase):
    def test_call_ends(self) -> None:
        """Why a call ended, from either side."""
        end = CallStatus(calls.ENDED, peer="bob", end_reason=calls.HANGUP, ended_by="bob")
        self.assertEqual(messages.describe_call_end(end, "alice"), "bob hung up.")
        self.assertEqual(messages.describe_call_end(
            CallStatus(calls.ENDED, peer="bob", end_reason=calls.HANGUP, ended_by="alice"),
            "alice"), "Call ended.")
        self.assertEqual(messages.describe_call_end(
            CallStatus(calls.ENDED, peer="bob", incoming=True, end_reason=calls.CANCELLED,
                       ended_by="bob"), "alice"), "Missed call from bob.")
        self.assertEqual(messages.describe_call_end(
            CallStatus(calls.ENDED, peer="bob", end_reason=calls.NO_ANSWER), "alice"),
            "bob did not answer.")
        failed = CallStatus(calls.ENDED, peer="bob", end_reason=calls.FAILED,
                            error=refusal("call_dial", 409,
                                                        "'bob' is busy in another call"))
        self.assertEqual(messages.describe_call_end(failed, "alice"),
                         "The call could not start: 'bob' is busy in another call.")
        self.assertIn("connection to the server was lost", messages.describe_call_end(
            CallStatus(calls.ENDED, peer="bob", end_reason=calls.CONNECTION_LOST)))

    def test_times(self) -> None:
        """Durations and days for people."""
        self.assertEqual(messages.format_duration(42), "0:42")
        self.assertEqual(messages.format_duration(3723), "1:02:03")
        now = time.time()
        self.assertEqual(messages.format_day(now, now), "Today")
        self.assertEqual(messages.format_day(now - 86400, now), "Yesterday")
        self.assertRegex(messages.format_when(now - 10 * 86400, now),
                         r"^\d+ \w{3} \d{4} \d\d:\d\d$")
