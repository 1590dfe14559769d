"""Login transactions on a real SQLite file and on PostgreSQL (messenger.store.accounts):
a success records the login and clears the failure count, a failure counts toward the
lock, and a login that may not happen (account gone, locked meanwhile, token revoked)
changes nothing."""

from __future__ import annotations

from messenger.store import accounts, lockout, tokens, users
from messenger.store.errors import Locked, Missing, Revoked
from tests.store.test_queries import StoreCase
from tests.support.services import OnPostgres

POLICY = lockout.LockoutPolicy(failures=2, window=60.0, duration=300.0)


class LoginTransactionTests(StoreCase):

    def prepare(self) -> None:
        self.alice = self.user("alice").id
        self.bob = self.user("bob").id

    def logins(self) -> list[tuple[str, str, int]]:
        def read(txn: object) -> list[tuple[str, str, int]]:
            txn.execute("SELECT address, method, success FROM login_history"  # type: ignore
                        " WHERE user_id = ? ORDER BY id", (self.alice,))
            return [tuple(row) for row in txn.fetchall()]  # type: ignore[attr-defined]
        return self.read(read)

    def test_success_records_and_returns_contacts(self) -> None:
        """A success returns the addresses known before it and the contacts, stores the
        new token and clears a failure series."""
        from messenger.store import contacts
        self.write(contacts.add_txn, self.alice, self.bob, 1.0)
        self.write(accounts.login_failure_txn, self.alice, 10.0, "192.0.2.1", "password",
                   POLICY)
        record = self.write(accounts.login_success_txn, self.alice, 11.0, "192.0.2.2",
                            "password", "new-token", 99.0, None)
        self.assertEqual(record.known_addresses, [])
        self.assertEqual(record.contacts, [(self.bob, "bob")])
        self.assertEqual(self.read(tokens.lookup_txn, "new-token"), (self.alice, 99.0))
        row = self.read(users.get_by_id_txn, self.alice)
        self.assertEqual((row.failed_logins, row.first_failure), (0, None))
        again = self.write(accounts.login_success_txn, self.alice, 12.0, "192.0.2.3",
                           "token", None, 0.0, "new-token")
        self.assertEqual(again.known_addresses, ["192.0.2.2"])
        self.assertEqual([entry[2] for entry in self.logins()], [0, 1, 1])

    def test_failures_lock_and_a_locked_login_is_refused(self) -> None:
        """The second failure in the window locks (reported once); a success while
        locked raises Locked and records nothing."""
        first = self.write(accounts.login_failure_txn, self.alice, 10.0, "a", "password",
                           POLICY)
        second = self.write(accounts.login_failure_txn, self.alice, 11.0, "a", "password",
                            POLICY)
        self.assertEqual((first.locked_now, second.locked_now), (False, True))
        self.assertEqual(second.state.locked_until, 311.0)
        error = self.assertRaises(Locked, self.write, accounts.login_success_txn,
                                  self.alice, 12.0, "a", "password", None, 0.0, None)
        self.assertEqual(error.state.locked_until, 311.0)
        self.assertEqual(len(self.logins()), 2)

    def test_gone_account_and_revoked_token(self) -> None:
        """A deleted account raises Missing; a revoked token raises Revoked; a failure
        for a gone account records nothing."""
        self.assertRaises(Revoked, self.write, accounts.login_success_txn, self.alice, 1.0,
                          "a", "token", None, 0.0, "no-such-token")
        self.write(users.delete_txn, self.alice)
        self.assertRaises(Missing, self.write, accounts.login_success_txn, self.alice, 1.0,
                          "a", "password", None, 0.0, None)
        gone = self.write(accounts.login_failure_txn, self.alice, 1.0, "a", "password",
                          POLICY)
        self.assertEqual(gone, accounts.FailureRecord(lockout.LockState(), False))

    def test_set_password_revokes_every_token_but_the_new_one(self) -> None:
        """A new password revokes all resume tokens and stores the one given."""
        self.write(tokens.create_txn, self.alice, "old-1", 1.0, 99.0)
        self.write(tokens.create_txn, self.alice, "old-2", 1.0, 99.0)
        self.write(accounts.set_password_txn, self.alice, "new-hash", 5.0, "fresh", 50.0)
        self.assertIsNone(self.read(tokens.lookup_txn, "old-1"))
        self.assertIsNone(self.read(tokens.lookup_txn, "old-2"))
        self.assertEqual(self.read(tokens.lookup_txn, "fresh"), (self.alice, 50.0))
        self.assertEqual(self.read(users.get_by_id_txn, self.alice).password_hash,
                         "new-hash")


class LoginTransactionTestsOnPostgres(OnPostgres, LoginTransactionTests):
    """The same on PostgreSQL."""
