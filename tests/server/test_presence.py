"""Presence over a real server: online / away / offline pushed to the users who have you
as a contact, on login, status change, quit and a dropped connection
(messenger.server.presence, through the accounts and contacts handlers)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.server.presence import Presence
from messenger.server.router import Router
from tests.server.people import barrier, drop, login, quit_, server_with
from tests.support.services import OnPostgres


def presence_pushes(client, name=None):
    return [(p["account_name"], p["status"]) for p in client.pushes
            if p["action"] == "presence" and (name is None or p["account_name"] == name)]


class PresencePushTests(unittest.TestCase):

    @defer.inlineCallbacks
    def watched(self):
        """alice has bob as a contact; carol has nobody. bob is logged out."""
        server, (alice, bob, carol) = yield server_with(self, "alice", "bob", "carol")
        yield alice.request("add_contact", user_id="bob")
        yield quit_(bob)
        push = yield alice.wait_push("presence")
        self.assertEqual((push["account_name"], push["status"]), ("bob", "offline"))
        return server, alice, carol

    @defer.inlineCallbacks
    def test_login_status_change_and_quit(self):
        """A watcher sees its contact come online, go away, come back and log out, in
        that order, each with the contact's name and a server time."""
        server, alice, carol = yield self.watched()
        bob = yield login(self, server, "bob")
        push = yield alice.wait_push("presence")
        self.assertEqual(set(push), {"action", "account_name", "status", "time"})
        self.assertEqual((push["account_name"], push["status"]), ("bob", "online"))
        for status in ("away", "online"):
            reply = yield bob.request("presence", status=status)
            self.assertEqual(reply["response"], 200)
            push = yield alice.wait_push("presence")
            self.assertEqual(push["status"], status)
        yield quit_(bob)
        push = yield alice.wait_push("presence")
        self.assertEqual(push["status"], "offline")
        self.assertEqual(presence_pushes(carol), [])

    @defer.inlineCallbacks
    def test_dropped_connection_is_offline(self):
        """A connection that just drops (no quit, an RST from the client) is reported
        offline to the watchers."""
        server, alice, _ = yield self.watched()
        bob = yield login(self, server, "bob")
        yield alice.wait_push("presence")
        yield drop(bob)
        push = yield alice.wait_push("presence")
        self.assertEqual((push["account_name"], push["status"]), ("bob", "offline"))

    @defer.inlineCallbacks
    def test_same_status_is_not_pushed_twice(self):
        """Setting the status one already has pushes nothing."""
        server, alice, _ = yield self.watched()
        bob = yield login(self, server, "bob")
        yield alice.wait_push("presence")
        yield bob.request("presence", status="online")
        yield bob.request("presence", status="away")
        push = yield alice.wait_push("presence")
        self.assertEqual(push["status"], "away")
        yield barrier(alice)
        self.assertEqual(presence_pushes(alice), [])

    @defer.inlineCallbacks
    def test_only_watchers_are_told(self):
        """Presence goes to those who have you as a contact, not to your own contacts."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield alice.request("add_contact", user_id="bob")
        yield bob.request("presence", status="away")
        push = yield alice.wait_push("presence")
        self.assertEqual(push["status"], "away")
        yield alice.request("presence", status="away")
        yield barrier(bob)
        self.assertEqual(presence_pushes(bob), [])

    @defer.inlineCallbacks
    def test_contact_added_while_online_then_removed(self):
        """Adding a contact starts its presence pushes at once; removing it stops them."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield alice.request("add_contact", user_id="bob")
        yield bob.request("presence", status="away")
        push = yield alice.wait_push("presence")
        self.assertEqual(push["status"], "away")
        yield alice.request("del_contact", user_id="bob")
        yield bob.request("presence", status="online")
        yield barrier(alice)
        self.assertEqual(presence_pushes(alice), [])

    @defer.inlineCallbacks
    def test_watcher_logging_in_later_sees_status_in_contacts(self):
        """A watcher that logs in after its contact reads the contact's current status
        from get_contacts, and gets the later changes pushed."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield alice.request("add_contact", user_id="bob")
        yield quit_(alice)
        yield bob.request("presence", status="away")
        alice = yield login(self, server, "alice")
        reply = yield alice.request("get_contacts")
        self.assertEqual(reply["alert"], [{"account_name": "bob", "status": "away"}])
        yield drop(bob)
        push = yield alice.wait_push("presence")
        self.assertEqual(push["status"], "offline")
        reply = yield alice.request("get_contacts")
        self.assertEqual(reply["alert"], [{"account_name": "bob", "status": "offline"}])

    @defer.inlineCallbacks
    def test_mutual_contacts_many_watchers(self):
        """Every online watcher of a user gets its presence changes."""
        names = ["hub"] + [f"fan{i}" for i in range(4)]
        server, (hub, *fans) = yield server_with(self, *names)
        for fan in fans:
            yield fan.request("add_contact", user_id="hub")
        yield hub.request("presence", status="away")
        for fan in fans:
            push = yield fan.wait_push("presence")
            self.assertEqual((push["account_name"], push["status"]), ("hub", "away"))


class FakeSession:
    def __init__(self):
        self.frames = []

    def push_encoded(self, payload):
        self.frames.append(payload)


class FakeClock:
    def seconds(self):
        return 1000.0


class PresenceUnitTests(unittest.TestCase):

    def setUp(self):
        self.router = Router()
        self.presence = Presence(self.router, FakeClock())
        self.sessions = {user_id: FakeSession() for user_id in (1, 2, 3)}
        for user_id, session in self.sessions.items():
            self.router.attach(user_id, session)

    def test_watchers_follow_logins_and_logouts(self):
        """A user watches its contacts while online and stops when it goes offline."""
        self.presence.went_online(1, "one", [2, 3])
        self.assertEqual(self.presence.watchers_of(2), {1})
        self.presence.went_offline(1, "one")
        self.assertEqual(self.presence.watchers_of(2), set())
        self.assertEqual(self.presence.status_of(1), "offline")

    def test_status_change_pushes_encoded_once(self):
        """A change is pushed to each online watcher as the same encoded frame."""
        self.presence.went_online(1, "one", [3])
        self.presence.went_online(2, "two", [3])
        self.presence.went_online(3, "three", [])
        self.presence.set_status(3, "three", "away")
        frame = self.sessions[1].frames[-1]
        self.assertIs(frame, self.sessions[2].frames[-1])
        self.assertEqual(frame, b'{"action":"presence","account_name":"three",'
                                b'"status":"away","time":1000.0}')

    def test_status_of_offline_user_cannot_be_set(self):
        """set_status for a user who is not online changes nothing and pushes nothing."""
        self.presence.went_online(1, "one", [2])
        self.presence.set_status(2, "two", "away")
        self.assertEqual(self.presence.status_of(2), "offline")
        self.assertEqual(self.sessions[1].frames, [])


class PresencePushTestsOnPostgres(OnPostgres, PresencePushTests):
    """The same on a PostgreSQL store."""
