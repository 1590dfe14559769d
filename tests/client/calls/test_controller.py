"""Tests for messenger.client.calls.controller: call signalling joined to the media engine."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from messenger.client.calls import controller as calls
from messenger.client.calls.audio import FakeAudioDevice
from messenger.client.calls.controller import CallController, CallStatus
from messenger.client.calls.engine import CallEngine
from messenger.client.calls.media import SessionTiming
from messenger.client.core import MessengerClient
from messenger.client.errors import NotConnected
from messenger.client.events import AccountInfo, CallEvent, ConnectionState, Observers
from messenger.client.reconnect import backoff_policy
from messenger.wire.errors import Conflict, Gone
from tests.support.keys import rsa_key
from tests.support.netsim import wait_until
from tests.support.server import SECRET, start_server

CALL_ID = "a1b2c3d4e5f60718"
FAST = SessionTiming(tick=0.02, hello_first=0.05, probe_first=0.05, direct_timeout=0.3)


def call_start(member: int = 0, peer: str = "bob", call_id: str = CALL_ID) -> dict[str, Any]:
    return {"action": "call_start", "call_id": call_id, "member": member, "peer": peer,
            "key": base64.b64encode(b"k" * 32).decode(),
            "token": base64.b64encode(bytes([member + 1]) * 32).decode(),
            "relay": ["127.0.0.1", 9999], "peer_endpoints": [], "codec": "pcm"}


class FakeClient:
    """The client core's call surface: subscribe, request (call_dial, call_hangup), account."""

    def __init__(self, name: str = "alice") -> None:
        self.observers = Observers()
        self.account = AccountInfo(name, f"{name}@example.org", False, False)
        self.dials: list[tuple[str, Any, defer.Deferred]] = []
        self.hangups: list[str | None] = []
        self.hangup_reasons: list[str | None] = []

    def request(self, action: str, fields: dict[str, Any]) -> defer.Deferred:
        if action == "call_dial":
            return self.call_dial(fields["user_id"], fields.get("codecs"))
        assert action == "call_hangup", action
        self.hangup_reasons.append(fields.get("reason"))
        return self.call_hangup(fields.get("call_id"))

    def subscribe(self, kind: str, callback: Any) -> Any:
        return self.observers.subscribe(kind, callback)

    def call_dial(self, name: str, codecs: Any = None) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.dials.append((name, codecs, d))
        return d

    def call_hangup(self, call_id: str | None = None, account_name: str | None = None) -> Any:
        self.hangups.append(call_id)
        return defer.succeed({"response": 200})

    def push(self, kind: str, **fields: Any) -> None:
        self.observers.emit("call", CallEvent(kind, {"action": kind, **fields}))

    def set_state(self, name: str) -> None:
        self.observers.emit("state", ConnectionState(name))


class FakeEngine:
    def __init__(self, on_path: Any = None, on_peer_bye: Any = None,
                 on_media: Any = None) -> None:
        self.on_path = on_path
        self.on_peer_bye = on_peer_bye
        self.on_media = on_media
        self.started: defer.Deferred = defer.Deferred()
        self.params: Any = None
        self.stopped = 0
        self.muted = False

    def start(self, params: Any) -> defer.Deferred:
        self.params = params
        return self.started

    def stop(self) -> defer.Deferred:
        self.stopped += 1
        return defer.succeed(None)

    def set_muted(self, muted: bool) -> None:
        self.muted = muted

    def stats(self) -> dict[str, Any]:
        return {"path": "relay"}


