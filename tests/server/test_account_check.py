"""Accounts changed with messenger-admin while their owner is online: the server notices."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer, threads
from twisted.trial import unittest

from messenger.store import adminops, plain
from tests.server.people import online, server_with
from tests.support.services import OnPostgres


def operator_change(location: Any, fn: Any, *args: Any) -> None:
    """What messenger-admin does: its own connection to the database, one write."""
    connection = plain.open_plain(location)
    try:
        connection.write(fn, "operator:test", *args, time.time())
    finally:
        connection.close()


class AccountCheckTests(unittest.TestCase):
    """check_accounts ends sessions of accounts deleted or admin-locked out of band."""

    @defer.inlineCallbacks
    def change(self, server: Any, fn: Any, *args: Any) -> Any:
        yield threads.deferToThread(operator_change, server.config.database_location, fn,
                                    *args)

    @defer.inlineCallbacks
    def test_admin_lock_from_the_cli_ends_the_session(self) -> Any:
        """An account locked until unlocked gets a notice and is disconnected."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield self.change(server, adminops.lock_txn, "bob", None)
        yield server.ctx.check_accounts()
        notice = yield bob.wait_push("notice")
        self.assertEqual(notice["message"], "Your account was locked by an administrator.")
        yield bob.closed
        self.assertFalse(online(server, "bob"))
        self.assertTrue(online(server, "alice"))

    @defer.inlineCallbacks
    def test_deleted_account_ends_the_session(self) -> Any:
        """An account deleted from the command line is told, disconnected and forgotten
        (its name leaves the directory, its id alice's contact list)."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        reply = yield alice.request("add_contact", user_id="bob")
        self.assertEqual(reply["response"], 201, reply)
        ctx = server.ctx
        bob_id = ctx.directory.cached("bob").id
        alice_session = ctx.router.session(ctx.directory.cached("alice").id)
        yield self.change(server, adminops.delete_user_txn, "bob")
        yield server.ctx.check_accounts()
        notice = yield bob.wait_push("notice")
        self.assertEqual(notice["message"], "Your account was deleted by an administrator.")
        yield bob.closed
        self.assertFalse(online(server, "bob"))
        self.assertIsNone(ctx.directory.cached("bob"))
        self.assertNotIn(bob_id, alice_session.contact_ids)

    @defer.inlineCallbacks
    def test_timed_lock_does_not_kick(self) -> Any:
        """A timed lock (what repeated wrong passwords cause) leaves the live session be."""
        server, (alice, bob) = yield server_with(self, "alice", "bob")
        yield self.change(server, adminops.lock_txn, "bob", time.time() + 600)
        yield server.ctx.check_accounts()
        self.assertTrue(online(server, "bob"))
        reply = yield bob.request("get_contacts")
        self.assertEqual(reply["response"], 202)


class AccountCheckTestsOnPostgres(OnPostgres, AccountCheckTests):
    """The same on a PostgreSQL store."""
