"""Tests for messenger.client.connection: one connection's life as a transition table,
with a scripted dial (`tests.client.fakes`) and a task.Clock. What its owners hear is
recorded; whatever arrives for a connection that has ended must change nothing."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.trial import unittest

from messenger.client.connection import Connection, Phase, Timeouts
from messenger.client.errors import (
    AccountLocked,
    ConnectionClosed,
    ConnectionRefused,
    NoResponse,
    NotConnected,
    ProtocolViolation,
)
from messenger.client.events import Observers, ServerLimits
from messenger.client.inbox import Inbox
from messenger.client.known_servers import PinOutcome
from messenger.client.plan import AUTHENTICATE, LoginPlan
from messenger.wire.errors import Forbidden
from tests.client.fakes import FakeProtocol

ALICE = {"account_name": "alice", "email": "a@example.org", "admin": False,
         "premium": False}


def message(msg_id: int) -> dict[str, Any]:
    return {"action": "msg", "msg_id": msg_id, "time": float(msg_id), "from": "bob",
            "to": "alice", "message": f"m{msg_id}"}


class Owners:
    """Both owners of a connection (lifecycle and account), recording what they hear."""

    def __init__(self, inbox: Inbox) -> None:
        self.heard: list[tuple[Any, ...]] = []
        self.delivered: list[int] = []
        self.inbox = inbox
        self.pin = PinOutcome("h:1", "sha256:" + "ab" * 32, first_use=True)

    # lifecycle
    def connection_phase(self, phase: Phase) -> None:
        self.heard.append(("phase", phase))

    def connection_online(self) -> None:
        self.heard.append(("online",))

    def connection_closed(self, error: Any, during_login: bool) -> None:
        self.heard.append(("closed", type(error), during_login))

    # account
    def check_server_key(self, key: Any) -> PinOutcome:
        self.heard.append(("key", key))
        return self.pin

    def connection_established(self, established: Any, pin: Any) -> None:
        self.heard.append(("established", pin))

    def inbox_for(self, account_name: str) -> Inbox:
        return self.inbox

    def connection_logged_in(self, connection: Any, reply: Any, account: Any) -> None:
        self.heard.append(("logged_in", account.account_name))

    def connection_delivered(self, messages: list[Any]) -> None:
        self.delivered += [m.msg_id for m in messages]

    def account_changed(self, account: Any) -> None:
        self.heard.append(("account", account.account_name))

    def conversation_pushed(self, message: Any) -> None:
        self.heard.append(("conversation", message["action"]))

    def connection_ended(self, connection: Any) -> None:
        self.heard.append(("ended",))

    def connection_file_data(self, plaintext: bytes) -> None:
        self.heard.append(("file data", plaintext))

    def connection_file_push(self, message: Any) -> None:
        self.heard.append(("file push", message["action"]))


class ConnectionTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.owners = Owners(Inbox())
        self.dials: list[defer.Deferred] = []
        self.builds: list[Any] = []
        self.cancelled: list[defer.Deferred] = []
        self.connection = self.make()

    def make(self, **timeouts: Any) -> Connection:
        plan = LoginPlan(AUTHENTICATE, "alice", password="pw", explicit=True)
        return Connection(self.owners, self.owners, plan, self.dial, self.new_protocol,
                          self.clock, Observers(), Timeouts(**timeouts))

    def dial(self, build: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred(self.cancelled.append)
        self.dials.append(d)
        self.builds.append(build)
        return d

    def new_protocol(self, check_key: Any) -> FakeProtocol:
        protocol = FakeProtocol(self.clock)
        protocol.check_key = check_key
        return protocol

    def connect(self) -> FakeProtocol:
        """Dial and accept; the protocol is made through the connection's own build."""
        self.connection.start()
        protocol = self.builds[-1]()
        self.dials[-1].callback(protocol)
        return protocol

    def establish(self, protocol: FakeProtocol) -> None:
        protocol.check_key("the server's key")
        protocol.establish()

    def logged_in(self, sync: list[dict[str, Any]] | None = None) -> FakeProtocol:
        protocol = self.connect()
        self.establish(protocol)
        protocol.answer(protocol.take("authenticate"), response=200, user=ALICE, token="t")
        protocol.answer(protocol.take("sync"), response=202, alert=sync or [], more=False)
        return protocol

    def phases(self) -> list[Phase]:
        return [entry[1] for entry in self.owners.heard if entry[0] == "phase"]


