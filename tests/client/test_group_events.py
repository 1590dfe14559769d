"""Groups in the client core without a network: group pushes become typed events
(messenger.client.events, pushes), group messages pass the inbox with their group and
mentions (inbox), a group's own messages pipeline in the outbox (outbox), and unread
counts parse (events.UnreadCounts)."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from messenger.client import groupevents as events
from messenger.client.events import Observers
from messenger.client.inbox import Inbox, valid_message
from messenger.client.outbox import Outbox
from messenger.client.pushes import PushDispatcher

GROUP = {"group_id": 7, "name": "Class 5b", "topic": "Maths", "announce_only": True,
         "created": 1.0, "created_by": "teacher", "members": 4, "owner": "teacher"}


class GroupPushTests(unittest.TestCase):
    def setUp(self) -> None:
        self.observers = Observers()
        self.seen: list[Any] = []
        self.observers.subscribe("group", self.seen.append)
        self.dispatch = PushDispatcher(self.observers, lambda m: None, lambda a: None)

    def test_each_group_push_becomes_its_record(self):
        """Every group push of PROTOCOL.md arrives as its typed record."""
        for push in (
                {"action": "group_created", "group": GROUP, "by": "teacher", "time": 2},
                {"action": "group_updated", "group": dict(GROUP, name="6b"), "by": "ann",
                 "time": 3},
                {"action": "group_member_added", "group": GROUP, "by": "teacher",
                 "member": {"account_name": "dan", "role": "member"}, "time": 4},
                {"action": "group_member_removed", "group_id": 7, "account_name": "cat",
                 "reason": "removed", "by": "teacher", "time": 5},
                {"action": "group_role_changed", "group_id": 7, "account_name": "ann",
                 "role": "admin", "by": "teacher", "time": 6},
                {"action": "group_deleted", "group_id": 7, "name": "6b", "by": "root",
                 "time": 7}):
            self.dispatch(push)
        created, updated, added, removed, role, deleted = self.seen
        self.assertEqual(created, events.GroupCreated(events.GroupInfo(
            7, "Class 5b", "Maths", True, 1.0, "teacher", 4, "teacher", None), "teacher", 2))
        self.assertEqual((type(updated), updated.group.name), (events.GroupUpdated, "6b"))
        self.assertEqual((added.account_name, added.role, added.group.group_id),
                         ("dan", "member", 7))
        self.assertEqual((removed.account_name, removed.reason), ("cat", "removed"))
        self.assertEqual((role.account_name, role.role), ("ann", "admin"))
        self.assertEqual((type(deleted), deleted.name, deleted.by),
                         (events.GroupDeleted, "6b", "root"))

    def test_a_malformed_group_push_is_dropped(self):
        """A group push missing fields reaches no group observer."""
        self.dispatch({"action": "group_deleted", "group_id": 7})
        self.dispatch({"action": "group_member_added", "group": {"name": "x"}, "by": "a"})
        self.assertEqual(self.seen, [])


class GroupMessageInboxTests(unittest.TestCase):
    def test_group_messages_share_the_sequence(self):
        """A group message passes the inbox in msg_id order with direct ones, carrying
        its group and mentions; duplicates are dropped."""
        inbox = Inbox()
        direct = {"msg_id": 1, "time": 1.0, "from": "bob", "to": "ann", "message": "hi"}
        group = {"msg_id": 2, "time": 2.0, "from": "teacher", "group": 7,
                 "message": "@ann read p. 12", "mentions": ["ann"]}
        out = inbox.sync_page([group, direct])
        self.assertEqual([(m.msg_id, m.group, m.recipient) for m in out],
                         [(1, None, "ann"), (2, 7, None)])
        self.assertEqual(out[1].mentions, ("ann",))
        self.assertTrue(out[1].mentions_of("ANN"))
        self.assertFalse(out[0].mentions_of("ann"))
        self.assertIsNone(inbox.push(group))

    def test_valid_message(self):
        """A message names a recipient or a group; mentions are a list of names."""
        base = {"msg_id": 1, "time": 1.0, "from": "a", "message": "m"}
        self.assertTrue(valid_message(dict(base, to="b")))
        self.assertTrue(valid_message(dict(base, group=3)))
        self.assertTrue(valid_message(dict(base, group=3, mentions=["x"])))
        self.assertFalse(valid_message(base))
        self.assertFalse(valid_message(dict(base, group="3")))
        self.assertFalse(valid_message(dict(base, group=3, mentions="x")))
        self.assertFalse(valid_message(dict(base, group=3, mentions=[1])))


class GroupOutboxTests(unittest.TestCase):
    def test_group_messages_pipeline_in_order(self):
        """Own group messages need no name lookup: they go out together, in order, each
        group its own queue; after a lost connection they go out again at once."""
        outbox = Outbox(window=10)
        for n in range(3):
            outbox.add(None, f"g{n}", f"id{n}", 0.0, group=7)
        outbox.add("bob", "d0", "id3", 0.0)
        outbox.add("bob", "d1", "id4", 0.0)
        due = outbox.due(0.0)
        self.assertEqual([e.text for e in due], ["g0", "g1", "g2", "d0"])
        self.assertEqual((due[0].group, due[0].to), (7, None))
        outbox.connection_lost()
        self.assertEqual([e.text for e in outbox.due(0.0)], ["g0", "g1", "g2", "d0"])


class UnreadCountsTests(unittest.TestCase):
    def test_from_reply(self):
        """get_unread's reply becomes UnreadCounts keyed by name and group id."""
        counts = events.UnreadCounts.from_jim({
            "response": 200, "direct": [{"with": "bob", "unread": 2, "read_up_to": 5}],
            "groups": [{"group_id": 7, "unread": 3, "mentions": 1, "read_up_to": 9}]})
        self.assertEqual(counts.direct, {"bob": (2, 5)})
        self.assertEqual(counts.groups, {7: events.GroupUnread(3, 1, 9)})
        self.assertEqual(events.UnreadCounts.from_jim({"response": 200}),
                         events.UnreadCounts())
