"""A node SIGKILLed while its clients send, in a cluster of two twistd nodes behind
HAProxy: the clients reconnect through HAProxy to the other node, resume and sync, and
every acknowledged message is stored once and delivered once, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.client.core import MessengerClient
from messenger.client.reconnect import backoff_policy
from tests.support import services
from tests.support.keys import rsa_key
from tests.support.twistd_server import TwistdServer, wait_for

PASSWORD = "correct horse"


class NodeKillTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def start_cluster(self) -> Any:
        database = yield services.fresh_database(self)
        redis = yield services.fresh_redis(self)
        nodes = []
        for name in ("n1", "n2"):
            node = TwistdServer(Path(self.mktemp()), (
                "--database", database, "--redis", redis, "--node-name", name,
                "--relay-address", f"127.0.0.1:{services.free_port()}",
                "--logins-per-minute", "0", "--connections-per-minute", "0",
                "--requests-per-second", "0", "--probe-interval", "2",
                "--probe-timeout", "2"))
            self.addCleanup(node.stop)
            nodes.append(node)
        yield defer.gatherResults([node.start() for node in nodes])
        proxy = yield services.start_service(self, services.HAProxy(
            Path(self.mktemp()), [(f"n{i + 1}", node.port) for i, node in enumerate(nodes)],
            check_ms=300))
        return nodes, proxy

    def client(self, proxy: Any) -> MessengerClient:
        client = MessengerClient("127.0.0.1", proxy.port, b"test-shared-secret",
                                 config_dir=Path(self.mktemp()),
                                 client_key=rsa_key("client", 2048),
                                 backoff=backoff_policy(0.1, 0.5))
        self.addCleanup(client.stop)
        return client

    @staticmethod
    def holder(nodes: list[TwistdServer], name: str) -> TwistdServer:
        for node in nodes:
            if f"account {name} from".encode() in node.log_path.read_bytes():
                return node
        raise AssertionError(f"no node registered {name}")

    @defer.inlineCallbacks
    def test_sigkill_while_sending(self):
        """SIGKILL of the sender's node at the 40th acknowledgement: the sender comes
        back through HAProxy on the other node; the recipient (there all along) gets
        each of the 150 messages once, in order, and each is stored once."""
        nodes, proxy = yield self.start_cluster()
        alice, bob = self.client(proxy), self.client(proxy)
        yield alice.register("alice", PASSWORD, "alice@example.org")
        yield bob.register("bob", PASSWORD, "bob@example.org")
        victim = self.holder(nodes, "alice")
        if self.holder(nodes, "bob") is victim:      # both on one node: move bob
            yield bob.stop()
            bob = self.client(proxy)
            yield bob.login("bob", PASSWORD)
        received: list[Any] = []
        bob.subscribe("message", received.append)
        texts = [f"message {n:03d}" for n in range(150)]
        entries: list[Any] = []
        killed: defer.Deferred[Any] = defer.Deferred()
        at_kill: dict[str, int] = {}

        def kill_mid_send(entry: Any) -> None:
            if entry.status == "acked" and not at_kill and (
                    sum(e.status == "acked" for e in entries) >= 40):
                at_kill["in_flight"] = sum(e.in_flight for e in entries)
                victim.kill().chainDeferred(killed)
        alice.subscribe("message_status", kill_mid_send)
        entries += [alice.queue_message("bob", text) for text in texts[:120]]
        yield killed
        entries += [alice.queue_message("bob", text) for text in texts[120:]]
        yield defer.gatherResults([entry.when_done() for entry in entries])
        yield alice.send_message("bob", "the end")
        yield wait_for(lambda: received and received[-1].text == "the end", timeout=60,
                       what="bob's messages")
        received.pop()
        self.assertGreater(at_kill["in_flight"], 10)     # the kill hit mid-send
        self.assertTrue(any(e.attempts > 1 for e in entries))
        self.assertEqual([m.text for m in received], texts)
        self.assertEqual([m.msg_id for m in received], [e.msg_id for e in entries])
        stored = yield bob.history("alice", limit=200)
        self.assertEqual([m["message"] for m in stored["alert"]], [*texts, "the end"])
        self.assertEqual(alice.state.name, "online")