class ControllerTestCase(TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.client = FakeClient()
        self.engines: list[FakeEngine] = []
        self.controller = CallController(self.client, self.make_engine, self.clock,
                                         codecs=["pcm"])
        self.seen: list[CallStatus] = []
        self.controller.subscribe(self.seen.append)

    def make_engine(self, **callbacks: Any) -> FakeEngine:
        engine = FakeEngine(**callbacks)
        self.engines.append(engine)
        return engine

    def states(self) -> list[str]:
        return [status.state for status in self.seen]

    def start_outgoing_call(self) -> FakeEngine:
        self.controller.dial("bob")
        self.client.dials[-1][2].callback({"response": 200, "call_id": CALL_ID,
                                           "state": "ringing"})
        self.client.push("call_start", **call_start())
        engine = self.engines[-1]
        self.clock.advance(2)
        engine.started.callback(None)
        engine.on_media("active", "")     # audio flows both ways
        return engine


class OutgoingCallTests(ControllerTestCase):
    def test_dial_start_and_hang_up(self) -> None:
        """A dial rings, call_start starts the engine with the call's parameters, the
        call is active from the moment media runs, and hanging up stops the engine and
        tells the server with the call's id."""
        engine = self.start_outgoing_call()
        self.assertEqual(self.client.dials[0][:2], ("bob", ["pcm"]))
        self.assertEqual(self.states(), ["outgoing", "outgoing", "connecting", "active"])
        self.assertEqual(engine.params.member, 0)
        self.assertEqual(engine.params.call_id, bytes.fromhex(CALL_ID))
        status = self.controller.status
        self.assertEqual((status.peer, status.call_id, status.started), ("bob", CALL_ID, 2))
        self.clock.advance(65)
        self.assertEqual(self.controller.elapsed(), 65)
        self.controller.hangup()
        self.assertEqual(self.controller.status.state, "ended")
        self.assertEqual((self.controller.status.end_reason, self.controller.status.ended_by),
                         (calls.HANGUP, "alice"))
        self.assertEqual(engine.stopped, 1)
        self.assertEqual(self.client.hangups, [CALL_ID])
        self.clock.advance(10)
        self.assertEqual(self.controller.elapsed(), 65)

    def test_refused_dial_ends_with_the_error(self) -> None:
        """A dial the server refuses (the contact is offline) ends the call as failed,
        with the error, and the Deferred fails with it."""
        d = self.controller.dial("bob")
        self.client.dials[0][2].errback(Gone("'bob' is offline"))
        self.failureResultOf(d, Gone)
        status = self.controller.status
        self.assertEqual((status.state, status.end_reason), ("ended", calls.FAILED))
        self.assertIsInstance(status.error, Gone)
        self.assertEqual(self.engines, [])

    def test_no_second_call(self) -> None:
        """Dialling while a call is live is refused at once; the live call stays."""
        self.controller.dial("bob")
        self.failureResultOf(self.controller.dial("carol"), Conflict)
        self.assertEqual(self.controller.status.peer, "bob")
        self.assertEqual(len(self.client.dials), 1)

    def test_cancel_before_the_dial_reply(self) -> None:
        """Hanging up while the dial is on its way ends the call here at once, and the
        server's call is hung up by id as soon as the reply names it."""
        self.controller.dial("bob")
        self.controller.hangup()
        self.assertEqual(self.controller.status.end_reason, calls.CANCELLED)
        self.assertEqual(self.client.hangups, [None])
        self.client.dials[0][2].callback({"response": 200, "call_id": CALL_ID,
                                          "state": "ringing"})
        self.assertEqual(self.client.hangups, [None, CALL_ID])

    def test_peer_hangs_up(self) -> None:
        """call_end from the server ends the call with its reason and who did it."""
        engine = self.start_outgoing_call()
        self.client.push("call_end", call_id=CALL_ID, reason="hangup", by="bob")
        status = self.controller.status
        self.assertEqual((status.state, status.end_reason, status.ended_by),
                         ("ended", calls.HANGUP, "bob"))
        self.assertEqual(engine.stopped, 1)
        self.assertEqual(self.client.hangups, [])

    def test_call_end_of_another_call_is_ignored(self) -> None:
        """A call_end naming another call id leaves the current call alone."""
        self.start_outgoing_call()
        self.client.push("call_end", call_id="ffffffffffffffff", reason="hangup", by="x")
        self.assertEqual(self.controller.status.state, "active")

    def test_peer_bye_ends_the_call(self) -> None:
        """The peer's media BYE ends the call on this side too."""
        engine = self.start_outgoing_call()
        engine.on_peer_bye()
        self.assertEqual((self.controller.status.state, self.controller.status.ended_by),
                         ("ended", "bob"))
        self.assertEqual(engine.stopped, 1)

    def test_connecting_until_audio_flows_both_ways(self) -> None:
        """A running engine alone does not make the call active: only the engine's
        "audio both ways" does, and the timer starts then."""
        self.controller.dial("bob")
        self.client.push("call_start", **call_start())
        engine = self.engines[0]
        engine.started.callback(None)
        self.clock.advance(3)
        self.assertEqual((self.controller.status.state, self.controller.elapsed()),
                         ("connecting", 0.0))
        engine.on_media("active", "")
        self.clock.advance(2)
        self.assertEqual((self.controller.status.state, self.controller.elapsed()),
                         ("active", 2.0))

    def test_setup_failure_ends_for_both_with_the_reason(self) -> None:
        """No audio both ways in time: the call ends "media failed" with the engine's
        words, and the server is told with that reason (so the peer hears it too)."""
        self.controller.dial("bob")
        self.client.push("call_start", **call_start())
        engine = self.engines[0]
        engine.started.callback(None)
        engine.on_media("failed", "the server's call relay does not answer")
        status = self.controller.status
        self.assertEqual((status.state, status.end_reason), ("ended", calls.MEDIA_FAILED))
        self.assertEqual(str(status.error), "the server's call relay does not answer")
        self.assertEqual((self.client.hangups, self.client.hangup_reasons),
                         ([CALL_ID], ["media failed"]))
        self.assertEqual(engine.stopped, 1)

    def test_reconnecting_and_back(self) -> None:
        """Silence from the peer shows as reconnecting; heard again, active again, and
        the call's start time is kept."""
        engine = self.start_outgoing_call()
        started = self.controller.status.started
        engine.on_media("reconnecting", "")
        self.assertEqual(self.controller.status.state, "reconnecting")
        self.assertTrue(self.controller.status.live)
        engine.on_media("active", "")
        self.assertEqual((self.controller.status.state, self.controller.status.started),
                         ("active", started))

    def test_lost_media_ends_the_call(self) -> None:
        """After the engine gives the line up the call ends "media lost" for both."""
        engine = self.start_outgoing_call()
        engine.on_media("reconnecting", "")
        engine.on_media("lost", "no audio from the other side for 20 seconds")
        self.assertEqual(self.controller.status.end_reason, calls.MEDIA_LOST)
        self.assertEqual(self.client.hangup_reasons, ["media lost"])

    def test_media_failure_hangs_up(self) -> None:
        """When the engine cannot start, the call fails and the server is told."""
        self.controller.dial("bob")
        self.client.push("call_start", **call_start())
        self.engines[0].started.errback(OSError("no UDP socket"))
        status = self.controller.status
        self.assertEqual((status.state, status.end_reason), ("ended", calls.FAILED))
        self.assertIsInstance(status.error, OSError)
        self.assertEqual(self.client.hangups, [CALL_ID])
        self.flushLoggedErrors(OSError)

    def test_path_and_mute(self) -> None:
        """Path changes from the engine and mute show in the status; mute reaches the
        engine."""
        engine = self.start_outgoing_call()
        engine.on_path("direct")
        self.controller.set_muted(True)
        self.assertEqual((self.controller.status.path, self.controller.status.muted),
                         ("direct", True))
        self.assertTrue(engine.muted)
        self.assertEqual(self.controller.stats(), {"path": "relay"})

    def test_lost_connection_ends_the_call(self) -> None:
        """When the connection to the server goes, the call ends here with that reason."""
        engine = self.start_outgoing_call()
        self.client.set_state("reconnecting")
        self.assertEqual(self.controller.status.end_reason, calls.CONNECTION_LOST)
        self.assertEqual(engine.stopped, 1)

    def test_malformed_call_start_fails(self) -> None:
        """A call_start that cannot be parsed ends the call as failed, never a crash."""
        self.controller.dial("bob")
        self.client.push("call_start", call_id=CALL_ID, member=0, key="!!", token="x",
                         relay=["127.0.0.1", 9])
        self.assertEqual(self.controller.status.end_reason, calls.FAILED)
        self.assertEqual(self.client.hangups, [CALL_ID])


class IncomingCallTests(ControllerTestCase):
    def test_ring_accept_start(self) -> None:
        """A ring makes the call incoming; accepting dials back, and call_start starts
        the media as member 1."""
        self.client.push("call_ring", call_id=CALL_ID, **{"from": "bob"})
        self.assertEqual((self.controller.status.state, self.controller.status.incoming),
                         ("incoming", True))
        self.controller.accept()
        self.assertEqual(self.client.dials[0][0], "bob")
        self.client.push("call_start", **call_start(member=1))
        self.client.dials[0][2].callback({"response": 200, "call_id": CALL_ID,
                                          "state": "active"})
        self.engines[0].started.callback(None)
        self.assertEqual(self.states(), ["incoming", "accepting", "connecting"])
        self.engines[0].on_media("active", "")
        self.assertEqual(self.states(), ["incoming", "accepting", "connecting", "active"])
        self.assertEqual(self.engines[0].params.member, 1)

    def test_decline(self) -> None:
        """Declining tells the server (by id) and starts no media."""
        self.client.push("call_ring", call_id=CALL_ID, **{"from": "bob"})
        self.controller.decline()
        self.assertEqual((self.controller.status.end_reason, self.client.hangups),
                         (calls.DECLINED, [CALL_ID]))
        self.assertEqual(self.engines, [])

    def test_caller_cancels(self) -> None:
        """The caller giving up ends the ring here ('cancelled' by the caller)."""
        self.client.push("call_ring", call_id=CALL_ID, **{"from": "bob"})
        self.client.push("call_end", call_id=CALL_ID, reason="cancelled", by="bob")
        self.assertEqual((self.controller.status.end_reason, self.controller.status.ended_by),
                         (calls.CANCELLED, "bob"))

    def test_ring_while_dialling_the_same_peer(self) -> None:
        """Both dialled each other: the ring is absorbed (our dial accepts theirs)."""
        self.controller.dial("bob")
        self.client.push("call_ring", call_id=CALL_ID, **{"from": "Bob"})
        self.assertEqual((self.controller.status.state, self.controller.status.call_id),
                         ("outgoing", CALL_ID))

    def test_accept_without_ring_is_refused(self) -> None:
        """Accept and decline with nothing ringing fail and change nothing."""
        self.failureResultOf(self.controller.accept(), Conflict)
        self.failureResultOf(self.controller.decline(), Conflict)
        self.assertEqual(self.controller.status.state, "idle")

    def test_new_call_after_the_last_ended(self) -> None:
        """After a call ended a new ring starts afresh (not muted, no old engine)."""
        self.start_outgoing_call()
        self.controller.set_muted(True)
        self.controller.hangup()
        self.client.push("call_ring", call_id="0011223344556677", **{"from": "carol"})
        status = self.controller.status
        self.assertEqual((status.state, status.peer, status.muted), ("incoming", "carol",
                                                                     False))
        self.assertIsNone(self.controller.engine)


class TransitionTableTests(TestCase):
    def test_every_live_state_can_end(self) -> None:
        """Every live state has a way out to ended, and ended allows a new call."""
        for state in calls.LIVE:
            self.assertIn(calls.ENDED, calls.TRANSITIONS[state])
        self.assertEqual(calls.TRANSITIONS[calls.ENDED], {calls.OUTGOING, calls.INCOMING})


class RealServerCallTests(TestCase):
    """Two client cores and two controllers call each other through a real server."""

    timeout = 60

    def client(self, port: int) -> MessengerClient:
        client = MessengerClient("127.0.0.1", port, SECRET, config_dir=Path(self.mktemp()),
                                 client_key=rsa_key("client", 2048),
                                 backoff=backoff_policy(0.05, 0.2))
        self.addCleanup(client.stop)
        return client

    def controller(self, client: MessengerClient) -> tuple[CallController, FakeAudioDevice]:
        device = FakeAudioDevice()

        def engine(**callbacks: Any) -> CallEngine:
            return CallEngine(reactor, audio=device, interface="127.0.0.1", timing=FAST,
                              **callbacks)
        controller = CallController(client, engine, codecs=["pcm"])
        self.addCleanup(controller.close)
        return controller, device

    @defer.inlineCallbacks
    def test_call_and_hang_up_on_either_side(self) -> Any:
        """Alice dials, Bob rings and accepts, audio flows both ways, and Bob's hang-up
        ends the call on Alice's side too."""
        server = yield start_server(self, udp_port=0)   # relay port: any free one
        alice, bob = self.client(server.tcp_port), self.client(server.tcp_port)
        yield alice.register("alice", "correct horse", "alice@example.org")
        yield bob.register("bob", "correct horse", "bob@example.org")
        yield alice.add_contact("bob")
        (a_calls, a_device), (b_calls, b_device) = self.controller(alice), self.controller(bob)
        reply = yield a_calls.dial("bob")
        self.assertEqual(reply["state"], "ringing")
        yield wait_until(lambda: b_calls.status.state == "incoming")
        self.assertEqual(b_calls.status.peer, "alice")
        yield b_calls.accept()
        yield wait_until(lambda: a_calls.status.state == b_calls.status.state == "active")
        yield wait_until(lambda: len(a_device.played) > 5 and len(b_device.played) > 5)
        self.assertGreater(a_calls.stats().audio_received, 0)
        self.assertIn(b_calls.stats().path, ("direct", "relay"))
        yield b_calls.hangup()
        yield wait_until(lambda: a_calls.status.state == "ended")
        self.assertEqual((a_calls.status.end_reason, a_calls.status.ended_by),
                         (calls.HANGUP, "bob"))
        self.assertFalse(a_calls.engine.running)
        self.assertFalse(b_calls.engine.running)

    @defer.inlineCallbacks
    def test_dial_without_connection(self) -> Any:
        """Dialling with no session fails with NotConnected and the call ends failed."""
        client = self.client(1)
        controller, _ = self.controller(client)
        yield self.assertFailure(controller.dial("bob"), NotConnected)
        self.assertEqual(controller.status.end_reason, calls.FAILED)