class LifeTests(ConnectionTestCase):
    def test_a_connection_walks_through_its_phases(self):
        """Dial, handshake, login, sync, online: each phase reported once, the key
        checked by the account, the login reply handed over before the sync."""
        protocol = self.logged_in()
        self.assertEqual(self.phases(), [Phase.CONNECTING, Phase.HANDSHAKING,
                                         Phase.LOGGING_IN, Phase.SYNCING, Phase.ONLINE])
        heard = [entry[0] for entry in self.owners.heard]
        self.assertLess(heard.index("key"), heard.index("established"))
        self.assertLess(heard.index("logged_in"), heard.index("online"))
        self.assertEqual(self.owners.heard[heard.index("established")][1], self.owners.pin)
        self.assertEqual(self.connection.phase, Phase.ONLINE)
        self.assertEqual(protocol.requests[0].fields["user"]["password"], "pw")

    def test_requests_need_a_logged_in_session(self):
        """request() before login fails with NotConnected; after, it is sent."""
        protocol = self.connect()
        self.failureResultOf(self.connection.request("get_contacts"), NotConnected)
        self.establish(protocol)
        protocol.answer(protocol.take("authenticate"), response=200, user=ALICE)
        d = self.connection.request("get_contacts")
        protocol.answer(protocol.take("get_contacts"), response=202, alert=[])
        self.assertEqual(self.successResultOf(d)["response"], 202)

    def test_a_refused_dial_closes_it_as_unreachable(self):
        """The dial failing ends the connection with the typed reason."""
        self.connection.start()
        self.dials[-1].errback(ConnectionRefusedError())
        self.assertEqual(self.owners.heard[-1], ("closed", ConnectionRefused, False))
        self.assertEqual(self.connection.phase, Phase.CLOSED)

    def test_a_refused_login_says_quit_and_reports_it_as_a_login_failure(self):
        """The login's error reply: goodbye, then closed(during_login) with its type."""
        protocol = self.connect()
        self.establish(protocol)
        protocol.refuse(protocol.take("authenticate"), Forbidden("account locked"))
        self.assertEqual(self.owners.heard[-1], ("closed", AccountLocked, True))
        self.assertEqual(protocol.requests[-1].action, "quit")
        self.assertFalse(protocol.open)

    def test_a_login_reply_without_a_user_drops_the_connection(self):
        """A reply the client cannot use is a protocol violation, not a login."""
        protocol = self.connect()
        self.establish(protocol)
        protocol.answer(protocol.take("authenticate"), response=200)
        self.assertIsInstance(protocol.aborted, ProtocolViolation)
        self.assertEqual(self.owners.heard[-1], ("closed", ProtocolViolation, False))

    def test_lost_connection_is_reported_once_with_its_reason(self):
        """The server closing: closed(ConnectionClosed), the account told it ended."""
        protocol = self.logged_in()
        protocol.lose(ConnectionDone())
        self.assertEqual(self.owners.heard[-2:], [("ended",),
                                                  ("closed", ConnectionClosed, False)])

    def test_drop_aborts_with_the_given_cause(self):
        """drop() aborts; the loss that follows reports that cause."""
        self.logged_in()
        self.connection.drop(NoResponse("a message was not acknowledged"))
        self.assertEqual(self.owners.heard[-1], ("closed", NoResponse, False))

    def test_limits_reach_the_protocol(self):
        """limit() sets the largest frame the protocol will send."""
        protocol = self.logged_in()
        self.connection.limit(ServerLimits(max_frame=1234))
        self.assertEqual(protocol.max_send, 1234)


class WatchdogTests(ConnectionTestCase):
    def test_a_silent_session_is_dropped(self):
        """No frame for dead_after seconds aborts with NoResponse; frames reset it."""
        protocol = self.logged_in()
        self.clock.advance(60)
        protocol.push({"action": "presence", "account_name": "bob", "status": "away"})
        self.clock.advance(60)
        self.assertIsNone(protocol.aborted)
        self.clock.advance(30)
        self.assertIsInstance(protocol.aborted, NoResponse)

    def test_a_handshake_that_never_finishes_is_dropped(self):
        """The handshake has handshake seconds."""
        self.connection = self.make(handshake=5.0)
        protocol = self.connect()
        self.clock.advance(5)
        self.assertIsInstance(protocol.aborted, NoResponse)


