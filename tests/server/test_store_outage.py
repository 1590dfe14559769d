"""A server on PostgreSQL while PostgreSQL goes away and comes back: requests that need
the store get a prompt 503 with retry_after, nothing unstored is acknowledged, and the
same server serves again by itself once PostgreSQL is back (messenger.server with
messenger.store.postgres)."""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.server.people import PASSWORD, login, server_with
from tests.support import jimclient, services
from tests.support.services import OnPostgres

PROMPT = 10.0  # seconds: the store's deadline (6 s) plus slack for a loaded machine


class StoreOutageTests(OnPostgres, unittest.TestCase):

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.cluster = services.PostgresCluster()
        self.addCleanup(self.cluster.remove)
        yield self.cluster.start()
        url = yield services.fresh_database(self, cluster=self.cluster)
        self.server, (self.alice, self.bob) = yield server_with(self, "alice", "bob",
                                                               database=url)

    @defer.inlineCallbacks
    def timed(self, request):
        started = reactor.seconds()
        reply = yield request
        self.assertLess(reactor.seconds() - started, PROMPT)
        return reply

    def assert_unavailable(self, reply):
        self.assertEqual(reply["response"], 503, reply)
        self.assertIn("database", reply["error"])
        self.assertGreater(reply["retry_after"], 0)

    @defer.inlineCallbacks
    def test_down_then_back(self):
        """While PostgreSQL is stopped a message, a read and a login each get a prompt
        503 and the recipient gets nothing; after it starts again the same server takes
        the resent message (stored once, pushed once) and the recipient syncs both."""
        first = yield self.alice.request("msg", to="bob", message="before")
        self.assertEqual(first["response"], 200)
        yield self.bob.wait_push("msg")
        yield self.cluster.stop()

        request_id = os.urandom(16).hex()
        reply = yield self.timed(self.alice.request("msg", id=request_id, to="bob",
                                                    message="during"))
        self.assert_unavailable(reply)
        contacts = yield self.timed(self.bob.request("get_contacts"))
        self.assert_unavailable(contacts)
        self.assertEqual(self.bob.pushes, [])  # bob's reply came after any push to him
        newcomer = yield jimclient.connect(self, self.server.tcp_port)
        refused = yield self.timed(newcomer.request(
            "authenticate", user={"account_name": "carol", "password": PASSWORD}))
        self.assert_unavailable(refused)

        yield self.cluster.start()
        # A client resends with the original id after it reconnects (within one session
        # a repeated request id is refused as a replay).
        yield self.alice.close()
        self.alice = yield login(self, self.server, "alice")
        resent = yield self.alice.request("msg", id=request_id, to="bob", message="during")
        self.assertEqual(resent["response"], 200, resent)
        push = yield self.bob.wait_push("msg")
        self.assertEqual((push["msg_id"], push["message"]), (resent["msg_id"], "during"))
        yield self.alice.close()
        self.alice = yield login(self, self.server, "alice")
        again = yield self.alice.request("msg", id=request_id, to="bob", message="during")
        self.assertEqual(again["msg_id"], resent["msg_id"])
        synced = yield self.bob.request("sync", since=0)
        self.assertEqual([m["message"] for m in synced["alert"]], ["before", "during"])
        self.assertEqual(self.bob.pushes, [])
        self.assertIsNone(self.server.db.unavailable_since)

    @defer.inlineCallbacks
    def test_crash_mid_traffic(self):
        """PostgreSQL killed (SIGKILL) while messages flow: each message is either
        acknowledged and later synced, or refused with 503 and, resent after the
        restart, stored once."""
        sent = [os.urandom(16).hex() for _ in range(40)]
        replies = [self.alice.request("msg", id=request_id, to="bob", message=str(n))
                   for n, request_id in enumerate(sent)]
        yield self.cluster.kill()
        replies = yield defer.gatherResults(replies)
        self.assertTrue(all(r["response"] in (200, 503) for r in replies), replies)
        acknowledged = {r["id"]: r["msg_id"] for r in replies if r["response"] == 200}
        yield self.cluster.start()
        yield self.alice.close()
        self.alice = yield login(self, self.server, "alice")
        for n, request_id in enumerate(sent):
            if request_id not in acknowledged:
                reply = yield self.alice.request("msg", id=request_id, to="bob",
                                                 message=str(n))
                self.assertEqual(reply["response"], 200, reply)
                acknowledged[request_id] = reply["msg_id"]
        synced = yield self.bob.request("sync", since=0)
        self.assertEqual([m["msg_id"] for m in synced["alert"]],
                         sorted(acknowledged.values()))
        self.assertEqual(sorted(m["message"] for m in synced["alert"]),
                         sorted(str(n) for n in range(40)))
