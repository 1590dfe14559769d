"""A cluster's faults with the real services: Redis killed and restarted mid-traffic,
PostgreSQL restarted mid-traffic. Every acknowledged message is stored once and
delivered once, in order (docs/SCALING.md, "Failure modes")."""

from __future__ import annotations

from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from messenger.store import messages as store_messages
from tests.server.cluster.nodes import start_nodes, user_on, wait_until
from tests.support import jimclient, services


def msg_pushes(client):
    return [p for p in client.pushes if p["action"] == "msg"]


@defer.inlineCallbacks
def stored_count(node, sender, recipient):
    rows = yield node.ctx.db.read(store_messages.history_txn, sender, recipient, None, 1000)
    return len(rows)


class RedisOutageTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_redis_killed_and_restarted_mid_traffic(self):
        """With Redis killed, both nodes keep committing and acknowledging; the recipient
        on the other node still gets every message (read from the database), logins are
        refused with 503 meanwhile; with Redis back, everything goes on, each message
        delivered once, in order."""
        redis = yield services.start_service(
            self, services.RedisServer(Path(self.mktemp())))
        a, b = yield start_nodes(self, redis=redis.url)
        alice = yield user_on(self, a, "alice")
        bob = yield user_on(self, b, "bob")
        acks = []

        @defer.inlineCallbacks
        def send(count):
            for n in range(count):
                ack = yield alice.request("msg", to="bob", message=f"m{len(acks)}")
                self.assertEqual(ack["response"], 200, ack)
                acks.append(ack["msg_id"])
                if n % 5 == 0:
                    yield task.deferLater(reactor, 0.01, lambda: None)

        yield send(30)
        yield redis.kill()
        yield wait_until(lambda: not a.ctx.cluster.bus.link.available
                         and not b.ctx.cluster.bus.link.available, what="both nodes see it")
        yield send(30)
        late = yield jimclient.connect(self, b.tcp_port)
        reply = yield late.request("register", **jimclient.new_user("carol"))
        self.assertEqual(reply["response"], 503, reply)
        self.assertIn("retry_after", reply)
        yield wait_until(lambda: len(msg_pushes(bob)) >= 60, what="60 messages at bob")
        yield redis.start()
        yield wait_until(lambda: a.ctx.cluster.logins_open() and b.ctx.cluster.logins_open(),
                         what="logins open again")
        # Redis came back empty: the nodes set their leases again, so alice (online on a
        # all along) still cannot log in a second time on b.
        second = yield jimclient.connect(self, b.tcp_port)
        reply = yield second.request("authenticate", user={
            "account_name": "alice", "password": "correct horse"})
        self.assertEqual(reply["response"], 409, reply)
        yield send(30)
        yield wait_until(lambda: len(msg_pushes(bob)) >= 90, what="90 messages at bob")
        ids = [p["msg_id"] for p in msg_pushes(bob)]
        self.assertEqual(ids, acks)
        stored = yield stored_count(a, a.ctx.directory.cached("alice").id,
                                    a.ctx.directory.cached("bob").id)
        self.assertEqual(stored, 90)
        carol = yield user_on(self, b, "carol")
        reply = yield carol.request("add_contact", user_id="alice")
        self.assertEqual(reply["contact"]["status"], "online")


    @defer.inlineCallbacks
    def test_group_messages_while_redis_is_away(self):
        """With Redis killed, group messages from node a reach the member on node b
        anyway (read from the database the way its sync reads them), with direct ones,
        once and in id order."""
        redis = yield services.start_service(
            self, services.RedisServer(Path(self.mktemp())))
        a, b = yield start_nodes(self, redis=redis.url)
        ann = yield user_on(self, a, "ann")
        bob = yield user_on(self, b, "bob")
        reply = yield ann.request("group_create", name="Team", members=["bob"])
        group = reply["group"]["group_id"]
        yield bob.wait_push("group_created")
        yield redis.kill()
        yield wait_until(lambda: not b.ctx.cluster.bus.link.available, what="b sees it")
        acks = []
        for n in range(20):
            for fields in ({"group": group}, {"to": "bob"}):
                ack = yield ann.request("msg", message=f"m{n}", **fields)
                self.assertEqual(ack["response"], 200, ack)
                acks.append(ack["msg_id"])
        yield wait_until(lambda: len(msg_pushes(bob)) >= 40, what="40 messages at bob")
        self.assertEqual([p["msg_id"] for p in msg_pushes(bob)], acks)
        self.assertEqual([p.get("group") for p in msg_pushes(bob)][:2], [group, None])


class PostgresOutageTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_postgres_restarted_mid_traffic(self):
        """While PostgreSQL restarts, sends get a prompt 503 and nothing that was not
        committed is acknowledged; afterwards both nodes serve again by themselves and
        every acknowledged message reached its recipient once, in order."""
        cluster = services.PostgresCluster()
        self.addCleanup(cluster.remove)
        yield cluster.start()
        database = yield services.fresh_database(self, cluster=cluster)
        a, b = yield start_nodes(self, database=database)
        alice = yield user_on(self, a, "alice")
        bob = yield user_on(self, b, "bob")
        acked, refused = [], 0
        stop = cluster.stop()
        while not stop.called or refused == 0:
            started = reactor.seconds()
            reply = yield alice.request("msg", to="bob", message=f"m{len(acked)}-{refused}")
            self.assertLess(reactor.seconds() - started, 10.0)
            if reply["response"] == 200:
                acked.append(reply["msg_id"])
            else:
                self.assertEqual(reply["response"], 503, reply)
                refused += 1
                yield task.deferLater(reactor, 0.1, lambda: None)
        yield stop
        yield cluster.start()
        while True:
            reply = yield alice.request("msg", to="bob", message="after")
            if reply["response"] == 200:
                acked.append(reply["msg_id"])
                break
            yield task.deferLater(reactor, 0.2, lambda: None)
        yield wait_until(lambda: msg_pushes(bob) and msg_pushes(bob)[-1]["msg_id"] == acked[-1],
                         what="the last message at bob")
        self.assertEqual([p["msg_id"] for p in msg_pushes(bob)], acked)
        stored = yield stored_count(b, a.ctx.directory.cached("alice").id,
                                    a.ctx.directory.cached("bob").id)
        self.assertEqual(stored, len(acked))
