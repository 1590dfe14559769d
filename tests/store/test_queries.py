"""The query modules on a real SQLite file and a real PostgreSQL database: idempotent
message inserts, sync and history, user search, contacts, premium codes and the audited
admin changes (messenger.store). Every class runs twice: ``...OnPostgres`` is the twin."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from messenger.store import (
    adminops,
    audit,
    broadcasts,
    contacts,
    db,
    messages,
    plain,
    premium,
    users,
)
from messenger.store.errors import Duplicate, InvalidCode, LastAdmin, Missing
from tests.support import services
from tests.support.services import OnPostgres


@defer.inlineCallbacks
def store_connection(testcase: unittest.TestCase, migrated: bool = True) -> plain.PlainConnection:
    """A plain connection to a new database on the engine the test class asks for
    (``store_engine``), migrated to the current schema unless told otherwise."""
    location = yield services.database_for(testcase, migrated)
    connection = plain.open_plain(location)
    if migrated and not connection.is_postgres:
        db.migrate_sqlite(connection.raw, connection.engine)
    testcase.addCleanup(connection.close)
    return connection


class StoreCase(unittest.TestCase):
    """A migrated database and a plain connection; helpers run *_txn functions.
    Subclasses fill the database in ``prepare``."""

    store_engine = "sqlite"

    @defer.inlineCallbacks
    def setUp(self):
        self.connection = yield store_connection(self)
        self.now = 1000.0
        self.prepare()

    def prepare(self):
        """Rows every test of the class needs."""

    def write(self, fn, *args):
        return self.connection.write(fn, *args)

    def read(self, fn, *args):
        return self.connection.read(fn, *args)

    def user(self, name, code_hash=None):
        self.now += 1
        return self.write(users.create_txn, name, f"{name.lower()}@example.org", "hash",
                          self.now, code_hash)


class MessageStoreTests(StoreCase):

    def prepare(self):
        self.alice, self.bob, self.carol = (self.user(n).id for n in ("alice", "bob", "carol"))

    def insert(self, *items):
        return self.write(messages.insert_batch_txn, list(items))

    def test_ids_follow_batch_order(self):
        """A batch gets increasing ids in its own order and reports each row as new."""
        results = self.insert((self.alice, self.bob, "r1", "one", 1.0),
                              (self.bob, self.alice, "r2", "two", 2.0),
                              (self.carol, self.bob, "r3", "three", 3.0))
        self.assertEqual([(created, new) for _, created, new in results],
                         [(1.0, True), (2.0, True), (3.0, True)])
        ids = [msg_id for msg_id, _, _ in results]
        self.assertEqual(ids, sorted(ids))

    def test_idempotent_by_sender_and_request_id(self):
        """The same (sender, request id) again, in the same batch or a later one, is not
        stored twice: it answers with the first copy's id and time, marked not new."""
        first, dup_in_batch = self.insert((self.alice, self.bob, "same", "hello", 1.0),
                                          (self.alice, self.bob, "same", "hello", 1.5))
        (later,) = self.insert((self.alice, self.bob, "same", "hello again", 9.0))
        self.assertEqual(dup_in_batch, (first[0], 1.0, False))
        self.assertEqual(later, (first[0], 1.0, False))
        (other_sender,) = self.insert((self.carol, self.bob, "same", "mine", 2.0))
        self.assertTrue(other_sender[2])
        self.assertEqual(self.read(messages.count_txn), 2)

    def test_gone_users(self):
        """A row whose sender or recipient no longer exists is reported, not stored, and
        does not spoil the rest of its batch."""
        results = self.insert((self.alice, 999, "a", "to nobody", 1.0),
                              (998, self.alice, "b", "from nobody", 1.0),
                              (self.alice, self.bob, "c", "fine", 1.0))
        self.assertEqual(results[:2], [messages.RECIPIENT_GONE, messages.SENDER_GONE])
        self.assertTrue(results[2][2])
        self.assertEqual(self.read(messages.count_txn), 1)

    def test_sync_returns_only_the_recipients_in_order(self):
        """sync gives the messages to one user after an id, oldest first, with names."""
        self.insert((self.alice, self.carol, "1", "a1", 1.0),
                    (self.bob, self.alice, "2", "x", 1.0),
                    (self.bob, self.carol, "3", "b1", 2.0),
                    (self.alice, self.carol, "4", "a2", 3.0))
        rows = self.read(messages.sync_txn, self.carol, 0, 10)
        self.assertEqual([(row[2], row[3], row[5]) for row in rows],
                         [("alice", "carol", "a1"), ("bob", "carol", "b1"),
                          ("alice", "carol", "a2")])
        after_first = self.read(messages.sync_txn, self.carol, rows[0][0], 10)
        self.assertEqual([row[5] for row in after_first], ["b1", "a2"])
        self.assertEqual([row[5] for row in self.read(messages.sync_txn, self.carol, 0, 1)],
                         ["a1"])

    def test_history_both_directions_oldest_first(self):
        """history holds both directions of one conversation, the newest page first
        asked, each page oldest first."""
        for i in range(5):
            sender, to = (self.alice, self.bob) if i % 2 == 0 else (self.bob, self.alice)
            self.insert((sender, to, f"h{i}", f"m{i}", float(i)))
        self.insert((self.carol, self.alice, "x", "other", 9.0))
        page = self.read(messages.history_txn, self.alice, self.bob, None, 2)
        self.assertEqual([row[4] for row in page], ["m3", "m4"])
        older = self.read(messages.history_txn, self.bob, self.alice, page[0][0], 10)
        self.assertEqual([row[4] for row in older], ["m0", "m1", "m2"])

    def test_pages_read_until_the_byte_budget(self):
        """With max_bytes, sync and history stop reading at the row that passes it (that
        row included); history keeps the newest rows of the page."""
        for i in range(10):
            self.insert((self.alice, self.bob, f"b{i}", f"{i}" * 100, float(i)))
        page = self.read(messages.sync_txn, self.bob, 0, 1000, 250)
        self.assertEqual([row[5][0] for row in page], ["0", "1", "2"])  # a SyncRow
        self.assertEqual(len(self.read(messages.sync_txn, self.bob, 0, 1000, 0)), 10)
        page = self.read(messages.history_txn, self.bob, self.alice, None, 1000, 250)
        self.assertEqual([row[4][0] for row in page], ["7", "8", "9"])
        page = self.read(messages.history_txn, self.bob, self.alice, None, 5, 10**6)
        self.assertEqual([row[4][0] for row in page], ["5", "6", "7", "8", "9"])

    def test_history_pages_interleave_directions(self):
        """Pages of a conversation whose directions interleave unevenly hold exactly the
        newest rows below ``before``, whichever direction they went."""
        sent = []
        for i in range(30):
            sender, to = (self.alice, self.bob) if i % 3 else (self.bob, self.alice)
            self.insert((sender, to, f"i{i}", f"n{i}", float(i)))
            sent.append(f"n{i}")
        self.insert((self.alice, self.carol, "elsewhere", "not ours", 99.0))
        seen, before = [], None
        while True:
            page = self.read(messages.history_txn, self.alice, self.bob, before, 7)
            if not page:
                break
            seen = [row[4] for row in page] + seen
            before = page[0][0]
        self.assertEqual(seen, sent)

    def test_history_with_oneself(self):
        """Notes to oneself form one conversation, each message once."""
        self.insert((self.alice, self.alice, "s1", "note 1", 1.0),
                    (self.alice, self.bob, "s2", "to bob", 2.0),
                    (self.alice, self.alice, "s3", "note 2", 3.0))
        page = self.read(messages.history_txn, self.alice, self.alice, None, 10)
        self.assertEqual([row[4] for row in page], ["note 1", "note 2"])

    def test_ids_never_reused_after_delete(self):
        """The id of a deleted newest message is not given out again."""
        (first,) = self.insert((self.alice, self.bob, "d1", "one", 1.0))
        self.write(lambda txn: txn.execute("DELETE FROM messages WHERE id = ?", (first[0],)))
        (second,) = self.insert((self.alice, self.bob, "d2", "two", 2.0))
        self.assertGreater(second[0], first[0])


