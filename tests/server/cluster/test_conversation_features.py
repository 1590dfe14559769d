"""Receipts and typing across two nodes of a cluster (real PostgreSQL and Redis, real
sockets): both reach a user on the other node through the router, like any push."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.server.cluster.nodes import start_nodes, user_on


class ConversationFeaturesAcrossNodesTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.a, self.b = yield start_nodes(self)
        self.alice = yield user_on(self, self.a, "alice")
        self.bob = yield user_on(self, self.b, "bob")

    @defer.inlineCallbacks
    def test_receipts_and_typing_cross_nodes(self):
        """bob (node b) types to alice (node a), and receipts her message as delivered
        and read: each reaches her on the other node; in a group too."""
        reply = yield self.bob.request("typing", to="alice")
        self.assertEqual(reply["response"], 200, reply)
        push = yield self.alice.wait_push("typing")
        self.assertEqual((push["from"], push["to"]), ("bob", "alice"))
        ack = yield self.alice.request("msg", to="bob", message="hi")
        yield self.bob.wait_push("msg")
        for kind in ("delivered", "read"):
            reply = yield self.bob.request("receipt", kind=kind, up_to=ack["msg_id"],
                                           **{"with": "alice"})
            self.assertEqual(reply["response"], 200, reply)
            push = yield self.alice.wait_push("receipt")
            self.assertEqual((push["reader"], push["delivered_up_to"]), ("bob", ack["msg_id"]))
        self.assertEqual(push["read_up_to"], ack["msg_id"])
        group = yield self.alice.request("group_create", name="pair", members=["bob"])
        gid = group["group"]["group_id"]
        yield self.bob.wait_push("group_created")
        reply = yield self.bob.request("typing", group=gid)
        self.assertEqual(reply["response"], 200, reply)
        push = yield self.alice.wait_push("typing")
        self.assertEqual((push["from"], push["group"]), ("bob", gid))
