"""Typing over a real server on loopback: pushed to the other person, or to the group's
other members online, through the router; nothing stored; refusals for strangers to a
group, unknown names, oneself and a blocked sender (messenger.server.handlers.typing,
messenger.server.typing)."""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial import unittest

from messenger.server.typing import GroupMembers
from tests.server.people import quit_, server_with, snapshot
from tests.server.test_groups import NOT_MEMBER, class_of_five, error, no_push
from tests.support.services import OnPostgres


class TypingTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_direct_typing_is_pushed_and_never_stored(self):
        """alice's typing reaches bob as a push naming her; the database is unchanged;
        an offline recipient simply misses it."""
        server, (alice, bob, cat) = yield server_with(self, "alice", "bob", "cat")
        before = yield snapshot(server)
        reply = yield alice.request("typing", to="BOB")
        self.assertEqual(reply["response"], 200)
        push = yield bob.wait_push("typing")
        self.assertEqual((push["from"], push["to"]), ("alice", "bob"))
        self.assertNotIn("group", push)
        yield quit_(cat)
        reply = yield alice.request("typing", to="cat")
        self.assertEqual(reply["response"], 200)
        self.assertEqual((yield snapshot(server)), before)
        yield no_push(self, alice, "typing")

    @defer.inlineCallbacks
    def test_group_typing_reaches_the_other_members(self):
        """In a group, every other online member hears it (not the typist, not a
        non-member), and the members are read once for many typing requests."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reads = []
        real_read = server.ctx.db.read

        def counting(fn, *args):
            reads.append(fn.__name__)
            return real_read(fn, *args)
        server.ctx.db.read = counting
        for _ in range(3):
            reply = yield ann.request("typing", group=gid)
            self.assertEqual(reply["response"], 200)
        for client in (teacher, ben, cat):
            for _ in range(3):
                push = yield client.wait_push("typing")
                self.assertEqual((push["from"], push["group"]), ("ann", gid))
        yield no_push(self, ann, "typing")
        yield no_push(self, root, "typing")
        self.assertEqual(reads.count("member_ids_txn"), 1)

    @defer.inlineCallbacks
    def test_membership_changes_count_at_once(self):
        """A member removed from the group is refused typing at once (not when the
        cached members expire), and one added back is heard at once."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        reply = yield ben.request("typing", group=gid)          # the members are cached
        self.assertEqual(reply["response"], 200)
        reply = yield teacher.request("group_remove", group=gid, user_id="ben")
        self.assertEqual(reply["response"], 200, reply)
        reply = yield ben.request("typing", group=gid)
        self.assertEqual(error(reply), NOT_MEMBER)
        reply = yield teacher.request("group_add", group=gid, user_id="ben")
        self.assertEqual(reply["response"], 200, reply)
        reply = yield ann.request("typing", group=gid)
        self.assertEqual(reply["response"], 200)
        push = yield ben.wait_push("typing")
        self.assertEqual((push["from"], push["group"]), ("ann", gid))

    @defer.inlineCallbacks
    def test_refusals(self):
        """Typing to a group one is not in, to an unknown person, to oneself, or to
        someone who blocked the typist: clear errors, nothing pushed."""
        server, (root, teacher, ann, ben, cat), gid = yield class_of_five(self)
        yield ben.request("block_user", user_id="ann")
        cases = [
            (root, {"group": gid}, NOT_MEMBER),
            (ann, {"to": "nobody"}, (404, "no user named 'nobody'")),
            (ann, {"to": "ann"}, (400, "'to' must name another user")),
            (ann, {"to": "ben"}, (403, "'ben' has blocked you: your messages and calls"
                                       " to them are refused")),
        ]
        for client, fields, expected in cases:
            reply = yield client.request("typing", **fields)
            self.assertEqual(error(reply), expected, fields)
        for client in (teacher, ann, ben, cat):
            yield no_push(self, client, "typing")


class GroupMembersTests(unittest.TestCase):

    def test_read_once_then_again_after_the_ttl(self):
        """Members are read once per group while fresh (concurrent askers share the
        read) and read again once the entry is older than the TTL."""
        clock = task.Clock()
        pending = []

        class DB:
            def read(self, fn, *args):
                d = defer.Deferred()
                pending.append(d)
                return d
        members = GroupMembers(DB(), clock, ttl=30)
        first, second = members.members(7), members.members(7)
        self.assertEqual(len(pending), 1)
        pending[0].callback([1, 2])
        self.assertEqual(self.successResultOf(first), frozenset({1, 2}))
        self.assertEqual(self.successResultOf(second), frozenset({1, 2}))
        clock.advance(29)
        self.assertEqual(self.successResultOf(members.members(7)), frozenset({1, 2}))
        clock.advance(2)
        third = members.members(7)
        self.assertEqual(len(pending), 2)
        pending[1].errback(RuntimeError("down"))
        self.failureResultOf(third, RuntimeError)


class TypingTestsOnPostgres(OnPostgres, TypingTests):
    pass
