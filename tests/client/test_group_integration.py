"""The client core's groups against a real server in this process (real sockets, real
SQLite): group actions, group pushes as typed events, group messages through the outbox
and the message observers with their mentions, unread counts at login
(messenger.client.core, actions)."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.trial import unittest

from messenger.client import groupevents as events
from messenger.client.core import MessengerClient
from messenger.client.errors import Forbidden
from messenger.server.service import MessengerServer
from tests.client.test_integration import PASSWORD, ServerTestCase
from tests.support.server import start_server
from tests.support.twistd_server import wait_for


class GroupClientTests(ServerTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.server = yield start_server(self)
        self.port = self.server.tcp_port

    @defer.inlineCallbacks
    def online(self, name, **kwargs):
        client = self.client(self.port, **kwargs)
        yield client.register(name, PASSWORD, f"{name}@example.org")
        return client

    @defer.inlineCallbacks
    def test_a_class_and_its_announcement_channel(self):
        """A teacher makes a channel; a student hears GroupCreated, gets the teacher's
        message with its mention through the message observer, cannot post (Forbidden),
        and hears GroupMemberRemoved when removed, after which nothing more arrives."""
        teacher = yield self.online("teacher")
        ann = yield self.online("ann")
        ben = yield self.online("ben")
        group_events, received = [], []
        ann.subscribe("group", group_events.append)
        ann.subscribe("message", received.append)
        reply = yield teacher.group_create("Class 5b", members=["ann", "ben"],
                                           announce_only=True)
        gid = reply["group"]["group_id"]
        yield wait_for(lambda: group_events, what="group_created at ann")
        created = group_events[0]
        self.assertIsInstance(created, events.GroupCreated)
        self.assertEqual((created.group.group_id, created.group.announce_only, created.by),
                         (gid, True, "teacher"))
        sent = yield teacher.send_group_message(gid, "Homework: page 12, @ann collects")
        yield wait_for(lambda: received, what="the group message at ann")
        message = received[0]
        self.assertEqual((message.msg_id, message.group, message.recipient, message.sender),
                         (sent["msg_id"], gid, None, "teacher"))
        self.assertTrue(message.mentions_of("ann"))
        error = yield self.assertFailure(ann.send_group_message(gid, "may I?"), Forbidden)
        self.assertIn("announcement channel", error.message)
        yield teacher.group_remove(gid, "ann")
        yield wait_for(lambda: len(group_events) == 2, what="the removal at ann")
        removed = group_events[1]
        self.assertEqual((type(removed), removed.account_name, removed.reason),
                         (events.GroupMemberRemoved, "ann", "removed"))
        yield teacher.send_group_message(gid, "after ann left")
        info = yield ben.group_info(gid)
        self.assertEqual([m["account_name"] for m in info["members"]], ["ben", "teacher"])
        yield ann.get_contacts()      # a round trip: anything pushed before it is in
        self.assertEqual([m.text for m in received], ["Homework: page 12, @ann collects"])

    @defer.inlineCallbacks
    def test_unread_counts_at_login_and_mark_read(self):
        """The unread observer hears the server's counts after a login; mark_read
        brings them to zero for the next login."""
        teacher = yield self.online("teacher")
        ann = yield self.online("ann")
        reply = yield teacher.group_create("Team", members=["ann"])
        gid = reply["group"]["group_id"]
        yield ann.stop()
        yield teacher.send_group_message(gid, "one")
        last = yield teacher.send_group_message(gid, "two @ann")
        yield teacher.send_message("ann", "psst")
        counts = []
        ann.subscribe("unread", counts.append)
        yield ann.start()
        yield wait_for(lambda: counts, what="unread counts at login")
        self.assertEqual(counts[0].groups, {gid: events.GroupUnread(2, 1,
                                                                    counts[0].groups[gid]
                                                                    .read_up_to)})
        self.assertEqual(counts[0].direct["teacher"][0], 1)
        yield ann.mark_read(last["msg_id"], group_id=gid)
        yield ann.mark_read(last["msg_id"] + 10, with_user="teacher")
        fresh = yield ann.unread_counts()
        self.assertEqual(fresh, events.UnreadCounts())
        history = yield ann.group_history(gid)
        self.assertEqual([m["message"] for m in history["alert"]], ["one", "two @ann"])
        listed = yield ann.group_list()
        self.assertEqual(listed["alert"][0]["unread"], 0)

    @defer.inlineCallbacks
    def test_own_group_messages_survive_a_server_restart(self):
        """Group messages queued while the server is away are sent once it is back,
        each stored once, and reach the other member in order."""
        teacher = yield self.online("teacher")
        ann = yield self.online("ann")
        reply = yield teacher.group_create("Team", members=["ann"])
        gid = reply["group"]["group_id"]
        received = []
        ann.subscribe("message", received.append)
        config = self.server.config
        yield self.server.stop()
        pending = [teacher.send_group_message(gid, f"m{n}") for n in range(3)]
        config.port = self.port
        self.server = MessengerServer(config, reactor)
        yield self.server.start()
        self.addCleanup(self.server.stop)
        acks = yield defer.gatherResults(pending)
        yield wait_for(lambda: len(received) == 3, what="three group messages at ann")
        self.assertEqual([m.text for m in received], ["m0", "m1", "m2"])
        self.assertEqual([m.msg_id for m in received], [a["msg_id"] for a in acks])


class GroupActionTests(unittest.TestCase):
    def test_every_group_action_has_a_method(self):
        """The client core has a method for each group action of PROTOCOL.md."""
        for name in ("group_create", "group_list", "group_info", "group_add",
                     "group_remove", "group_leave", "group_update", "group_set_role",
                     "group_delete", "group_history", "mark_read", "get_unread",
                     "unread_counts", "send_group_message", "queue_group_message",
                     "admin_list_groups"):
            self.assertTrue(callable(getattr(MessengerClient, name)), name)
