"""A real call between two clients each behind its own NAT (network namespaces, iptables
MASQUERADE): the direct path is found by hole punching, and when the NATs block each
other the server's relay carries the call. Real pyaudio at both ends (ALSA files)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from messenger.client.calls.codec import PCM
from messenger.client.calls.media import DIRECT, RELAY, call_params_from_jim
from tests.support.alsa import AlsaFiles, align, chirp, silence
from tests.support.call_party import party_config, spawn_party
from tests.support.jimclient import register
from tests.support.netns import NatLab
from tests.support.server import start_server


class NatLabCase(TestCase):
    """Two hosts behind two NATs call each other through the real server."""

    timeout = 90

    firewall = True

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        reason = NatLab.available()
        if reason is not None:
            self.fail(f"the NAT lab cannot be built: {reason}")
        self.lab = NatLab()
        self.addCleanup(self.lab.teardown)
        self.lab.build(firewall=self.firewall)
        self.server = yield start_server(self, interface="", public_host=self.lab.server_ip)

    @defer.inlineCallbacks
    def signal_call(self, codecs: list[str]) -> Any:
        """Alice dials bob, bob dials back: both call_start pushes."""
        port = self.server.tcp_port
        alice, _ = yield register(self, port, "alice")
        bob, _ = yield register(self, port, "bob")
        yield alice.request("add_contact", user_id="bob")
        yield alice.request("call_dial", user_id="bob", codecs=codecs)
        yield bob.wait_push("call_ring")
        yield bob.request("call_dial", user_id="alice", codecs=codecs)
        starts = yield defer.gatherResults([alice.wait_push("call_start"),
                                            bob.wait_push("call_start")])
        return starts

    @defer.inlineCallbacks
    def converse(self, codec: str) -> Any:
        starts = yield self.signal_call([codec])
        base = self.mktemp()
        cards, signals, results, parties = [], [], [], []
        for member, (low, high) in enumerate(((300.0, 3400.0), (3400.0, 300.0))):
            params = call_params_from_jim(starts[member])
            self.assertEqual(params.relay, (self.lab.server_ip, self.server.ctx.calls.relay_port))
            card = AlsaFiles(f"{base}/party{member}")
            signal = silence(1.8)      # room for a slow start-up on a busy machine
            signal.extend(chirp(0.8, low, high))
            signal.extend(silence(3.0))
            card.set_capture(signal)
            result = card.directory / "result.json"
            config = party_config(params, seconds=3.6, result=str(result))
            cards.append(card)
            signals.append(signal)
            results.append(result)
            parties.append(spawn_party(reactor, config, card.environ(),
                                       netns=self.lab.host["ab"[member]]))
        yield defer.gatherResults([party.ready for party in parties])
        for party in parties:
            party.go()
        yield defer.gatherResults([party.ended for party in parties])
        stats = [json.loads(result.read_text()) for result in results]
        scores = []
        for member in (0, 1):
            reference = signals[1 - member][int(1.6 * 16000):int(2.8 * 16000)]
            _, score = align(reference, cards[member].played())
            scores.append(score)
        self.call_id = bytes.fromhex(starts[0]["call_id"])
        return stats, scores

    def assert_seen_through_nat(self) -> None:
        """The relay saw each member at its NAT's public address, not its private one."""
        endpoints = self.server.ctx.call_table.endpoints(self.call_id)
        self.assertEqual([e.public[0] for e in endpoints],
                         [self.lab.nat_public["a"], self.lab.nat_public["b"]])



class NatCallTests(NatLabCase):
    """NATs with a home router's firewall (unsolicited inbound dropped)."""

    @defer.inlineCallbacks
    def test_direct_path_through_nat(self) -> Any:
        """Hole punching finds the direct path through both NATs; the chirps come out at
        the other end with high correlation."""
        stats, scores = yield self.converse(PCM)
        self.assert_seen_through_nat()
        self.assertEqual([s["path"] for s in stats], [DIRECT, DIRECT], stats)
        self.assertTrue(all(s["received_direct"] > 50 for s in stats), stats)
        self.assertTrue(min(scores) > 0.9, scores)

    @defer.inlineCallbacks
    def test_relay_when_nat_blocks(self) -> Any:
        """With the NATs dropping traffic between each other, the relay carries the call
        and the chirps still come out; audio flowed both ways within 3 s."""
        self.lab.block_direct()
        stats, scores = yield self.converse(PCM)
        self.assertTrue(all(s["active_after"] is not None and s["active_after"] <= 3.0
                            for s in stats), stats)
        self.assertEqual([s["path"] for s in stats], [RELAY, RELAY], stats)
        self.assertEqual([s["received_direct"] for s in stats], [0, 0])
        self.assertGreater(self.server.relay.stats()["relayed"], 150)
        self.assert_seen_through_nat()
        self.assertTrue(min(scores) > 0.9, scores)


class PlainMasqueradeTests(NatLabCase):
    """Both hosts behind plain MASQUERADE NATs with no firewall rule: the port a host's
    probe leaves through is not preserved when the peer's probe got there first."""

    firewall = False

    @defer.inlineCallbacks
    def test_call_works_within_3_s(self) -> Any:
        """Hole punching where the probes cross, the relay where they cannot: either way
        audio flows both ways within 3 s and the chirps come out at the other end."""
        stats, scores = yield self.converse(PCM)
        self.assert_seen_through_nat()
        self.assertTrue(all(s["path"] in (DIRECT, RELAY) for s in stats), stats)
        self.assertTrue(all(s["active_after"] is not None and s["active_after"] <= 3.0
                            for s in stats), stats)
        self.assertTrue(min(scores) > 0.9, (scores, stats))
