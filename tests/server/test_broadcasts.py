"""Broadcasts and premium codes over a real server: premium and admin users broadcast to
everyone online, others get 403; codes made by an admin make premium accounts once
(messenger.server.handlers.broadcasts, the register path, messenger.store.premium)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.store import premium
from tests.server.people import barrier, count, login, quit_, rows, server_with
from tests.support import jimclient
from tests.support.services import OnPostgres


@defer.inlineCallbacks
def make_code(admin):
    reply = yield admin.request("admin_create_code")
    assert reply["response"] == 201, reply
    return reply["code"]


@defer.inlineCallbacks
def register_with_code(testcase, server, name, code):
    client = yield jimclient.connect(testcase, server.tcp_port)
    reply = yield client.request("register", **jimclient.new_user(name, premium_code=code))
    return client, reply


class PremiumCodeTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_valid_code_makes_premium_account_once(self):
        """A valid code registers a premium account and is consumed; the same code again
        is 400 with no account created, and the same connection can then register
        without it."""
        server, (admin,) = yield server_with(self, "admin")
        code = yield make_code(admin)
        vip, reply = yield register_with_code(self, server, "vip", code)
        self.assertEqual(reply["response"], 201)
        self.assertEqual(reply["user"]["premium"], True)
        self.assertEqual(reply["user"]["admin"], False)
        used = yield rows(server, "SELECT used_by FROM premium_codes")
        self.assertEqual(used, [("vip",)])
        other, reply = yield register_with_code(self, server, "latecomer", code)
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "invalid or already used premium code"))
        users = yield count(server, "users", "WHERE name = 'latecomer'")
        self.assertEqual(users, 0)
        reply = yield other.request("register", **jimclient.new_user("latecomer"))
        self.assertEqual(reply["response"], 201)
        self.assertEqual(reply["user"]["premium"], False)

    @defer.inlineCallbacks
    def test_invalid_code(self):
        """A made-up code is 400 and creates no account; the user may try again."""
        server, _ = yield server_with(self, "admin")
        client, reply = yield register_with_code(self, server, "hopeful", "AAAA-BBBB-CCCC-DDDD")
        self.assertEqual(reply["response"], 400)
        self.assertEqual(reply["error"], "invalid or already used premium code")
        users = yield count(server, "users")
        self.assertEqual(users, 1)
        self.assertTrue(client.connected_)

    @defer.inlineCallbacks
    def test_code_typed_loosely(self):
        """A code typed in lower case, without dashes or with spaces, is the same code."""
        server, (admin,) = yield server_with(self, "admin")
        code = yield make_code(admin)
        loose = code.lower().replace("-", " ")
        _, reply = yield register_with_code(self, server, "vip", loose)
        self.assertEqual(reply["response"], 201)
        self.assertTrue(reply["user"]["premium"])

    @defer.inlineCallbacks
    def test_codes_are_stored_hashed_with_maker_and_time(self):
        """Only the hash of a code is stored, with who made it and when."""
        server, (admin,) = yield server_with(self, "admin")
        code = yield make_code(admin)
        stored = yield rows(server, "SELECT code_hash, hint, created_by, created"
                                    " FROM premium_codes")
        self.assertEqual(len(stored), 1)
        code_hash, hint, created_by, created = stored[0]
        self.assertEqual(code_hash, premium.hash_code(code))
        self.assertNotIn(code.replace("-", ""), code_hash.upper())
        self.assertEqual(hint, code[:4] + "-…")
        self.assertEqual(created_by, "admin")
        self.assertGreater(created, 0)


class BroadcastTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_premium_broadcast_reaches_everyone_online(self):
        """A premium user's broadcast is stored and pushed to every other online user
        (contacts or not); users offline read it later with get_broadcasts."""
        server, (admin, alice, bob, carol) = yield server_with(
            self, "admin", "alice", "bob", "carol")
        code = yield make_code(admin)
        yield quit_(carol)
        vip, _ = yield register_with_code(self, server, "vip", code)
        reply = yield vip.request("broadcast", message="Party at 8!")
        self.assertEqual(reply["response"], 200)
        self.assertIsInstance(reply["broadcast_id"], int)
        for client in (admin, alice, bob):
            push = yield client.wait_push("broadcast")
            self.assertEqual(push, {"action": "broadcast", "broadcast_id": reply["broadcast_id"],
                                    "time": reply["time"], "from": "vip",
                                    "message": "Party at 8!"})
        yield barrier(vip)
        self.assertEqual([p for p in vip.pushes if p["action"] == "broadcast"], [])
        carol = yield login(self, server, "carol")
        feed = yield carol.request("get_broadcasts")
        self.assertEqual(feed["response"], 202)
        self.assertEqual(feed["alert"], [{"broadcast_id": reply["broadcast_id"],
                                          "time": reply["time"], "from": "vip",
                                          "message": "Party at 8!"}])
        self.assertFalse(feed["more"])

    @defer.inlineCallbacks
    def test_ordinary_user_is_refused(self):
        """An ordinary user's broadcast is 403 with a clear error; nothing is stored or
        pushed."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        reply = yield alice.request("broadcast", message="me too")
        self.assertEqual(reply["response"], 403)
        self.assertEqual(reply["error"], "only premium or admin accounts can broadcast;"
                                         " register with a premium code or ask an"
                                         " administrator")
        stored = yield count(server, "broadcasts")
        self.assertEqual(stored, 0)
        yield barrier(admin)
        self.assertEqual([p for p in admin.pushes if p["action"] == "broadcast"], [])

    @defer.inlineCallbacks
    def test_admin_may_broadcast(self):
        """An administrator broadcasts without being premium."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        reply = yield admin.request("broadcast", message="maintenance tonight")
        self.assertEqual(reply["response"], 200)
        push = yield alice.wait_push("broadcast")
        self.assertEqual(push["from"], "admin")

    @defer.inlineCallbacks
    def test_premium_granted_and_revoked_applies_at_once(self):
        """The role is read per request: premium set by an admin allows the next broadcast,
        premium cleared refuses the next one, in the same session."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        yield admin.request("admin_set_premium", user_id="alice", value=True)
        reply = yield alice.request("broadcast", message="now I can")
        self.assertEqual(reply["response"], 200)
        yield admin.request("admin_set_premium", user_id="alice", value=False)
        reply = yield alice.request("broadcast", message="and now?")
        self.assertEqual(reply["response"], 403)

    @defer.inlineCallbacks
    def test_feed_is_newest_first_and_paged(self):
        """get_broadcasts returns the recent broadcasts newest first, paged with before."""
        server, (admin,) = yield server_with(self, "admin")
        ids = []
        for i in range(5):
            reply = yield admin.request("broadcast", message=f"news {i}")
            ids.append(reply["broadcast_id"])
        page = yield admin.request("get_broadcasts", limit=2)
        self.assertEqual([b["broadcast_id"] for b in page["alert"]], ids[:-3:-1])
        self.assertTrue(page["more"])
        rest = yield admin.request("get_broadcasts", before=page["alert"][-1]["broadcast_id"])
        self.assertEqual([b["message"] for b in rest["alert"]], ["news 2", "news 1", "news 0"])
        self.assertFalse(rest["more"])

    @defer.inlineCallbacks
    def test_resend_after_reconnect_stored_and_pushed_once(self):
        """A broadcast resent with the same request id on a new connection gets the first
        broadcast id; it is stored once and pushed once."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        rid = "ab" * 16
        first = yield admin.request("broadcast", id=rid, message="once")
        yield quit_(admin)
        admin = yield login(self, server, "admin")
        again = yield admin.request("broadcast", id=rid, message="once")
        self.assertEqual(again["broadcast_id"], first["broadcast_id"])
        stored = yield count(server, "broadcasts")
        self.assertEqual(stored, 1)
        yield barrier(alice)
        self.assertEqual(len([p for p in alice.pushes if p["action"] == "broadcast"]), 1)

    @defer.inlineCallbacks
    def test_body_limit(self):
        """A broadcast body above the configured size is 400."""
        server, (admin,) = yield server_with(self, "admin", max_body=32)
        reply = yield admin.request("broadcast", message="x" * 33)
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "'message' is larger than 32 bytes"))


class PremiumCodeTestsOnPostgres(OnPostgres, PremiumCodeTests):
    """The same on a PostgreSQL store."""


class BroadcastTestsOnPostgres(OnPostgres, BroadcastTests):
    """The same on a PostgreSQL store."""
