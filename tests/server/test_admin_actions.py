"""Admin actions over the protocol, as an admin and as a non-admin, with their audit rows
and their effect on live sessions (messenger.server.handlers.admin, store.adminops)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.server.people import count, rows, server_with, snapshot, wait_until
from tests.support import jimclient
from tests.support.services import OnPostgres

# Every admin action with valid fields (targets exist in the fixture below).
ADMIN_CALLS = [
    ("admin_list_users", {}),
    ("admin_set_admin", {"user_id": "bob", "value": True}),
    ("admin_set_premium", {"user_id": "bob", "value": True}),
    ("admin_lock", {"user_id": "bob"}),
    ("admin_unlock", {"user_id": "bob"}),
    ("admin_login_history", {"user_id": "bob"}),
    ("admin_create_code", {}),
    ("admin_list_codes", {}),
    ("admin_delete_user", {"user_id": "bob"}),
    ("admin_audit", {}),
]


@defer.inlineCallbacks
def audit_rows(server):
    found = yield rows(server, "SELECT actor, action, target FROM audit_log ORDER BY id")
    return found


@defer.inlineCallbacks
def try_login(testcase, server, name, password="correct horse"):
    client = yield jimclient.connect(testcase, server.tcp_port)
    reply = yield client.request("authenticate",
                                 user={"account_name": name, "password": password})
    return client, reply


class NonAdminTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_every_admin_action_is_refused(self):
        """A non-admin gets 403 'administrators only' for every admin action, stays
        connected, and nothing changes (no row anywhere, audit included)."""
        server, (admin, alice, bob) = yield server_with(self, "admin", "alice", "bob")
        before = yield snapshot(server)
        for action, fields in ADMIN_CALLS:
            reply = yield alice.request(action, **fields)
            self.assertEqual((action, reply["response"], reply["error"]),
                             (action, 403, "administrators only"))
        after = yield snapshot(server)
        self.assertEqual(after, before)
        flags = yield rows(server, "SELECT is_admin, is_premium, admin_locked FROM users"
                                   " WHERE name = 'bob'")
        self.assertEqual(flags, [(0, 0, 0)])
        self.assertTrue(bob.connected_)
        reply = yield alice.request("get_contacts")
        self.assertEqual(reply["response"], 202)

    @defer.inlineCallbacks
    def test_demoted_admin_is_refused_at_once(self):
        """The role is checked against the database on every call: an admin demoted by
        another admin gets 403 on the very next admin action of the same session."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        yield admin.request("admin_set_admin", user_id="alice", value=True)
        reply = yield alice.request("admin_list_users")
        self.assertEqual(reply["response"], 202)
        yield admin.request("admin_set_admin", user_id="alice", value=False)
        reply = yield alice.request("admin_list_users")
        self.assertEqual(reply["response"], 403)


class AdminActionTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_list_users_paged_with_flags(self):
        """admin_list_users shows each account with admin, premium, locked and online,
        in pages, optionally filtered by name."""
        server, (admin, alice, bob) = yield server_with(self, "admin", "alice", "bob")
        yield admin.request("admin_set_premium", user_id="alice", value=True)
        yield admin.request("admin_lock", user_id="bob")
        reply = yield admin.request("admin_list_users", limit=2)
        self.assertEqual(reply["response"], 202)
        self.assertTrue(reply["more"])
        first = reply["alert"]
        reply = yield admin.request("admin_list_users", limit=2, offset=2)
        self.assertFalse(reply["more"])
        listed = {u["account_name"]: u for u in first + reply["alert"]}
        self.assertEqual(set(listed), {"admin", "alice", "bob"})
        self.assertEqual((listed["admin"]["admin"], listed["admin"]["online"]), (True, True))
        self.assertEqual((listed["alice"]["premium"], listed["alice"]["locked"]), (True, False))
        self.assertEqual((listed["bob"]["locked"], listed["bob"]["locked_until"]), (True, None))
        yield wait_until(lambda: not server.ctx.router.is_online(
            server.ctx.directory.cached("bob").id))
        reply = yield admin.request("admin_list_users", query="BO")
        self.assertEqual([(u["account_name"], u["online"], u["email"]) for u in reply["alert"]],
                         [("bob", False, "bob@example.org")])

    @defer.inlineCallbacks
    def test_set_and_clear_admin_and_premium(self):
        """Role changes are stored, answered with the account, pushed to the user's live
        session as an 'account' push, and audited."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        reply = yield admin.request("admin_set_admin", user_id="ALICE", value=True)
        self.assertEqual(reply["response"], 200)
        self.assertEqual((reply["user"]["account_name"], reply["user"]["admin"],
                          reply["user"]["online"]), ("alice", True, True))
        push = yield alice.wait_push("account")
        self.assertEqual(push["user"], {"account_name": "alice", "email": "alice@example.org",
                                        "admin": True, "premium": False})
        yield admin.request("admin_set_premium", user_id="alice", value=True)
        push = yield alice.wait_push("account")
        self.assertEqual((push["user"]["admin"], push["user"]["premium"]), (True, True))
        yield admin.request("admin_set_admin", user_id="alice", value=False)
        reply = yield admin.request("admin_set_premium", user_id="alice", value=False)
        self.assertEqual((reply["user"]["admin"], reply["user"]["premium"]), (False, False))
        flags = yield rows(server, "SELECT is_admin, is_premium FROM users WHERE name='alice'")
        self.assertEqual(flags, [(0, 0)])
        trail = yield audit_rows(server)
        self.assertEqual(trail, [("admin", "set_admin", "alice"),
                                 ("admin", "set_premium", "alice"),
                                 ("admin", "clear_admin", "alice"),
                                 ("admin", "clear_premium", "alice")])

    @defer.inlineCallbacks
    def test_lock_kicks_and_refuses_login_until_unlocked(self):
        """A locked user's session gets a notice and is closed; logging in is 403 until an
        admin unlocks, then works."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        reply = yield admin.request("admin_lock", user_id="alice")
        self.assertEqual(reply["response"], 200)
        self.assertTrue(reply["user"]["locked"])
        notice = yield alice.wait_push("notice")
        self.assertEqual(notice["level"], 101)
        self.assertEqual(notice["message"], "Your account was locked by an administrator.")
        yield alice.closed
        yield wait_until(lambda: not server.ctx.router.is_online(
            server.ctx.directory.cached("alice").id))
        _, reply = yield try_login(self, server, "alice")
        self.assertEqual((reply["response"], reply["error"]),
                         (403, "account locked by an administrator"))
        reply = yield admin.request("admin_unlock", user_id="alice")
        self.assertEqual((reply["response"], reply["user"]["locked"]), (200, False))
        _, reply = yield try_login(self, server, "alice")
        self.assertEqual(reply["response"], 200)
        trail = yield audit_rows(server)
        self.assertEqual(trail, [("admin", "lock", "alice"), ("admin", "unlock", "alice")])

    @defer.inlineCallbacks
    def test_timed_lock(self):
        """A lock for some minutes reports when it ends."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        reply = yield admin.request("admin_lock", user_id="alice", minutes=30)
        user = reply["user"]
        self.assertTrue(user["locked"])
        self.assertLess(abs(user["locked_until"] - (server.ctx.clock.seconds() + 1800)), 5)
        detail = yield rows(server, "SELECT detail FROM audit_log")
        self.assertTrue(detail[0][0].startswith("until "))

    @defer.inlineCallbacks
    def test_login_history(self):
        """admin_login_history lists a user's logins newest first, failures included."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        yield try_login(self, server, "alice", "wrong password")
        reply = yield admin.request("admin_login_history", user_id="alice")
        self.assertEqual(reply["response"], 202)
        entries = [(e["address"], e["method"], e["success"]) for e in reply["alert"]]
        self.assertEqual(entries, [("127.0.0.1", "password", False),
                                   ("127.0.0.1", "register", True)])
        self.assertGreater(reply["alert"][0]["login_id"], reply["alert"][1]["login_id"])
        page = yield admin.request("admin_login_history", user_id="alice", limit=1,
                                   before=reply["alert"][0]["login_id"])
        self.assertEqual([e["method"] for e in page["alert"]], ["register"])
        trail = yield audit_rows(server)
        self.assertIn(("admin", "login_history", "alice"), trail)

    @defer.inlineCallbacks
    def test_create_and_list_codes(self):
        """Codes are created once-visible and listed with who made them and who used them."""
        server, (admin,) = yield server_with(self, "admin")
        made = yield admin.request("admin_create_code")
        self.assertEqual(made["response"], 201)
        self.assertRegex(made["code"], r"^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$")
        client = yield jimclient.connect(self, server.tcp_port)
        yield client.request("register", **jimclient.new_user("vip", premium_code=made["code"]))
        yield admin.request("admin_create_code")
        listed = yield admin.request("admin_list_codes")
        self.assertEqual(listed["response"], 202)
        codes = listed["alert"]
        self.assertEqual(len(codes), 2)
        self.assertEqual((codes[1]["code_id"], codes[1]["created_by"], codes[1]["used_by"],
                          codes[1]["hint"]),
                         (made["code_id"], "admin", "vip", made["code"][:4] + "-…"))
        self.assertIsNone(codes[0]["used_by"])
        self.assertNotIn(made["code"], str(listed))

    @defer.inlineCallbacks
    def test_delete_user(self):
        """Deleting an account closes its session, removes it and what it owns, and the
        name can no longer log in; bob, who had it as a contact, gets contact_deleted, and
        as a member of the group it owned, group_member_removed and the ownership."""
        server, (admin, alice, bob) = yield server_with(self, "admin", "alice", "bob")
        yield alice.request("msg", to="bob", message="soon gone")
        yield bob.request("add_contact", user_id="alice")
        reply = yield alice.request("group_create", name="Chess", members=["bob"])
        gid = reply["group"]["group_id"]
        reply = yield admin.request("admin_delete_user", user_id="alice")
        self.assertEqual(reply["response"], 200)
        notice = yield alice.wait_push("notice")
        self.assertIn("deleted", notice["message"])
        yield alice.closed
        gone = yield bob.wait_push("contact_deleted")
        self.assertEqual(gone["account_name"], "alice")
        removed = yield bob.wait_push("group_member_removed")
        self.assertEqual((removed["group_id"], removed["account_name"], removed["reason"]),
                         (gid, "alice", "deleted"))
        owner = yield bob.wait_push("group_role_changed")
        self.assertEqual((owner["account_name"], owner["role"], owner["by"]),
                         ("bob", "owner", ""))
        for table, where in (("users", "WHERE name = 'alice'"), ("messages", ""),
                             ("contacts", "")):
            left = yield count(server, table, where)
            self.assertEqual(left, 0, table)
        _, reply = yield try_login(self, server, "alice")
        self.assertEqual(reply["response"], 402)
        reply = yield bob.request("msg", to="alice", message="hello?")
        self.assertEqual(reply["response"], 404)
        trail = yield audit_rows(server)
        self.assertEqual(trail, [("admin", "delete_user", "alice")])

    @defer.inlineCallbacks
    def test_audit_log(self):
        """Every admin action, reads included, leaves one audit row with who, what, whom
        and when; admin_audit lists them newest first (as they were before this look)."""
        server, (admin, bob) = yield server_with(self, "admin", "bob")
        start = server.ctx.clock.seconds()
        for action, fields in ADMIN_CALLS:
            reply = yield admin.request(action, **fields)
            self.assertLess(reply["response"], 300, (action, reply))
        trail = yield rows(server, "SELECT time, actor, action, target FROM audit_log"
                                   " ORDER BY id")
        self.assertEqual([(actor, action, target) for _, actor, action, target in trail], [
            ("admin", "list_users", None), ("admin", "set_admin", "bob"),
            ("admin", "set_premium", "bob"), ("admin", "lock", "bob"),
            ("admin", "unlock", "bob"), ("admin", "login_history", "bob"),
            ("admin", "create_premium_code", None), ("admin", "list_premium_codes", None),
            ("admin", "delete_user", "bob"), ("admin", "view_audit", None)])
        self.assertTrue(all(start - 1 <= when <= start + 60 for when, *_ in trail))
        reply = yield admin.request("admin_audit", limit=3)
        self.assertEqual([e["action"] for e in reply["alert"]],
                         ["view_audit", "delete_user", "list_premium_codes"])
        self.assertTrue(reply["more"])
        self.assertEqual(set(reply["alert"][0]), {"audit_id", "time", "actor", "action",
                                                  "target", "detail"})


class AdminGuardTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_last_admin_keeps_the_role(self):
        """The only admin cannot clear their own admin role (409); with a second admin
        they can."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        reply = yield admin.request("admin_set_admin", user_id="admin", value=False)
        self.assertEqual(reply["response"], 409)
        self.assertIn("last administrator", reply["error"])
        flags = yield rows(server, "SELECT is_admin FROM users WHERE name = 'admin'")
        self.assertEqual(flags, [(1,)])
        yield admin.request("admin_set_admin", user_id="alice", value=True)
        reply = yield admin.request("admin_set_admin", user_id="admin", value=False)
        self.assertEqual(reply["response"], 200)
        reply = yield alice.request("admin_set_admin", user_id="alice", value=False)
        self.assertEqual(reply["response"], 409)

    @defer.inlineCallbacks
    def test_not_on_yourself(self):
        """An admin cannot lock or delete their own account over the protocol (400)."""
        server, (admin,) = yield server_with(self, "admin")
        for action in ("admin_lock", "admin_delete_user"):
            reply = yield admin.request(action, user_id="Admin")
            self.assertEqual(reply["response"], 400, action)
        left = yield count(server, "audit_log")
        self.assertEqual(left, 0)

    @defer.inlineCallbacks
    def test_unknown_target(self):
        """Every admin action on an unknown name is 404 and leaves no audit row."""
        server, (admin,) = yield server_with(self, "admin")
        for action, fields in ADMIN_CALLS:
            if "user_id" not in fields:
                continue
            reply = yield admin.request(action, **dict(fields, user_id="ghost"))
            self.assertEqual((action, reply["response"], reply["error"]),
                             (action, 404, "no user named 'ghost'"))
        left = yield count(server, "audit_log")
        self.assertEqual(left, 0)

    @defer.inlineCallbacks
    def test_second_admin_after_login(self):
        """A user made admin while online can use admin actions in the same session."""
        server, (admin, alice) = yield server_with(self, "admin", "alice")
        yield admin.request("admin_set_admin", user_id="alice", value=True)
        reply = yield alice.request("admin_create_code")
        self.assertEqual(reply["response"], 201)


class NonAdminTestsOnPostgres(OnPostgres, NonAdminTests):
    """The same on a PostgreSQL store."""


class AdminActionTestsOnPostgres(OnPostgres, AdminActionTests):
    """The same on a PostgreSQL store."""


class AdminGuardTestsOnPostgres(OnPostgres, AdminGuardTests):
    """The same on a PostgreSQL store."""