class UserStoreTests(StoreCase):

    def test_first_account_is_admin(self):
        """The first account ever is an administrator; later ones are not."""
        self.assertTrue(self.user("first").is_admin)
        self.assertFalse(self.user("second").is_admin)

    def test_names_and_emails_unique_without_case(self):
        """A name or e-mail that differs only in case is taken."""
        self.user("Alice")
        error = self.assertRaises(Duplicate, self.user, "ALICE")
        self.assertEqual(error.field, "account name")
        error = self.assertRaises(Duplicate, self.write, users.create_txn, "other",
                                  "ALICE@example.org", "h", 1.0)
        self.assertEqual(error.field, "e-mail address")

    def test_search(self):
        """Search is a case-insensitive substring match, alphabetical, paged, leaves one id
        out, and takes LIKE wildcards and the escape character literally."""
        ids = {name: self.user(name).id for name in ("Ann", "joANNa", "bob", "an_n", "x\\y")}
        found = self.read(users.search_txn, "ann", None, 0, 10)
        self.assertEqual([name for _, name in found], ["Ann", "joANNa"])
        found = self.read(users.search_txn, "ann", ids["Ann"], 0, 10)
        self.assertEqual([name for _, name in found], ["joANNa"])
        self.assertEqual(self.read(users.search_txn, "_", None, 0, 10),
                         [(ids["an_n"], "an_n")])
        self.assertEqual(self.read(users.search_txn, "\\", None, 0, 10),
                         [(ids["x\\y"], "x\\y")])
        self.assertEqual(self.read(users.search_txn, "%", None, 0, 10), [])
        page = self.read(users.search_txn, "n", None, 1, 2)
        self.assertEqual([name for _, name in page], ["Ann", "joANNa"])

    def test_premium_code_consumed_with_the_account(self):
        """A valid code makes the account premium and is marked used by it; a used or
        unknown code creates no account."""
        self.user("admin")
        code = premium.new_code()
        self.write(premium.create_txn, premium.hash_code(code), premium.hint(code),
                   "admin", 5.0)
        vip = self.user("vip", premium.hash_code(code.lower()))
        self.assertTrue(vip.is_premium)
        self.assertRaises(InvalidCode, self.user, "again", premium.hash_code(code))
        self.assertRaises(InvalidCode, self.user, "fake", premium.hash_code("NOPE-NOPE"))
        self.assertEqual(self.read(users.count_txn), 2)
        (row,) = self.read(premium.list_txn, 0, 10)
        self.assertEqual(row[2:5], ("admin", 5.0, "vip"))

    def test_code_format_and_hash(self):
        """Codes are four groups of four unambiguous characters; the hash ignores case,
        dashes and spaces."""
        code = premium.new_code()
        self.assertRegex(code, r"^[A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}$")
        self.assertEqual(premium.hash_code("abcd-efgh"), premium.hash_code("ABCD EFGH"))
        self.assertNotEqual(premium.hash_code("ABCD-EFGH"), premium.hash_code("ABCD-EFGG"))
        self.assertNotEqual(premium.new_code(), premium.new_code())


