"""Accounts over real sockets (messenger.server.handlers.accounts): register, log in with
a password or a resume token, one live session per account, the first user as admin,
auto-registration, token expiry and revocation, quit and logout."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from messenger.store import logins, tokens, users
from tests.server.people import wait_until
from tests.support import jimclient
from tests.support.jimclient import new_user, wait_closed
from tests.support.server import start_server
from tests.support.services import OnPostgres

PASSWORD = "correct horse"


def credentials(name: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    return {"user": {"account_name": name, "password": password}, **extra}


class AccountTestCase(unittest.TestCase):
    timeout = 30
    overrides: dict[str, Any] = {}

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield start_server(self, **self.overrides)
        self.port = self.server.tcp_port

    def connect(self, **kwargs: Any) -> defer.Deferred[Any]:
        return jimclient.connect(self, self.port, **kwargs)

    @defer.inlineCallbacks
    def login(self, name: str, password: str = PASSWORD, **extra: Any) -> Any:
        client = yield self.connect()
        reply = yield client.request("authenticate", **credentials(name, password, **extra))
        return client, reply

    def user_row(self, name: str) -> defer.Deferred[users.UserRow | None]:
        return self.server.db.read(users.get_by_name_txn, name)


class RegisterTests(AccountTestCase):
    @defer.inlineCallbacks
    def test_register(self) -> Any:
        """register: 201, the account, logged in at once, stored with a scrypt hash."""
        client, reply = yield jimclient.register(self, self.port, "Alice")
        self.assertEqual(reply["response"], 201)
        self.assertEqual(reply["user"], {"account_name": "Alice", "email": "alice@example.org",
                                         "admin": True, "premium": False})
        self.assertNotIn("token", reply)
        contacts = yield client.request("get_contacts")
        self.assertEqual(contacts["response"], 202)
        row = yield self.user_row("alice")
        self.assertTrue(row.password_hash.startswith("scrypt$"))
        self.assertNotIn(PASSWORD, row.password_hash)
        self.assertTrue(self.server.ctx.router.is_online(row.id))

    @defer.inlineCallbacks
    def test_login_reply_carries_the_limits(self) -> Any:
        """Every login reply announces the server's limits (DECISIONS 3): the largest
        client frame, message body and server payload."""
        _, reply = yield jimclient.register(self, self.port, "Alice")
        config = self.server.config
        self.assertEqual(reply["limits"], {"max_frame": config.max_frame,
                                           "max_body": config.max_body,
                                           "max_payload": 1048576,
                                           "max_file_size": config.files.max_size})

    @defer.inlineCallbacks
    def test_first_user_is_admin(self) -> Any:
        """The first account ever is an admin; the ones after it are not."""
        _, first = yield jimclient.register(self, self.port, "first")
        _, second = yield jimclient.register(self, self.port, "second")
        _, third = yield jimclient.register(self, self.port, "third")
        self.assertEqual([r["user"]["admin"] for r in (first, second, third)],
                         [True, False, False])

    @defer.inlineCallbacks
    def test_duplicates(self) -> Any:
        """A taken name (in any case) or e-mail: 409, and the connection stays usable."""
        yield jimclient.register(self, self.port, "alice")
        client = yield self.connect()
        reply = yield client.request("register", **new_user("ALICE", email="x@example.org"))
        self.assertEqual((reply["response"], reply["error"]),
                         (409, "account name already taken"))
        reply = yield client.request("register", **new_user("alice2",
                                                           email="Alice@Example.org"))
        self.assertEqual((reply["response"], reply["error"]),
                         (409, "e-mail address already taken"))
        reply = yield client.request("register", **new_user("alice3"))
        self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_invalid_registrations(self) -> Any:
        """Bad names, short passwords, bad e-mails: 400 naming the field."""
        client = yield self.connect()
        cases = [
            (new_user("al"), "'user.account_name' must be 3 to 32 characters"),
            (new_user("-alice"), "'user.account_name' must be 3 to 32 characters"),
            (new_user("ali ce"), "'user.account_name' must be 3 to 32 characters"),
            (new_user("alice", password="short"),
             "'user.password' must be 8 to 1024 characters long"),
            (new_user("alice", email="not-an-address"), "'user.email' must be an e-mail"),
            ({"user": {"account_name": "alice", "password": PASSWORD}},
             "'user.email' is required"),
        ]
        for fields, error in cases:
            reply = yield client.request("register", **fields)
            self.assertEqual(reply["response"], 400)
            self.assertTrue(reply["error"].startswith(error), reply["error"])
        count = yield self.server.db.read(users.count_txn)
        self.assertEqual(count, 0)

    @defer.inlineCallbacks
    def test_premium_codes(self) -> Any:
        """A code made by an admin makes a premium account once; a used or wrong one: 400."""
        admin, _ = yield jimclient.register(self, self.port, "admin")
        made = yield admin.request("admin_create_code")
        self.assertEqual(made["response"], 201)
        client = yield self.connect()
        reply = yield client.request("register", **new_user("vip", premium_code=made["code"]))
        self.assertEqual((reply["response"], reply["user"]["premium"]), (201, True))
        other = yield self.connect()
        reply = yield other.request("register", **new_user("vip2", premium_code=made["code"]))
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "invalid or already used premium code"))
        reply = yield other.request("register", **new_user("vip2", premium_code="NOPE"))
        self.assertEqual(reply["response"], 400)
        row = yield self.user_row("vip2")
        self.assertIsNone(row)


class LoginTests(AccountTestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        client, _ = yield jimclient.register(self, self.port, "alice")
        yield client.request("quit")
        yield wait_closed(client)

    @defer.inlineCallbacks
    def test_login(self) -> Any:
        """authenticate: 200 with the account; names match in any case."""
        client, reply = yield self.login("ALICE")
        self.assertEqual(reply["response"], 200)
        self.assertEqual(reply["user"]["account_name"], "alice")
        contacts = yield client.request("get_contacts")
        self.assertEqual(contacts["response"], 202)

    @defer.inlineCallbacks
    def test_wrong_password(self) -> Any:
        """A wrong password: 402 'wrong account name or password'; the same for an unknown
        name, so names cannot be probed; the connection stays usable."""
        client, reply = yield self.login("alice", "wrong password")
        self.assertEqual((reply["response"], reply["error"]),
                         (402, "wrong account name or password"))
        reply = yield client.request("authenticate", **credentials("nobody"))
        self.assertEqual((reply["response"], reply["error"]),
                         (402, "wrong account name or password"))
        reply = yield client.request("authenticate", **credentials("alice"))
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_history_is_recorded(self) -> Any:
        """Every attempt is in the login history with its address and outcome."""
        yield self.login("alice", "wrong password")
        yield self.login("alice")
        row = yield self.user_row("alice")
        history = yield self.server.db.read(logins.history_txn, row.id, None, 10)
        self.assertEqual([(address, method, success) for _, _, address, method, success
                          in history],
                         [("127.0.0.1", "password", True), ("127.0.0.1", "password", False),
                          ("127.0.0.1", "register", True)])

    @defer.inlineCallbacks
    def test_duplicate_session(self) -> Any:
        """A second login to a live account: 409; the first session is untouched."""
        first, reply = yield self.login("alice")
        self.assertEqual(reply["response"], 200)
        second, reply = yield self.login("alice")
        self.assertEqual((reply["response"], reply["error"]),
                         (409, "already connected: this account has a live session elsewhere"))
        probe = yield first.wait_push("probe")      # asked whether it is still there
        self.assertEqual(len(probe["id"]), 32)
        self.assertTrue(first.connected_)
        reply = yield first.request("get_contacts")
        self.assertEqual(reply["response"], 202)
        row = yield self.user_row("alice")
        self.assertEqual(self.server.ctx.router.session(row.id).transport.getPeer().port,
                         first.transport.getHost().port)
        self.assertTrue(second.connected_)
        reply = yield second.request("register", **new_user("bob"))
        self.assertEqual(reply["response"], 201)

    @defer.inlineCallbacks
    def test_one_login_at_a_time(self) -> Any:
        """Two logins sent at once on one connection: one succeeds, the other gets 409."""
        yield jimclient.register(self, self.port, "bob")
        client = yield self.connect()
        replies = yield defer.gatherResults([
            client.request("authenticate", **credentials("alice")),
            client.request("authenticate", **credentials("bob"))])
        self.assertEqual(sorted(r["response"] for r in replies), [200, 409])
        refused = next(r for r in replies if r["response"] == 409)
        self.assertEqual(refused["error"], "a login is already in progress on this connection")
        self.assertEqual(self.server.ctx.router.online_count(), 2)

    @defer.inlineCallbacks
    def test_quit_then_login_again(self) -> Any:
        """quit closes the session cleanly: the account is free again at once."""
        for _ in range(3):
            client, reply = yield self.login("alice")
            self.assertEqual(reply["response"], 200)
            bye = yield client.request("quit")
            self.assertEqual(bye["alert"], "bye")
            yield wait_closed(client)
        self.assertEqual(self.server.ctx.router.online_count(), 0)

    @defer.inlineCallbacks
    def test_dropped_connection_frees_the_account(self) -> Any:
        """A connection that just goes away ends its session too."""
        client, _ = yield self.login("alice")
        client.transport.abortConnection()
        yield wait_closed(client)
        yield wait_until(lambda: self.server.ctx.router.online_count() == 0)
        _, reply = yield self.login("alice")
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_raised_cost_rehashes_at_login(self) -> Any:
        """After the operator raises the scrypt cost, a successful login stores a new hash
        of that cost (the password still works); a failed login changes nothing."""
        client, _ = yield self.login("alice")
        yield client.request("quit")
        yield wait_closed(client)
        before = yield self.user_row("alice")
        self.assertTrue(before.password_hash.startswith("scrypt$16$"))
        self.server.ctx.hasher.n = 32
        _, reply = yield self.login("alice", "wrong password")
        self.assertEqual(reply["response"], 402)
        unchanged = yield self.user_row("alice")
        self.assertEqual(unchanged.password_hash, before.password_hash)
        client, reply = yield self.login("alice")
        self.assertEqual(reply["response"], 200)
        yield wait_until(lambda: self.user_row("alice").addCallback(
            lambda row: row.password_hash.startswith("scrypt$32$")))
        yield client.request("quit")
        yield wait_closed(client)
        _, reply = yield self.login("alice")
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_set_password(self) -> Any:
        """set_password: the old password must be right; the new one works afterwards."""
        client, _ = yield self.login("alice")
        reply = yield client.request("set_password", old_password="wrong",
                                     new_password="new password")
        self.assertEqual((reply["response"], reply["error"]), (402, "wrong password"))
        reply = yield client.request("set_password", old_password=PASSWORD,
                                     new_password="new password")
        self.assertEqual((reply["response"], reply["alert"]), (200, "password changed"))
        yield client.request("quit")
        yield wait_closed(client)
        _, reply = yield self.login("alice")
        self.assertEqual(reply["response"], 402)
        _, reply = yield self.login("alice", "new password")
        self.assertEqual(reply["response"], 200)


class AutoRegisterTests(AccountTestCase):
    overrides = {"auto_register": True}

    @defer.inlineCallbacks
    def test_auto_register(self) -> Any:
        """With auto-register, an unknown name logging in gets an account (201)."""
        client, reply = yield self.login("newbie", "long enough password")
        self.assertEqual((reply["response"], reply["user"]["account_name"]), (201, "newbie"))
        self.assertTrue(reply["user"]["admin"])
        yield client.request("quit")
        yield wait_closed(client)
        _, reply = yield self.login("newbie", "long enough password")
        self.assertEqual(reply["response"], 200)
        _, reply = yield self.login("newbie", "another password")
        self.assertEqual(reply["response"], 402)

    @defer.inlineCallbacks
    def test_auto_register_needs_a_real_password(self) -> Any:
        """A new account needs at least 8 characters of password: 400, nothing made."""
        _, reply = yield self.login("newbie", "short")
        self.assertEqual((reply["response"], reply["error"]),
                         (400, "a new account needs a password of at least 8 characters"))
        row = yield self.user_row("newbie")
        self.assertIsNone(row)

    @defer.inlineCallbacks
    def test_off_by_default(self) -> Any:
        """Without the option an unknown name is just a wrong login."""
        self.server.config.auto_register = False
        _, reply = yield self.login("newbie", "long enough password")
        self.assertEqual(reply["response"], 402)


class TokenTests(AccountTestCase):
    overrides = {"token_lifetime": 3600.0}

    @defer.inlineCallbacks
    def register_remembered(self, name: str = "alice") -> Any:
        client = yield self.connect()
        reply = yield client.request("register", **new_user(name, remember=True))
        self.assertEqual(reply["response"], 201)
        return client, reply

    @defer.inlineCallbacks
    def resume(self, name: str, token: str) -> Any:
        client = yield self.connect()
        reply = yield client.request("resume", user={"account_name": name}, token=token)
        return client, reply

    @defer.inlineCallbacks
    def test_resume(self) -> Any:
        """remember=true gives a token; resume with it logs in without the password."""
        client, reply = yield self.register_remembered()
        token = reply["token"]
        self.assertGreaterEqual(len(token), 40)
        self.assertLess(abs(reply["token_expires"] - (time.time() + 3600.0)), 5.0)
        stored = yield self.server.db.read(tokens.lookup_txn, token)
        self.assertIsNone(stored, "only a hash of the token is stored")
        yield client.request("quit")
        yield wait_closed(client)
        client, reply = yield self.resume("alice", token)
        self.assertEqual((reply["response"], reply["user"]["account_name"]), (200, "alice"))
        self.assertNotIn("token", reply)
        contacts = yield client.request("get_contacts")
        self.assertEqual(contacts["response"], 202)

    @defer.inlineCallbacks
    def test_token_is_for_one_account(self) -> Any:
        """A token resumes only the account it was made for."""
        client, reply = yield self.register_remembered()
        yield jimclient.register(self, self.port, "mallory")
        yield client.request("quit")
        _, reply2 = yield self.resume("mallory", reply["token"])
        self.assertEqual((reply2["response"], reply2["error"]),
                         (401, "invalid resume token: log in with your password"))
        _, reply3 = yield self.resume("alice", "x" * 43)
        self.assertEqual(reply3["response"], 401)

    @defer.inlineCallbacks
    def test_token_expiry(self) -> Any:
        """A token past its lifetime: 401 'expired', and it is deleted."""
        client, reply = yield self.register_remembered()
        yield client.request("quit")
        yield self.server.db.write(
            lambda txn: txn.execute("UPDATE resume_tokens SET expires = ?",
                                    (time.time() - 1,)))
        _, expired = yield self.resume("alice", reply["token"])
        self.assertEqual((expired["response"], expired["error"]),
                         (401, "resume token expired: log in with your password"))
        _, again = yield self.resume("alice", reply["token"])
        self.assertEqual(again["error"], "invalid resume token: log in with your password")

    @defer.inlineCallbacks
    def test_logout_revokes_the_token(self) -> Any:
        """logout revokes this session's token and closes."""
        client, reply = yield self.register_remembered()
        bye = yield client.request("logout")
        self.assertEqual((bye["response"], bye["alert"]), (200, "logged out"))
        yield wait_closed(client)
        _, refused = yield self.resume("alice", reply["token"])
        self.assertEqual(refused["response"], 401)

    @defer.inlineCallbacks
    def test_set_password_revokes_tokens(self) -> Any:
        """A new password revokes every token; the session changing it gets a new one."""
        client, reply = yield self.register_remembered()
        old_token = reply["token"]
        yield client.request("quit")
        yield wait_closed(client)
        second, reply = yield self.login("alice", PASSWORD, remember=True)
        other_token = reply["token"]
        changed = yield second.request("set_password", old_password=PASSWORD,
                                       new_password="brand new password")
        self.assertEqual(changed["response"], 200)
        new_token = changed["token"]
        self.assertNotIn(new_token, (old_token, other_token))
        yield second.request("quit")
        yield wait_closed(second)
        for token in (old_token, other_token):
            _, refused = yield self.resume("alice", token)
            self.assertEqual(refused["response"], 401)
        _, accepted = yield self.resume("alice", new_token)
        self.assertEqual(accepted["response"], 200)


class RegisterTestsOnPostgres(OnPostgres, RegisterTests):
    """The same on a PostgreSQL store."""


class LoginTestsOnPostgres(OnPostgres, LoginTests):
    """The same on a PostgreSQL store."""


class AutoRegisterTestsOnPostgres(OnPostgres, AutoRegisterTests):
    """The same on a PostgreSQL store."""


class TokenTestsOnPostgres(OnPostgres, TokenTests):
    """The same on a PostgreSQL store."""
