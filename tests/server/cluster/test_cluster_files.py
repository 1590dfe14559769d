"""Files in a cluster (two in-process nodes on real PostgreSQL and Redis, one shared files
directory, real sockets): messages with a file, direct and in a group, from both nodes
reach every recipient once and in id order with the other messages, with their
attachment; a message whose batch announcement was lost is read from the database with
its attachment; a file uploaded through one node is downloaded through the other
(messenger.server.handlers.attachments, messenger.server.cluster.stream)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.config import FilesConfig
from tests.server import filehelp
from tests.server.cluster.nodes import start_nodes, user_on, wait_until


def msgs(client):
    return [p for p in client.pushes if p["action"] == "msg"]


class ClusterFileTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.a, self.b = yield start_nodes(self, files=FilesConfig(directory=self.mktemp()))

    @defer.inlineCallbacks
    def test_direct_files_from_both_nodes_in_order(self):
        """Ann (node a) and ben (node b) send bob (node b) plain messages and messages
        with a file at once: bob gets each once, in id order, the files with their
        attachment, and downloads ann's file through node b."""
        bob = yield user_on(self, self.b, "bob")
        ann = yield user_on(self, self.a, "ann")
        ben = yield user_on(self, self.b, "ben")
        data = filehelp.content(200_000)
        files = {}
        for name, client in (("ann", ann), ("ben", ben)):
            files[name] = yield filehelp.upload(self, client, data + name.encode())
        sends = []
        for n in range(20):
            for name, client in (("ann", ann), ("ben", ben)):
                fields = {"to": "bob", "message": f"{name}{n}"}
                if n % 4 == 0:
                    fields["attachment"] = {"file_id": files[name]["file_id"]}
                sends.append(client.request("msg", **fields))
        acks = yield defer.gatherResults(sends)
        self.assertEqual({ack["response"] for ack in acks}, {200})
        yield wait_until(lambda: len(msgs(bob)) >= len(acks), what="bob's messages")
        got = msgs(bob)
        self.assertEqual([p["msg_id"] for p in got], sorted(ack["msg_id"] for ack in acks))
        with_files = [p for p in got if "attachment" in p]
        self.assertEqual(len(with_files), 10)
        for push in with_files:
            self.assertEqual(push["attachment"]["file_id"], files[push["from"]]["file_id"])
        granted = yield bob.request("file_get", file_id=files["ann"]["file_id"])
        self.assertEqual(granted["response"], 200)
        got_data = yield filehelp.download(bob, files["ann"]["file_id"], len(data) + 3)
        self.assertEqual(got_data, data + b"ann")

    @defer.inlineCallbacks
    def test_group_files_from_both_nodes_in_order(self):
        """A group with members on both nodes: group messages with and without a file
        from each node reach every other member once, in id order, with attachments."""
        ann = yield user_on(self, self.a, "ann")
        ben = yield user_on(self, self.b, "ben")
        cat = yield user_on(self, self.b, "cat")
        reply = yield ann.request("group_create", name="Class", members=["ben", "cat"])
        group = reply["group"]["group_id"]
        for member in (ben, cat):
            yield member.wait_push("group_created")
        sheet = yield filehelp.upload(self, ann, filehelp.content(1000))
        notes = yield filehelp.upload(self, ben, filehelp.content(1000))
        sends = []
        for n in range(10):
            sends.append(ann.request("msg", group=group, message=f"a{n}",
                                     attachment={"file_id": sheet["file_id"]}))
            sends.append(ben.request("msg", group=group, message=f"b{n}",
                                     **({"attachment": {"file_id": notes["file_id"]}}
                                        if n % 2 else {})))
        acks = yield defer.gatherResults(sends)
        self.assertEqual({ack["response"] for ack in acks}, {200})
        yield wait_until(lambda: len(msgs(cat)) >= 20, what="cat's messages")
        self.assertEqual([p["msg_id"] for p in msgs(cat)],
                         sorted(ack["msg_id"] for ack in acks))
        self.assertEqual(sum("attachment" in p for p in msgs(cat)), 15)
        yield wait_until(lambda: len(msgs(ben)) >= 10, what="ben's messages")
        self.assertEqual([p["attachment"]["file_id"] for p in msgs(ben)],
                         [sheet["file_id"]] * 10)
        for client, file in ((cat, sheet), (cat, notes), (ann, notes)):
            granted = yield client.request("file_get", file_id=file["file_id"])
            self.assertEqual(granted["response"], 200)

    @defer.inlineCallbacks
    def test_lost_announcement_read_with_its_attachment(self):
        """Node a's announcement of a message with a file is lost: node b reads it from
        the database once the next batch shows the gap, and pushes it to bob with its
        attachment, before the next message."""
        bob = yield user_on(self, self.b, "bob")
        ann = yield user_on(self, self.a, "ann")
        file = yield filehelp.upload(self, ann, filehelp.content(500))
        stream = self.a.ctx.cluster.stream
        publish, stream.publish = stream.publish, lambda part: True
        lost = yield ann.request("msg", to="bob", message="lost",
                                 attachment={"file_id": file["file_id"], "name": "x.bin"})
        stream.publish = publish
        after = yield ann.request("msg", to="bob", message="after")
        yield wait_until(lambda: len(msgs(bob)) >= 2, what="both messages")
        first, second = msgs(bob)
        self.assertEqual((first["msg_id"], first["message"], first["attachment"]["name"]),
                         (lost["msg_id"], "lost", "x.bin"))
        self.assertEqual(second["msg_id"], after["msg_id"])
        self.assertGreaterEqual(self.b.ctx.cluster.stream.read_from_db, 1)