class UserIdTests(StoreCase):

    def test_ids_never_reused_after_delete(self):
        """Deleting the newest account does not free its id for the next one."""
        self.user("root")
        newest = self.user("newest")
        self.write(adminops.delete_user_txn, "operator:test", "newest", 5.0)
        self.assertGreater(self.user("later").id, newest.id)


class ContactStoreTests(StoreCase):

    def test_add_twice_and_missing(self):
        """A contact is added once; twice is Duplicate; a user that is gone is Missing."""
        alice, bob = self.user("alice").id, self.user("bob").id
        self.write(contacts.add_txn, alice, bob, 1.0)
        self.assertRaises(Duplicate, self.write, contacts.add_txn, alice, bob, 2.0)
        self.assertRaises(Missing, self.write, contacts.add_txn, alice, 999, 2.0)
        self.assertRaises(Missing, self.write, contacts.add_txn, 999, bob, 2.0)
        self.assertEqual(self.read(contacts.list_txn, alice), [(bob, "bob")])
        self.assertEqual(self.read(contacts.watchers_txn, bob), [alice])
        self.assertTrue(self.write(contacts.delete_txn, alice, bob))
        self.assertFalse(self.write(contacts.delete_txn, alice, bob))


class ContactPageTests(StoreCase):

    def prepare(self):
        self.owner = self.user("owner").id
        self.names = ["Zed", "amy", "Bob", "carl", "dora", "Eve", "fay"]
        for name in self.names:
            self.write(contacts.add_txn, self.owner, self.user(name).id, self.now)
        self.user("stranger")

    def test_pages_by_name_without_case(self):
        """Pages follow each other by lower-case name, with nothing repeated or lost."""
        seen, after = [], ""
        while True:
            page = self.read(contacts.list_page_txn, self.owner, after, 3)
            if not page:
                break
            self.assertLessEqual(len(page), 3)
            seen.extend(name for _, name in page)
            after = page[-1][1].lower()
        self.assertEqual(seen, sorted(self.names, key=str.lower))
        self.assertEqual([name for _, name in self.read(contacts.list_txn, self.owner)], seen)

    def test_page_survives_changes_before_it(self):
        """A contact removed from an earlier page does not shift the next page."""
        first = self.read(contacts.list_page_txn, self.owner, "", 2)
        self.write(contacts.delete_txn, self.owner, first[0][0])
        second = self.read(contacts.list_page_txn, self.owner, first[-1][1].lower(), 2)
        self.assertEqual([name for _, name in second], ["carl", "dora"])

    def test_count(self):
        """count_txn counts one owner's contacts."""
        self.assertEqual(self.read(contacts.count_txn, self.owner), len(self.names))
        stranger = self.read(users.get_by_name_txn, "stranger").id
        self.assertEqual(self.read(contacts.count_txn, stranger), 0)


