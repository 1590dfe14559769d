"""Call signalling over JIM against a real server, and a call carried by its UDP relay."""

from __future__ import annotations

from array import array
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from messenger.client.calls.audio import FakeAudioDevice
from messenger.client.calls.codec import FRAME_SAMPLES, PCM
from messenger.client.calls.engine import CallEngine
from messenger.client.calls.media import SessionTiming, call_params_from_jim
from tests.support.jimclient import register
from tests.support.netsim import blocking_session_factory, relay_only, wait_until
from tests.support.server import start_server

FAST = SessionTiming(tick=0.02, hello_first=0.05, probe_first=0.05, direct_timeout=0.3)


class CallSignallingTests(TestCase):
    """call_dial / call_ring / call_start / call_hangup / call_end between real clients."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield start_server(self, call_ring_timeout=0.5)
        port = self.server.tcp_port
        self.alice, _ = yield register(self, port, "alice")
        self.bob, _ = yield register(self, port, "bob")
        self.carol, _ = yield register(self, port, "carol")
        for client, contacts in ((self.alice, ("bob", "carol")), (self.bob, ("alice", "carol")),
                                 (self.carol, ("alice", "bob"))):
            for name in contacts:
                reply = yield client.request("add_contact", user_id=name)
                self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def start_call(self) -> Any:
        reply = yield self.alice.request("call_dial", user_id="bob", codecs=["opus", "pcm"])
        self.assertEqual((reply["response"], reply["state"]), (200, "ringing"))
        ring = yield self.bob.wait_push("call_ring")
        self.assertEqual((ring["from"], ring["call_id"]), ("alice", reply["call_id"]))
        answer = yield self.bob.request("call_dial", user_id="alice", codecs=["pcm"])
        self.assertEqual((answer["response"], answer["state"]), (200, "active"))
        start_a = yield self.alice.wait_push("call_start")
        start_b = yield self.bob.wait_push("call_start")
        return reply["call_id"], start_a, start_b

    @defer.inlineCallbacks
    def test_both_dial_starts_the_call(self) -> Any:
        """When both have dialled, both get call_start with the same id and key and their
        own member index, token and the relay's UDP address; the codec is negotiated."""
        call_id, start_a, start_b = yield self.start_call()
        self.assertEqual((start_a["call_id"], start_b["call_id"]), (call_id, call_id))
        self.assertEqual((start_a["member"], start_b["member"]), (0, 1))
        self.assertEqual((start_a["peer"], start_b["peer"]), ("bob", "alice"))
        self.assertEqual(start_a["key"], start_b["key"])
        self.assertNotEqual(start_a["token"], start_b["token"])
        self.assertEqual(start_a["relay"], ["127.0.0.1", self.server.ctx.calls.relay_port])
        self.assertEqual((start_a["codec"], start_b["codec"]), ("pcm", "pcm"))
        self.assertIn(bytes.fromhex(call_id), self.server.ctx.call_table)
        params = call_params_from_jim(start_a)
        self.assertEqual(params.member, 0)

    @defer.inlineCallbacks
    def test_hangup_ends_for_both(self) -> Any:
        """A hang-up on either side sends call_end to both and frees the relay entry."""
        call_id, _, _ = yield self.start_call()
        reply = yield self.bob.request("call_hangup", call_id=call_id)
        self.assertEqual(reply["response"], 200)
        end_a = yield self.alice.wait_push("call_end")
        end_b = yield self.bob.wait_push("call_end")
        self.assertEqual((end_a["reason"], end_a["by"]), ("hangup", "bob"))
        self.assertEqual(end_b["call_id"], call_id)
        self.assertNotIn(bytes.fromhex(call_id), self.server.ctx.call_table)

    @defer.inlineCallbacks
    def test_decline(self) -> Any:
        """The callee hanging up a ring declines it: both get call_end 'declined'."""
        reply = yield self.alice.request("call_dial", user_id="bob")
        yield self.bob.wait_push("call_ring")
        yield self.bob.request("call_hangup")
        end = yield self.alice.wait_push("call_end")
        self.assertEqual((end["call_id"], end["reason"]), (reply["call_id"], "declined"))
        end_b = yield self.bob.wait_push("call_end")
        self.assertEqual(end_b["reason"], "declined")

    @defer.inlineCallbacks
    def test_busy(self) -> Any:
        """Dialling someone already in a call answers 409; the running call is untouched."""
        call_id, _, _ = yield self.start_call()
        reply = yield self.carol.request("call_dial", user_id="alice")
        self.assertEqual(reply["response"], 409)
        self.assertIn("busy", reply["error"])
        self.assertIn(bytes.fromhex(call_id), self.server.ctx.call_table)
        reply = yield self.alice.request("call_dial", user_id="carol")
        self.assertEqual(reply["response"], 409)

    @defer.inlineCallbacks
    def test_offline(self) -> Any:
        """Dialling a contact who is offline answers 410."""
        yield self.carol.close()
        yield wait_until(lambda: not self.server.ctx.router.is_online(3))
        reply = yield self.alice.request("call_dial", user_id="carol")
        self.assertEqual(reply["response"], 410)
        self.assertIn("offline", reply["error"])

    @defer.inlineCallbacks
    def test_not_a_contact(self) -> Any:
        """Dialling someone not in your contacts answers 403; unknown names 404."""
        client, _ = yield register(self, self.server.tcp_port, "dave")
        reply = yield client.request("call_dial", user_id="alice")
        self.assertEqual(reply["response"], 403)
        reply = yield client.request("call_dial", user_id="nobody")
        self.assertEqual(reply["response"], 404)
        self.assertEqual(self.alice.pushes, [p for p in self.alice.pushes
                                             if p["action"] != "call_ring"])

    @defer.inlineCallbacks
    def test_ring_timeout(self) -> Any:
        """An unanswered dial ends after the ring timeout with call_end 'no answer'."""
        reply = yield self.alice.request("call_dial", user_id="bob")
        end = yield self.alice.wait_push("call_end", timeout=5)
        self.assertEqual((end["call_id"], end["reason"]), (reply["call_id"], "no answer"))
        end_b = yield self.bob.wait_push("call_end")
        self.assertEqual(end_b["reason"], "no answer")
        self.assertIsNone(self.server.ctx.calls.call_of(1))

    @defer.inlineCallbacks
    def test_disconnect_ends_call(self) -> Any:
        """A member's connection dropping ends the call for the other."""
        call_id, _, _ = yield self.start_call()
        self.bob.transport.abortConnection()
        end = yield self.alice.wait_push("call_end")
        self.assertEqual((end["call_id"], end["reason"], end["by"]),
                         (call_id, "disconnected", "bob"))
        self.assertNotIn(bytes.fromhex(call_id), self.server.ctx.call_table)

    @defer.inlineCallbacks
    def test_bad_input(self) -> Any:
        """Wrong types and unknown calls get a 400/404 with an error; the connection stays."""
        reply = yield self.alice.request("call_dial", user_id=42)
        self.assertEqual(reply["response"], 400)
        reply = yield self.alice.request("call_dial", user_id="bob", codecs="opus")
        self.assertEqual(reply["response"], 400)
        reply = yield self.alice.request("call_hangup", call_id="00" * 8)
        self.assertEqual(reply["response"], 404)
        reply = yield self.alice.request("call_dial", user_id="alice")
        self.assertEqual(reply["response"], 400)
        reply = yield self.alice.request("get_contacts")
        self.assertEqual(reply["response"], 202)