class StaleInputTests(ConnectionTestCase):
    """After the connection ended, nothing that arrives for it reaches an owner."""

    def test_abandon_cancels_the_dial(self):
        """An abandoned attempt cancels its dial; the cancellation reports nothing."""
        self.connection.start()
        heard = list(self.owners.heard)
        self.connection.abandon()
        self.assertEqual(self.cancelled, self.dials)
        self.assertEqual(self.owners.heard, [*heard, ("ended",)])

    def test_late_inputs_after_abandon_change_nothing(self):
        """The close that follows an abandon, a push and the watchdog's time are dropped
        by the table: no phase, no delivery, no close reported."""
        protocol = self.logged_in()
        self.connection.abandon()
        heard = list(self.owners.heard)
        self.assertFalse(protocol.open)         # aborted: its close came back as "lost"
        protocol.on_push(message(9))
        self.clock.advance(1000)
        self.assertEqual(self.owners.heard, heard)
        self.assertEqual(self.owners.delivered, [])
        self.assertEqual(self.connection.phase, Phase.CLOSED)

    def test_a_lost_login_is_reported_once_as_a_lost_connection(self):
        """The connection lost during the login: the closing comes first and is the one
        reported; the login request failing after it changes nothing."""
        protocol = self.connect()
        self.establish(protocol)
        protocol.lose(ConnectionDone())
        closes = [entry for entry in self.owners.heard if entry[0] == "closed"]
        self.assertEqual(closes, [("closed", ConnectionClosed, False)])


class SyncTests(ConnectionTestCase):
    def test_pages_are_followed_and_pushes_merged_once_in_order(self):
        """Pushes during login and sync are held; pages follow 'more'; at the end the
        held ones above the cursor come, each message once, in order."""
        protocol = self.connect()
        self.establish(protocol)
        protocol.push(message(2))                       # before the login reply
        protocol.answer(protocol.take("authenticate"), response=200, user=ALICE)
        protocol.push(message(4))
        protocol.answer(protocol.take("sync"), response=202,
                        alert=[message(1), message(2)], more=True)
        page = protocol.take("sync")
        self.assertEqual(page.fields["since"], 2)
        protocol.answer(page, response=202, alert=[message(3)], more=False)
        self.assertEqual(self.owners.delivered, [1, 2, 3, 4])
        self.assertEqual(self.connection.phase, Phase.ONLINE)

    def test_more_without_anything_new_ends_the_sync(self):
        """A server that says 'more' but sends nothing new cannot keep the client in an
        endless sync."""
        protocol = self.connect()
        self.establish(protocol)
        protocol.answer(protocol.take("authenticate"), response=200, user=ALICE)
        protocol.answer(protocol.take("sync"), response=202, alert=[], more=True)
        self.assertEqual(self.connection.phase, Phase.ONLINE)
        self.assertEqual(protocol.pending("sync"), [])

    def test_too_many_pushes_during_sync_are_read_again_instead(self):
        """Past the inbox's buffer the pushes are dropped and one more sync round reads
        them from the server: memory stays bounded and nothing is lost."""
        self.owners.inbox = Inbox(max_buffered=2)
        protocol = self.connect()
        self.establish(protocol)
        protocol.answer(protocol.take("authenticate"), response=200, user=ALICE)
        for msg_id in (2, 3, 4):
            protocol.push(message(msg_id))
        protocol.answer(protocol.take("sync"), response=202, alert=[message(1)],
                        more=False)
        again = protocol.take("sync")
        self.assertEqual(again.fields["since"], 1)
        self.assertEqual(self.connection.phase, Phase.SYNCING)
        protocol.answer(again, response=202, alert=[message(2), message(3), message(4)],
                        more=False)
        self.assertEqual(self.owners.delivered, [1, 2, 3, 4])
        self.assertEqual(self.connection.phase, Phase.ONLINE)

    def test_a_failed_sync_drops_the_connection(self):
        """A sync the server refuses ends the connection (the next one syncs again)."""
        protocol = self.connect()
        self.establish(protocol)
        protocol.answer(protocol.take("authenticate"), response=200, user=ALICE)
        protocol.refuse(protocol.take("sync"), Forbidden("no"))
        self.assertIn("sync failed", str(protocol.aborted))


class CloseTests(ConnectionTestCase):
    def test_close_says_goodbye_and_reports_nothing(self):
        """close('quit') online: quit, closed, and the lifecycle hears no failure."""
        protocol = self.logged_in()
        d = self.connection.close("quit")
        self.successResultOf(d)
        self.assertEqual(protocol.requests[-1].action, "quit")
        self.assertNotIn("closed", [entry[0] for entry in self.owners.heard])

    def test_close_while_dialing_cancels_the_dial(self):
        """Nothing to say yet: the dial is cancelled and close fires at once."""
        self.connection.start()
        self.successResultOf(self.connection.close("quit"))
        self.assertEqual(self.cancelled, self.dials)
        self.assertNotIn("closed", [entry[0] for entry in self.owners.heard])

    def test_a_server_that_does_not_answer_goodbye_is_cut_off(self):
        """No answer to quit within the goodbye time: the connection is aborted."""
        protocol = self.logged_in()
        protocol.request = lambda *args, **kwargs: defer.Deferred()
        d = self.connection.close("quit")
        self.assertNoResult(d)
        self.clock.advance(2.0)
        self.assertIsInstance(protocol.aborted, NoResponse)
        self.successResultOf(d)
