"""Delivered and read receipts over a real server on loopback: one receipt per
conversation up to an id, pushed to the senders it concerns, durable for a sender who was
offline (``sync_receipts``), in groups ("read by"), with read receipts turned off, and
batched into few transactions (messenger.server.handlers.receipts,
messenger.store.receipts)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.server.people import drop, login, quit_, rows, server_with
from tests.server.test_groups import NOT_MEMBER, class_of_five, error, no_push
from tests.support.services import OnPostgres


@defer.inlineCallbacks
def send(client, count, **to):
    """``count`` messages; their ids."""
    ids = []
    for n in range(count):
        reply = yield client.request("msg", message=f"message {n}", **to)
        ids.append(reply["msg_id"])
    return ids


def receipt(client, kind, up_to, **conversation):
    return client.request("receipt", kind=kind, up_to=up_to, **conversation)


@defer.inlineCallbacks
def all_receipts(client, since=0, limit=None):
    out = []
    while True:
        fields = {"since": since} if limit is None else {"since": since, "limit": limit}
        reply = yield client.request("sync_receipts", **fields)
        assert reply["response"] == 202, reply
        out.extend(reply["alert"])
        if not reply["more"]:
            return out
        since = reply["alert"][-1]["seq"]


class DirectReceiptTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_delivered_then_read_pushed_to_the_sender(self):
        """A delivered receipt up to the newest message and a read receipt up to an
        older one reach the sender as one push each, with what the reader has reached."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        ids = yield send(alice, 3, to="bob")
        reply = yield receipt(bob, "delivered", ids[2], **{"with": "alice"})
        self.assertEqual((reply["response"], reply["delivered_up_to"], reply["read_up_to"]),
                         (200, ids[2], 0))
        push = yield alice.wait_push("receipt")
        self.assertEqual({k: push[k] for k in ("reader", "delivered_up_to", "read_up_to")},
                         {"reader": "bob", "delivered_up_to": ids[2], "read_up_to": 0})
        self.assertNotIn("group", push)
        reply = yield receipt(bob, "read", ids[1], **{"with": "alice"})
        self.assertEqual((reply["delivered_up_to"], reply["read_up_to"]), (ids[2], ids[1]))
        push2 = yield alice.wait_push("receipt")
        self.assertEqual((push2["delivered_up_to"], push2["read_up_to"]), (ids[2], ids[1]))
        self.assertGreater(push2["seq"], push["seq"])
        unread = yield bob.request("get_unread")
        self.assertEqual(unread["direct"], [{"with": "alice", "unread": 1,
                                             "read_up_to": ids[1]}])
        stored = yield rows(server, "SELECT COUNT(*) FROM receipts")
        self.assertEqual(stored, [(1,)])     # one row per reader and conversation

    @defer.inlineCallbacks
    def test_a_receipt_that_changes_nothing_is_not_pushed(self):
        """Receipts only move forward: an older or equal one answers with the values
        kept and pushes nothing; the reader's own messages are not receipted to it."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        ids = yield send(alice, 2, to="bob")
        yield receipt(bob, "read", ids[1], **{"with": "alice"})
        yield alice.wait_push("receipt")
        for kind, up_to in (("read", ids[0]), ("delivered", ids[1]), ("read", ids[1])):
            reply = yield receipt(bob, kind, up_to, **{"with": "alice"})
            self.assertEqual((reply["delivered_up_to"], reply["read_up_to"]),
                             (ids[1], ids[1]))
        yield no_push(self, alice, "receipt")
        yield no_push(self, bob, "receipt")

    @defer.inlineCallbacks
    def test_an_offline_sender_reads_them_after_login(self):
        """Receipts made while the sender was offline come with sync_receipts after it
        logs in again; a cursor (the last seq) returns only later changes."""
        server, (alice, bob, cat) = yield server_with(self, "alice", "bob", "cat")
        to_bob = yield send(alice, 2, to="bob")
        to_cat = yield send(alice, 1, to="cat")
        yield quit_(alice)
        yield receipt(bob, "delivered", to_bob[1], **{"with": "alice"})
        yield receipt(cat, "read", to_cat[0], **{"with": "alice"})
        yield receipt(bob, "read", to_bob[0], **{"with": "alice"})
        alice = yield login(self, server, "alice")
        found = yield all_receipts(alice)
        self.assertEqual([(r["reader"], r["delivered_up_to"], r["read_up_to"]) for r in found],
                         [("cat", to_cat[0], to_cat[0]), ("bob", to_bob[1], to_bob[0])])
        cursor = found[-1]["seq"]
        self.assertEqual((yield all_receipts(alice, cursor)), [])
        yield receipt(cat, "delivered", to_cat[0], **{"with": "alice"})   # no change
        self.assertEqual((yield all_receipts(alice, cursor)), [])
        yield drop(alice)
        yield receipt(bob, "read", to_bob[1], **{"with": "alice"})
        alice = yield login(self, server, "alice")
        later = yield all_receipts(alice, cursor)
        self.assertEqual([(r["reader"], r["read_up_to"]) for r in later], [("bob", to_bob[1])])
        paged = yield all_receipts(alice, 0, limit=1)
        self.assertEqual([r["reader"] for r in paged], ["cat", "bob"])
        none = yield all_receipts(bob)
        self.assertEqual(none, [])   # bob sent nothing: nobody's receipts concern him

    @defer.inlineCallbacks
    def test_receipts_travel_both_ways_in_a_conversation(self):
        """A receipt may name the reader's own newest message of the conversation (read
        up to the end); it concerns the other side only."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        first = yield send(alice, 1, to="bob")
        own = yield send(bob, 1, to="alice")
        reply = yield receipt(bob, "read", own[0], **{"with": "alice"})
        self.assertEqual(reply["read_up_to"], own[0])
        push = yield alice.wait_push("receipt")
        self.assertEqual(push["read_up_to"], own[0])
        self.assertGreater(push["read_up_to"], first[0])

    @defer.inlineCallbacks
    def test_read_receipts_turned_off(self):
        """With read receipts off the reader's marker still moves (unread counts) and
        delivery is still told, but the sender never sees it read; turned on again,
        later reads show. The setting survives a new login."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        reply = yield bob.request("settings")
        self.assertEqual(reply["settings"], {"read_receipts": True})
        reply = yield bob.request("settings", read_receipts=False)
        self.assertEqual((reply["response"], reply["settings"]), (200, {"read_receipts": False}))
        ids = yield send(alice, 2, to="bob")
        reply = yield receipt(bob, "read", ids[0], **{"with": "alice"})
        self.assertEqual((reply["delivered_up_to"], reply["read_up_to"]), (ids[0], 0))
        push = yield alice.wait_push("receipt")
        self.assertEqual((push["delivered_up_to"], push["read_up_to"]), (ids[0], 0))
        unread = yield bob.request("get_unread")
        self.assertEqual(unread["direct"][0]["read_up_to"], ids[0])
        yield quit_(bob)
        bob = yield login(self, server, "bob")
        reply = yield bob.request("settings")
        self.assertEqual(reply["settings"], {"read_receipts": False})
        yield bob.request("settings", read_receipts=True)
        reply = yield receipt(bob, "read", ids[1], **{"with": "alice"})
        self.assertEqual(reply["read_up_to"], ids[1])
        push = yield alice.wait_push("receipt")
        self.assertEqual(push["read_up_to"], ids[1])

    @defer.inlineCallbacks
    def test_refusals_change_nothing(self):
        """A receipt past the conversation's last message, for a message of another
        conversation, about oneself or an unknown person is refused with a clear error,
        and no receipt, marker or push follows."""
        server, (alice, bob, cat) = yield server_with(self, "alice", "bob", "cat")
        ids = yield send(alice, 1, to="bob")
        other = yield send(cat, 1, to="alice")
        cases = [
            (("read", ids[0] + 1000, {"with": "alice"}),
             (400, "'up_to' is past the last message of this conversation")),
            (("delivered", other[0], {"with": "alice"}),
             (400, "'up_to' is not a message of this conversation that you can see")),
            (("read", other[0], {"with": "cat"}),
             (400, "'up_to' is not a message of this conversation that you can see")),
            (("read", ids[0], {"with": "bob"}), (400, "'with' must name another user")),
            (("read", ids[0], {"with": "nobody"}), (404, "no user named 'nobody'")),
        ]
        for (kind, up_to, conversation), expected in cases:
            reply = yield receipt(bob, kind, up_to, **conversation)
            self.assertEqual(error(reply), expected, (kind, up_to, conversation))
        self.assertEqual((yield rows(server, "SELECT COUNT(*) FROM receipts")), [(0,)])
        markers = yield rows(server, "SELECT COUNT(*) FROM read_markers WHERE up_to > 0")
        self.assertEqual(markers, [(0,)])
        yield no_push(self, alice, "receipt")
        yield no_push(self, cat, "receipt")

    @defer.inlineCallbacks
    def test_receipts_are_batched(self):
        """Receipts of many readers sent together share transactions: fewer commits
        than receipts, each receipt answered and pushed."""
        names = [f"reader{n}" for n in range(12)]
        server, (alice, *readers) = yield server_with(self, "alice", *names)
        ids = {}
        for name in names:
            sent = yield send(alice, 1, to=name)
            ids[name] = sent[0]
        before = server.ctx.receipts.batches
        replies = yield defer.gatherResults([
            receipt(client, "read", ids[name], **{"with": "alice"})
            for name, client in zip(names, readers, strict=True)])
        self.assertEqual({r["response"] for r in replies}, {200})
        self.assertLess(server.ctx.receipts.batches - before, len(names))
        got = []
        for _ in names:
            push = yield alice.wait_push("receipt")
            got.append(push["reader"])
        self.assertEqual(sorted(got), sorted(names))


class GroupReceiptTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_read_by_members(self):
        """In a group each member's receipt goes to the senders of the messages it
        covers (not to the other members); sync_receipts lists every member's receipt,
        so a sender can show "read by N"."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        from_teacher = yield send(teacher, 2, group=gid)
        from_ann = yield send(ann, 1, group=gid)
        reply = yield receipt(ben, "read", from_teacher[1], group=gid)
        self.assertEqual((reply["delivered_up_to"], reply["read_up_to"]),
                         (from_teacher[1], from_teacher[1]))
        push = yield teacher.wait_push("receipt")
        self.assertEqual((push["reader"], push["group"], push["read_up_to"]),
                         ("ben", gid, from_teacher[1]))
        yield no_push(self, ann, "receipt")            # ann's message is not covered yet
        yield receipt(cat, "delivered", from_ann[0], group=gid)
        for client in (teacher, ann):
            push = yield client.wait_push("receipt")
            self.assertEqual((push["reader"], push["delivered_up_to"], push["read_up_to"]),
                             ("cat", from_ann[0], 0))
        yield no_push(self, ben, "receipt")
        found = yield all_receipts(teacher)
        self.assertEqual(sorted((r["reader"], r["group"]) for r in found),
                         [("ben", gid), ("cat", gid)])
        own = yield all_receipts(ben)
        self.assertEqual([r["reader"] for r in own], ["cat"])  # not its own

    @defer.inlineCallbacks
    def test_group_refusals(self):
        """A non-member, a message past the group's last one, a message of another
        conversation or from before the member joined: refused, nothing stored."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        early = yield send(teacher, 1, group=gid)
        direct = yield send(teacher, 1, to="ann")
        yield teacher.request("group_add", group=gid, user_id="root")
        later = yield send(teacher, 1, group=gid)
        yield teacher.request("group_remove", group=gid, user_id="cat")
        cases = [
            (cat, later[0], NOT_MEMBER),
            (ann, later[0] + 50, (400, "'up_to' is past the last message of this"
                                       " conversation")),
            (ann, direct[0], (400, "'up_to' is not a message of this conversation that"
                                   " you can see")),
            (root, early[0], (400, "'up_to' is not a message of this conversation that"
                                   " you can see")),
        ]
        for client, up_to, expected in cases:
            reply = yield receipt(client, "read", up_to, group=gid)
            self.assertEqual(error(reply), expected)
        self.assertEqual((yield rows(server, "SELECT COUNT(*) FROM receipts")), [(0,)])
        reply = yield receipt(root, "read", later[0], group=gid)
        self.assertEqual(reply["read_up_to"], later[0])


class DirectReceiptTestsOnPostgres(OnPostgres, DirectReceiptTests):
    pass


class GroupReceiptTestsOnPostgres(OnPostgres, GroupReceiptTests):
    pass