class AdminOpsTests(StoreCase):

    def prepare(self):
        self.user("root")
        self.user("alice")

    def change(self, fn, *args):
        return self.write(fn, "operator:test", *args, 50.0)

    def trail(self):
        return [row[2:5] for row in reversed(self.read(audit.list_txn, None, 100))]

    def test_changes_are_audited_in_the_same_transaction(self):
        """Each change writes one audit row naming actor, action and target."""
        self.change(adminops.set_premium_txn, "ALICE", True)
        row = self.change(adminops.lock_txn, "alice", None)
        self.assertTrue(row.admin_locked)
        row = self.change(adminops.unlock_txn, "alice")
        self.assertFalse(row.admin_locked)
        self.change(adminops.set_admin_txn, "alice", True)
        self.assertEqual(self.trail(), [("operator:test", "set_premium", "alice"),
                                        ("operator:test", "lock", "alice"),
                                        ("operator:test", "unlock", "alice"),
                                        ("operator:test", "set_admin", "alice")])

    def test_last_admin(self):
        """The only admin cannot lose the role or be deleted; nothing is audited then."""
        self.assertRaises(LastAdmin, self.change, adminops.set_admin_txn, "root", False)
        self.assertRaises(LastAdmin, self.change, adminops.delete_user_txn, "root")
        self.assertEqual(self.trail(), [])
        self.change(adminops.set_admin_txn, "alice", True)
        self.change(adminops.set_admin_txn, "root", False)
        self.assertEqual(self.read(users.count_admins_txn, 0.0), 1)

    def test_last_admin_counts_only_admins_who_can_log_in(self):
        """A locked administrator does not count: with the other admin locked, the one
        left can neither lose the role, be locked nor be deleted; once the lock is gone
        (or has run out) it can."""
        self.change(adminops.set_admin_txn, "alice", True)
        self.change(adminops.lock_txn, "alice", None)
        for fn, args in ((adminops.set_admin_txn, (False,)), (adminops.lock_txn, (None,)),
                         (adminops.delete_user_txn, ())):
            self.assertRaises(LastAdmin, self.change, fn, "root", *args)
        self.assertEqual(self.read(users.count_admins_txn, 0.0), 1)
        self.change(adminops.unlock_txn, "alice")
        self.change(adminops.lock_txn, "alice", 10.0)   # a timed lock, over by now (50)
        self.assertEqual(self.read(users.count_admins_txn, 5.0), 1)
        self.assertEqual(self.read(users.count_admins_txn, 50.0), 2)
        self.change(adminops.set_admin_txn, "root", False)

    def test_missing_user(self):
        """Changes to an unknown name raise Missing and write nothing."""
        for fn, args in ((adminops.set_admin_txn, (True,)), (adminops.lock_txn, (None,)),
                         (adminops.unlock_txn, ()), (adminops.delete_user_txn, ())):
            self.assertRaises(Missing, self.change, fn, "ghost", *args)
        self.assertEqual(self.trail(), [])

    def test_delete_cascades_but_keeps_broadcasts(self):
        """Deleting an account removes its messages and contacts; its broadcasts stay
        under its name."""
        alice = self.read(users.get_by_name_txn, "alice").id
        bob = self.user("bob").id
        self.write(messages.insert_batch_txn, [(alice, bob, "r", "hi", 1.0)])
        self.write(contacts.add_txn, bob, alice, 1.0)
        self.write(broadcasts.insert_txn, alice, "alice", "b", "news", 1.0)
        self.change(adminops.delete_user_txn, "alice")
        self.assertEqual(self.read(messages.count_txn), 0)
        self.assertEqual(self.read(contacts.list_txn, bob), [])
        self.assertEqual([row[2] for row in self.read(broadcasts.recent_txn, None, 5)],
                         ["alice"])

    def test_audited_reads(self):
        """The audited reads return their rows and record that someone looked."""
        self.assertEqual(len(self.change(adminops.list_users_audited_txn, None, 0, 10)), 2)
        self.change(adminops.login_history_audited_txn, "alice", None, 10)
        self.change(adminops.list_codes_audited_txn, 0, 10)
        seen = self.change(adminops.audit_audited_txn, None, 10)
        self.assertEqual([row[3] for row in seen],
                         ["list_premium_codes", "login_history", "list_users"])
        self.assertEqual(self.trail()[-1], ("operator:test", "view_audit", None))

    def test_summary(self):
        """summary_txn counts what an account owns."""
        summary = self.read(adminops.summary_txn, "alice")
        self.assertEqual((summary["user"].name, summary["sent"], summary["last_login"]),
                         ("alice", 0, None))


class MessageStoreTestsOnPostgres(OnPostgres, MessageStoreTests):
    pass


class UserStoreTestsOnPostgres(OnPostgres, UserStoreTests):
    pass


class UserIdTestsOnPostgres(OnPostgres, UserIdTests):
    pass


class ContactStoreTestsOnPostgres(OnPostgres, ContactStoreTests):
    pass


class ContactPageTestsOnPostgres(OnPostgres, ContactPageTests):
    pass


class AdminOpsTestsOnPostgres(OnPostgres, AdminOpsTests):
    pass