class CallAbuseAndMediaTests(TestCase):
    """Ring floods, the media verdict in call_hangup, and calls whose media never came."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield start_server(self)
        port = self.server.tcp_port
        self.clients = {}
        for name in ("alice", "bob", "carol"):
            client, _ = yield register(self, port, name)
            self.clients[name] = client
        for name in ("alice", "carol"):
            reply = yield self.clients[name].request("add_contact", user_id="bob")
            self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_ring_flood_refused_and_busy_ends_with_the_ring(self) -> Any:
        """A caller who dials and cancels in a loop is refused with 429 and retry_after
        after a few rings; the victim is free the moment each ring ends, and someone
        else can still call them (the callee's own limit counts every caller)."""
        alice, bob, carol = (self.clients[n] for n in ("alice", "bob", "carol"))
        codes = []
        for _ in range(12):
            reply = yield alice.request("call_dial", user_id="bob")
            codes.append(reply["response"])
            if reply["response"] == 200:
                yield alice.request("call_hangup")
                self.assertIsNone(self.server.ctx.calls.call_of(2))   # bob is free again
        self.assertEqual(codes[:6], [200] * 6)
        self.assertEqual(set(codes[6:]), {429})
        refused = yield alice.request("call_dial", user_id="bob")
        self.assertGreater(refused["retry_after"], 0)
        # the callee's limit: bob was rung six times this minute, by anyone
        reply = yield carol.request("call_dial", user_id="bob")
        self.assertEqual(reply["response"], 429)
        self.assertIn("called too often", reply["error"])
        yield wait_until(lambda: len([p for p in bob.pushes
                                      if p["action"] == "call_end"]) == 6)
        rings = [p for p in bob.pushes if p["action"] == "call_ring"]
        self.assertEqual(len(rings), 6, [p["action"] for p in bob.pushes])

    @defer.inlineCallbacks
    def test_hangup_reason_reaches_both(self) -> Any:
        """A client that gave up on the media says so; both call_end carry the reason.
        Unknown reasons are a 400."""
        alice, bob = self.clients["alice"], self.clients["bob"]
        yield alice.request("call_dial", user_id="bob")
        yield bob.wait_push("call_ring")
        yield bob.request("call_dial", user_id="alice")
        start = yield alice.wait_push("call_start")
        self.assertNotIn("peer_endpoints", start)
        reply = yield alice.request("call_hangup", reason="bored")
        self.assertEqual(reply["response"], 400)
        reply = yield alice.request("call_hangup", reason="media lost")
        self.assertEqual(reply["response"], 200)
        ends = yield defer.gatherResults([alice.wait_push("call_end"),
                                          bob.wait_push("call_end")])
        self.assertEqual([(e["reason"], e["by"]) for e in ends],
                         [("media lost", "alice")] * 2)

    @defer.inlineCallbacks
    def test_call_without_media_ends(self) -> Any:
        """If the relay never hears both members, the server ends the call ("media
        failed") rather than keep a call alive on an empty path."""
        self.server.ctx.calls.media_timeout = 0.3
        alice, bob = self.clients["alice"], self.clients["bob"]
        yield alice.request("call_dial", user_id="bob")
        yield bob.wait_push("call_ring")
        reply = yield bob.request("call_dial", user_id="alice")
        ends = yield defer.gatherResults([alice.wait_push("call_end"),
                                          bob.wait_push("call_end")])
        self.assertEqual([(e["reason"], e["by"]) for e in ends], [("media failed", None)] * 2)
        self.assertNotIn(bytes.fromhex(reply["call_id"]), self.server.ctx.call_table)


class TcpRelayPortTests(TestCase):
    """The TCP relay is optional: a taken port costs it, not the server."""

    @defer.inlineCallbacks
    def test_taken_port_is_no_failure(self) -> Any:
        """With the TCP relay's port in use the server starts, says so in the log, and
        call_start simply has no relay_tcp."""
        from twisted.internet.protocol import Factory
        taken = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        server = yield start_server(self, relay_tcp_port=taken.getHost().port)
        self.assertIsNone(server.relay_tcp)
        self.assertIsNone(server.ctx.calls.relay_tcp_port)
        alice, _ = yield register(self, server.tcp_port, "alice")
        bob, _ = yield register(self, server.tcp_port, "bob")
        yield alice.request("add_contact", user_id="bob")
        yield alice.request("call_dial", user_id="bob")
        yield bob.wait_push("call_ring")
        yield bob.request("call_dial", user_id="alice")
        start = yield alice.wait_push("call_start")
        self.assertNotIn("relay_tcp", start)


class RelayedCallTests(TestCase):
    """A call set up by signalling carries audio through the server's own UDP relay."""

    @defer.inlineCallbacks
    def test_audio_through_server_relay(self) -> Any:
        """Numbered PCM frames from alice reach bob in order through the relay."""
        server = yield start_server(self)
        alice, _ = yield register(self, server.tcp_port, "alice")
        bob, _ = yield register(self, server.tcp_port, "bob")
        yield alice.request("add_contact", user_id="bob")
        yield alice.request("call_dial", user_id="bob", codecs=[PCM])
        yield bob.wait_push("call_ring")
        yield bob.request("call_dial", user_id="alice", codecs=[PCM])
        starts = yield defer.gatherResults([alice.wait_push("call_start"),
                                            bob.wait_push("call_start")])
        frames = b"".join(array("h", [i + 1] * FRAME_SAMPLES).tobytes() for i in range(60))
        devices = (FakeAudioDevice(frames), FakeAudioDevice())
        engines = []
        for start, device in zip(starts, devices, strict=True):
            engine = CallEngine(reactor, audio=device, interface="127.0.0.1", timing=FAST,
                                session_factory=blocking_session_factory(relay_only))
            self.addCleanup(engine.stop)
            engines.append(engine)
            yield engine.start(call_params_from_jim(start))
        yield wait_until(lambda: len([f for f in devices[1].played if any(f)]) >= 40,
                         timeout=10)
        values = [array("h", f)[0] for f in devices[1].played if any(f)]
        self.assertEqual(values, sorted(values))
        self.assertEqual(engines[1].stats().path, "relay")
        self.assertGreater(server.relay.stats()["relayed"], 40)
