"""Two nodes of a cluster (real PostgreSQL and Redis, real sockets): users on different
nodes exchange messages, see each other's presence, get a broadcast, call, and cannot log
in twice."""

from __future__ import annotations

import io

from twisted.internet import defer, threads
from twisted.trial import unittest

from messenger.admin import cli as admin_cli
from tests.server.cluster.nodes import start_nodes, user_on, wait_until
from tests.support import jimclient, services


class TwoNodesTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.a, self.b = yield start_nodes(self)
        self.alice = yield user_on(self, self.a, "alice")      # the first: an admin
        self.bob = yield user_on(self, self.b, "bob")
        for me, other in ((self.alice, "bob"), (self.bob, "alice")):
            reply = yield me.request("add_contact", user_id=other)
            self.assertEqual(reply["response"], 201, reply)

    @defer.inlineCallbacks
    def test_messages_both_ways(self):
        """A message to a user on the other node is acknowledged and pushed to them,
        in both directions, with the same id the sender was given."""
        ack = yield self.alice.request("msg", to="bob", message="hello from a")
        self.assertEqual(ack["response"], 200, ack)
        push = yield self.bob.wait_push("msg")
        self.assertEqual((push["msg_id"], push["from"], push["message"]),
                         (ack["msg_id"], "alice", "hello from a"))
        ack = yield self.bob.request("msg", to="alice", message="hello from b")
        push = yield self.alice.wait_push("msg")
        self.assertEqual((push["msg_id"], push["from"]), (ack["msg_id"], "bob"))

    @defer.inlineCallbacks
    def test_presence_across_nodes(self):
        """Contacts on the other node are seen online in the contact list, and a change
        of status is pushed across."""
        yield wait_until(lambda: self.a.ctx.presence.status_of(
            self.b.ctx.directory.cached("bob").id) == "online", what="bob online on a")
        reply = yield self.alice.request("get_contacts")
        self.assertEqual(reply["alert"], [{"account_name": "bob", "status": "online"}])
        reply = yield self.bob.request("presence", status="away")
        self.assertEqual(reply["response"], 200)
        push = yield self.alice.wait_push("presence")
        while push["status"] != "away":
            push = yield self.alice.wait_push("presence")
        self.assertEqual(push["account_name"], "bob")
        yield self.bob.close()
        push = yield self.alice.wait_push("presence")
        while push["status"] != "offline":
            push = yield self.alice.wait_push("presence")
        self.assertEqual(push["account_name"], "bob")

    @defer.inlineCallbacks
    def test_broadcast_reaches_other_node(self):
        """A broadcast from a user on one node is pushed to users on the other."""
        reply = yield self.alice.request("broadcast", message="to everyone")
        self.assertEqual(reply["response"], 200, reply)
        push = yield self.bob.wait_push("broadcast")
        self.assertEqual((push["from"], push["message"]), ("alice", "to everyone"))

    @defer.inlineCallbacks
    def test_call_across_nodes(self):
        """Alice (node a) calls bob (node b): the ring crosses, bob's answer goes to the
        node that owns the call, both are told the same relay (a's --relay-address), and
        a hang-up on b ends it for both."""
        yield wait_until(lambda: self.a.ctx.presence.status_of(
            self.b.ctx.directory.cached("bob").id) == "online", what="bob online on a")
        reply = yield self.alice.request("call_dial", user_id="bob", codecs=["pcm"])
        self.assertEqual((reply["response"], reply["state"]), (200, "ringing"), reply)
        ring = yield self.bob.wait_push("call_ring")
        self.assertEqual((ring["from"], ring["call_id"]), ("alice", reply["call_id"]))
        dan = yield user_on(self, self.b, "dan")
        yield dan.request("add_contact", user_id="bob")
        busy = yield dan.request("call_dial", user_id="bob")
        self.assertEqual(busy["response"], 409, busy)       # ringing, on the other node
        self.assertIn("busy", busy["error"])
        answer = yield self.bob.request("call_dial", user_id="alice", codecs=["pcm"])
        self.assertEqual((answer["response"], answer["state"]), (200, "active"), answer)
        start_a = yield self.alice.wait_push("call_start")
        start_b = yield self.bob.wait_push("call_start")
        self.assertEqual(start_a["relay"], ["127.0.0.1", 4000])
        self.assertEqual(start_b["relay"], ["127.0.0.1", 4000])
        self.assertEqual(start_a["key"], start_b["key"])
        reply = yield self.bob.request("call_hangup", call_id=reply["call_id"])
        self.assertEqual(reply["response"], 200, reply)
        end_a = yield self.alice.wait_push("call_end")
        end_b = yield self.bob.wait_push("call_end")
        self.assertEqual((end_a["by"], end_b["reason"]), ("bob", "hangup"))

    @defer.inlineCallbacks
    def test_call_ends_when_the_other_node_s_user_drops(self):
        """A call owned by node a ends for alice when bob's connection to node b drops."""
        yield wait_until(lambda: self.a.ctx.presence.status_of(
            self.b.ctx.directory.cached("bob").id) == "online", what="bob online on a")
        reply = yield self.alice.request("call_dial", user_id="bob", codecs=["pcm"])
        yield self.bob.wait_push("call_ring")
        yield self.bob.request("call_dial", user_id="alice", codecs=["pcm"])
        yield self.alice.wait_push("call_start")
        self.bob.transport.abortConnection()
        end = yield self.alice.wait_push("call_end")
        self.assertEqual((end["call_id"], end["reason"], end["by"]),
                         (reply["call_id"], "disconnected", "bob"))

    @defer.inlineCallbacks
    def test_node_stopped_users_go_offline_and_log_in_elsewhere(self):
        """Node b stops: alice on a sees bob go offline, and bob logs in on a at once
        (b released its leases)."""
        yield wait_until(lambda: self.a.ctx.presence.status_of(
            self.b.ctx.directory.cached("bob").id) == "online", what="bob online on a")
        yield self.b.stop()
        push = yield self.alice.wait_push("presence")
        self.assertEqual((push["account_name"], push["status"]), ("bob", "offline"))
        bob = yield user_on(self, self.a, "bob", register=False)
        reply = yield bob.request("get_contacts")
        self.assertEqual(reply["alert"], [{"account_name": "alice", "status": "online"}])

    @defer.inlineCallbacks
    def test_a_block_holds_on_every_node(self):
        """Alice (node a) blocks bob (node b): bob's messages are refused on b too; after
        the unblock they pass again."""
        reply = yield self.alice.request("block_user", user_id="bob")
        self.assertEqual(reply["response"], 201, reply)
        alice_id = self.b.ctx.directory.cached("alice").id
        bob_id = self.b.ctx.directory.cached("bob").id
        yield wait_until(lambda: self.b.ctx.blocks.blocked(alice_id, bob_id),
                         what="the block on b")
        refused = yield self.bob.request("msg", to="alice", message="hi")
        self.assertEqual(refused["response"], 403, refused)
        yield self.alice.request("unblock_user", user_id="bob")
        yield wait_until(lambda: not self.b.ctx.blocks.blocked(alice_id, bob_id),
                         what="the unblock on b")
        ack = yield self.bob.request("msg", to="alice", message="hi again")
        self.assertEqual(ack["response"], 200, ack)

    @defer.inlineCallbacks
    def test_second_login_on_other_node(self):
        """While bob is online on b, logging in as bob on a is refused with 409 "already
        connected"; after bob quits, it succeeds."""
        client = yield jimclient.connect(self, self.a.tcp_port)
        reply = yield client.request("authenticate", user={
            "account_name": "bob", "password": "correct horse"})
        self.assertEqual(reply["response"], 409, reply)
        self.assertIn("already connected", reply["error"])
        yield self.bob.request("quit")
        yield self.bob.closed
        client = yield user_on(self, self.a, "bob", register=False)
        reply = yield client.request("get_contacts")
        self.assertEqual(reply["response"], 202)


class AdminAcrossNodesTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_lock_and_delete_end_the_session_on_the_other_node_at_once(self):
        """An administrator on one node locks a user online on the other: that session
        is told and closed at once; deleting another user does the same."""
        a, b = yield start_nodes(self)
        admin = yield user_on(self, a, "root")
        bob = yield user_on(self, b, "bob")
        carol = yield user_on(self, b, "carol")
        yield wait_until(lambda: a.ctx.presence.status_of(
            b.ctx.directory.cached("carol").id) == "online", what="carol online on a")
        listed = yield admin.request("admin_list_users")
        self.assertEqual({u["account_name"]: u["online"] for u in listed["alert"]},
                         {"root": True, "bob": True, "carol": True})
        reply = yield admin.request("admin_lock", user_id="bob")
        self.assertEqual(reply["response"], 200, reply)
        notice = yield bob.wait_push("notice")
        self.assertIn("locked", notice["message"])
        yield jimclient.wait_closed(bob)
        reply = yield admin.request("admin_delete_user", user_id="carol")
        self.assertEqual(reply["response"], 200, reply)
        notice = yield carol.wait_push("notice")
        self.assertIn("deleted", notice["message"])
        yield jimclient.wait_closed(carol)
        yield wait_until(lambda: b.ctx.router.online_count() == 0, what="b empty")


    @defer.inlineCallbacks
    def test_messenger_admin_lock_reaches_the_node_holding_the_session(self):
        """messenger-admin on node a's data dir locks a user online on node b: a's
        control socket passes it to b over the bus, and b closes the session at once."""
        a, b = yield start_nodes(self)
        yield user_on(self, a, "root")
        bob = yield user_on(self, b, "bob")
        out = io.StringIO()
        status = yield threads.deferToThread(admin_cli.main, [
            "--data-dir", str(a.config.data_dir), "--database", a.config.database,
            "lock", "bob"], out, out)
        self.assertEqual(status, 0, out.getvalue())
        self.assertIn("disconnected from the running server", out.getvalue())
        notice = yield bob.wait_push("notice")
        self.assertIn("locked", notice["message"])
        yield jimclient.wait_closed(bob)


    @defer.inlineCallbacks
    def test_messenger_admin_delete_reaches_every_node(self):
        """messenger-admin on node a's data dir deletes a group whose member is online on
        node b, then that member's account: b pushes ``group_deleted`` (``by`` empty: the
        operator), closes the session at once, both nodes forget the account, and a's
        user who had it as a contact gets ``contact_deleted``."""
        a, b = yield start_nodes(self)
        root = yield user_on(self, a, "root")
        carol = yield user_on(self, b, "carol")
        reply = yield root.request("group_create", name="Maths 5b", members=["carol"])
        self.assertEqual(reply["response"], 201, reply)
        gid = reply["group"]["group_id"]
        carol_id = b.ctx.directory.cached("carol").id
        reply = yield root.request("add_contact", user_id="carol")
        self.assertEqual(reply["response"], 201, reply)

        def admin(*args):
            out = io.StringIO()
            d = threads.deferToThread(admin_cli.main, [
                "--data-dir", str(a.config.data_dir), "--database", a.config.database,
                *args], out, out)
            return d.addCallback(lambda status: (status, out.getvalue()))
        status, out = yield admin("groups", "delete", str(gid), "--yes")
        self.assertEqual((status, out), (0, f"Deleted group #{gid} 'Maths 5b' (2 members);"
                                           " the members online were told (1 on this"
                                           " server).\n"))
        for member in (root, carol):
            push = yield member.wait_push("group_deleted")
            self.assertEqual((push["group_id"], push["by"]), (gid, ""))
        yield wait_until(lambda: a.ctx.presence.status_of(carol_id) == "online",
                         what="carol online on a")
        status, out = yield admin("delete", "carol", "--yes")
        self.assertEqual((status, out), (0, "carol: deleted\n"))
        notice = yield carol.wait_push("notice")
        self.assertIn("deleted by an administrator", notice["message"])
        yield jimclient.wait_closed(carol)
        push = yield root.wait_push("contact_deleted")     # told by node a, its own
        self.assertEqual(push["account_name"], "carol")
        for node in (a, b):
            yield wait_until(lambda node=node: node.ctx.directory.cached("carol") is None
                             and node.ctx.presence.status_of(carol_id) != "online",
                             what="carol forgotten")


class OrderTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_messages_from_both_nodes_arrive_in_id_order_once(self):
        """Senders on both nodes write to one recipient at the same time: the recipient
        gets every message once, in id order (a push never overtakes a lower id, which
        the client would drop)."""
        a, b = yield start_nodes(self)
        bob = yield user_on(self, b, "bob")
        senders = []
        for node, name in ((a, "ann"), (b, "ben"), (a, "amy")):
            client = yield user_on(self, node, name)
            senders.append(client)
        acks = yield defer.gatherResults([
            client.request("msg", to="bob", message=f"{n}")
            for n in range(80) for client in senders])
        self.assertEqual({ack["response"] for ack in acks}, {200})
        yield wait_until(lambda: len([p for p in bob.pushes if p["action"] == "msg"]) >= 240,
                         what="240 pushes")
        ids = [p["msg_id"] for p in bob.pushes if p["action"] == "msg"]
        self.assertEqual(ids, sorted(ack["msg_id"] for ack in acks))


class GroupOrderTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_group_and_direct_messages_from_both_nodes_in_id_order(self):
        """A group with members on both nodes: group messages from senders on each node
        and direct messages arrive at every member once, in id order."""
        a, b = yield start_nodes(self)
        ann = yield user_on(self, a, "ann")
        ben = yield user_on(self, b, "ben")
        cat = yield user_on(self, b, "cat")
        dot = yield user_on(self, a, "dot")
        reply = yield ann.request("group_create", name="Class", members=["ben", "cat", "dot"])
        self.assertEqual(reply["response"], 201, reply)
        group = reply["group"]["group_id"]
        for member in (ben, cat, dot):
            yield member.wait_push("group_created")
        sends = [ann.request("msg", group=group, message=f"a{n}") for n in range(30)]
        sends += [ben.request("msg", group=group, message=f"b{n}") for n in range(30)]
        sends += [dot.request("msg", to="cat", message=f"d{n}") for n in range(30)]
        acks = yield defer.gatherResults(sends)
        self.assertEqual({ack["response"] for ack in acks}, {200})
        by_id = {ack["msg_id"] for ack in acks}
        expect = {"cat": sorted(by_id),
                  "dot": sorted(ack["msg_id"] for ack in acks[:60]),
                  "ben": sorted(ack["msg_id"] for ack in acks[:30]),
                  "ann": sorted(ack["msg_id"] for ack in acks[30:60])}
        for name, client in (("cat", cat), ("dot", dot), ("ben", ben), ("ann", ann)):
            want = expect[name]
            yield wait_until(lambda c=client, w=want: len(msg_ids(c)) >= len(w),
                             what=f"{name}'s messages")
            self.assertEqual(msg_ids(client), want, name)


def msg_ids(client):
    return [p["msg_id"] for p in client.pushes if p["action"] == "msg"]


class StartTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_a_node_does_not_start_without_redis_or_with_a_taken_name(self):
        """Redis unreachable, or a live node with the same name: the start fails with
        one line naming the option, and nothing is left running."""
        from messenger.server.startup import StartupError
        database = yield services.fresh_database(self)
        port = services.free_port()
        with self.assertRaises(StartupError) as caught:
            yield start_nodes(self, ("a",), database=database,
                              redis=f"redis://127.0.0.1:{port}/0")
        self.assertIn("--redis", str(caught.exception))
        first, = yield start_nodes(self, ("a",), database=database)
        with self.assertRaises(StartupError) as caught:
            yield start_nodes(self, ("a",), database=database,
                              redis=first.config.cluster.redis)
        self.assertIn("--node-name", str(caught.exception))
