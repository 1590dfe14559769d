"""The database layer: migrations applied once and recorded, refusing a newer database,
a backup before an upgrade, plain connections for tools, and online backups
(messenger.store.db, messenger.store.plain). Classes named ``...OnPostgres`` run the
same tests on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg2
from twisted.internet import defer, reactor
from twisted.trial import unittest

from messenger.store import db, plain
from messenger.store.postgres import PostgresEngine
from tests.support import services
from tests.support.services import OnPostgres

FIRST = (1, "first", "CREATE TABLE things (\n    id AUTO_ID,\n    name TEXT NOT NULL\n);\n")
SECOND = (2, "second", "-- a comment line\nALTER TABLE things ADD COLUMN colour TEXT;\n"
                       "CREATE INDEX things_name ON things (name);\n")
BROKEN = (3, "broken", "CREATE TABLE more (x INTEGER);\nTHIS IS NOT SQL;\n")


def plain_sqlite(path: Path) -> sqlite3.Connection:
    return db.connect(path)


def shipped_numbers():
    return [number for number, _, _ in db.migrations()]


def versions_txn(txn):
    txn.execute("SELECT version, name FROM schema_version ORDER BY version")
    return [tuple(row) for row in txn.fetchall()]


def tables_txn(txn):
    if db.engine_of(txn).name == "postgres":
        txn.execute("SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema()")
    else:
        txn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in txn.fetchall()}


def columns_txn(txn, table):
    txn.execute(f"SELECT * FROM {table} WHERE 1 = 0")
    return [column[0] for column in txn.description]


class MigrationTests(unittest.TestCase):
    store_engine = "sqlite"

    @defer.inlineCallbacks
    def setUp(self):
        location = yield services.database_for(self, migrated=False)
        self.connection = plain.open_plain(location)
        self.addCleanup(self.connection.close)
        self.engine = self.connection.engine
        self.database_error = (psycopg2.Error if self.connection.is_postgres
                               else sqlite3.Error)

    def migrate(self, shipped):
        return db.migrate_plain(self.connection, shipped, 5.0)

    def test_applied_once_in_order_and_recorded(self):
        """Each migration runs once, in order, and is recorded with its name and time."""
        self.assertEqual(self.migrate([FIRST]), 1)
        self.assertEqual(self.migrate([FIRST, SECOND]), 2)
        self.assertEqual(self.migrate([FIRST, SECOND]), 2)
        self.assertEqual(self.connection.read(versions_txn), [(1, "first"), (2, "second")])

        def applied_txn(txn):
            txn.execute("SELECT applied FROM schema_version")
            return txn.fetchall()
        self.assertEqual([tuple(r) for r in self.connection.read(applied_txn)],
                         [(5.0,), (5.0,)])

        def insert_txn(txn):
            txn.execute("INSERT INTO things (name, colour) VALUES ('a', 'red')")
            txn.execute("SELECT id FROM things")
            return txn.fetchall()
        self.assertEqual([tuple(r) for r in self.connection.write(insert_txn)], [(1,)])

    def test_a_reserved_lower_number_that_lands_later_is_applied(self):
        """Numbers are reserved per feature: a migration whose lower number shipped after
        a higher one was applied is applied too, once (nothing is skipped)."""
        fifth = (5, "fifth", "CREATE TABLE fifth (x INTEGER);\n")
        self.assertEqual(self.migrate([FIRST, fifth]), 5)
        self.assertEqual(self.migrate([FIRST, SECOND, fifth]), 5)
        self.assertEqual(self.connection.read(versions_txn),
                         [(1, "first"), (2, "second"), (5, "fifth")])
        self.connection.write(lambda txn: txn.execute(
            "INSERT INTO things (name, colour) VALUES ('a', 'red')"))   # second's column
        self.assertEqual(self.migrate([FIRST, SECOND, fifth]), 5)

    def test_refuses_newer_database(self):
        """A database recorded at a version above the newest shipped one is refused and
        left untouched."""
        self.migrate([FIRST, SECOND])
        error = self.assertRaises(db.DatabaseTooNew, self.migrate, [FIRST])
        self.assertIn("newer than this server", str(error))
        self.assertEqual(self.connection.read(versions_txn), [(1, "first"), (2, "second")])

    def test_failed_migration_changes_nothing(self):
        """A migration that fails rolls back with everything of its run."""
        self.migrate([FIRST])
        self.assertRaises(self.database_error, self.migrate, [FIRST, SECOND, BROKEN])
        self.assertEqual(self.connection.read(versions_txn), [(1, "first")])
        self.assertNotIn("more", self.connection.read(tables_txn))
        self.assertEqual(self.connection.read(columns_txn, "things"), ["id", "name"])

    def test_stored_version_changes_nothing(self):
        """Reading the version of a new database gives 0 and creates no table."""
        version = self.connection.read(db.stored_version_txn, self.engine)
        self.assertEqual(version, 0)
        self.assertEqual(self.connection.read(tables_txn), set())

    def test_shipped_schema_runs_on_this_engine(self):
        """Every shipped migration runs on this engine, up to the latest version."""
        self.assertEqual(self.migrate(None), db.latest_version())
        self.assertTrue({"users", "messages", "contacts", "broadcasts", "login_history",
                         "resume_tokens", "premium_codes", "audit_log"}
                        <= self.connection.read(tables_txn))

    def test_shipped_schema_files(self):
        """The package ships numbered schema files starting at 1, in increasing order
        (numbers are reserved per feature, DECISIONS.md 7: a gap waits for its feature)."""
        shipped = db.migrations()
        numbers = [number for number, _, _ in shipped]
        self.assertEqual(numbers[:3], [1, 2, 3])
        self.assertEqual(numbers, sorted(set(numbers)))
        self.assertEqual(shipped[0][1], "initial")

    def test_split_statements(self):
        """Schema files split at lines ending in ';', comments and blank lines dropped."""
        self.assertEqual(db.split_statements(SECOND[2]),
                         ["ALTER TABLE things ADD COLUMN colour TEXT",
                          "CREATE INDEX things_name ON things (name)"])


class MigrationTestsOnPostgres(OnPostgres, MigrationTests):
    pass


class DatabaseOpenTests(unittest.TestCase):
    """What the server's start does to its database, on either engine."""

    store_engine = "sqlite"

    @defer.inlineCallbacks
    def setUp(self):
        if self.store_engine == "postgres":
            self.location = yield services.fresh_database(self, migrated=False)
        else:
            self.location = Path(self.mktemp()) / "data" / "messenger.sqlite"
            self.path = self.location

    @defer.inlineCallbacks
    def open(self):
        database = db.Database(self.location, reactor=reactor)
        self.addCleanup(database.close)
        version = yield database.open()
        return database, version

    @defer.inlineCallbacks
    def test_open_twice_applies_once(self):
        """The server's start migrates a new database once; a restart applies nothing."""
        database, version = yield self.open()
        self.assertEqual(version, db.latest_version())
        database.close()
        database, version = yield self.open()
        recorded = yield database.read(versions_txn)
        self.assertEqual([row[0] for row in recorded], shipped_numbers())

    @defer.inlineCallbacks
    def test_open_refuses_newer(self):
        """The server refuses to start on a database from a newer server."""
        database, version = yield self.open()
        yield database.write(lambda txn: txn.execute(
            "INSERT INTO schema_version VALUES (?, 'future', 0)", (version + 1,)))
        database.close()
        failure = yield self.assertFailure(self.open(), db.DatabaseTooNew)
        self.assertIn(f"version {version + 1}", str(failure))

    @defer.inlineCallbacks
    def test_foreign_keys_enforced(self):
        """Server connections enforce foreign keys."""
        database, _ = yield self.open()
        yield self.assertFailure(database.write(lambda txn: txn.execute(
            "INSERT INTO contacts (owner_id, contact_id, added) VALUES (1, 2, 0)")),
            sqlite3.IntegrityError, psycopg2.IntegrityError)


class DatabaseOpenTestsOnPostgres(OnPostgres, DatabaseOpenTests):

    @defer.inlineCallbacks
    def test_nodes_starting_together_migrate_once(self):
        """Three nodes that open a new database at the same moment take turns: the first
        migrates, the others find the work done, and every version is recorded once."""
        databases = [db.Database(self.location, reactor=reactor) for _ in range(3)]
        for database in databases:
            self.addCleanup(database.close)
        versions = yield defer.gatherResults([d.open() for d in databases])
        self.assertEqual(versions, [db.latest_version()] * 3)
        recorded = yield databases[0].read(versions_txn)
        self.assertEqual([row[0] for row in recorded], shipped_numbers())

    @defer.inlineCallbacks
    def test_refuses_a_database_that_is_not_utf8(self):
        """A database whose encoding cannot hold every name is refused at start, with
        the fix in the message."""
        cluster = yield services.shared_postgres()
        name = self.location.rsplit("/", 1)[1]
        cluster.execute(f"DROP DATABASE {name}")
        cluster.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0")
        failure = yield self.assertFailure(self.open(), ValueError)
        self.assertIn("ENCODING 'UTF8'", str(failure))

    @defer.inlineCallbacks
    def test_password_never_logged(self):
        """The database's description (what the server logs) masks the password."""
        database = db.Database(self.location.replace("postgres@", "postgres:s3cret@"),
                               reactor=reactor)
        self.assertNotIn("s3cret", database.describe())
        self.assertIn(":***@", database.describe())
        yield defer.succeed(None)


class SqliteOpenTests(DatabaseOpenTests):
    """What only SQLite does at start."""

    @defer.inlineCallbacks
    def test_backup_before_upgrade(self):
        """Before migrating a database that holds data, the server copies it aside; the
        copy holds the old version and the data."""
        self.patch(db, "migrations", lambda: [FIRST])
        database, version = yield self.open()
        yield database.write(lambda txn: txn.execute(
            "INSERT INTO things (name) VALUES ('kept')"))
        database.close()
        self.patch(db, "migrations", lambda: [FIRST, SECOND])
        database, version = yield self.open()
        self.assertEqual(version, 2)
        copy = self.path.with_name("messenger.sqlite.v1.bak")
        self.assertTrue(copy.exists())
        old = sqlite3.connect(copy)
        self.addCleanup(old.close)
        self.assertEqual(old.execute("SELECT MAX(version) FROM schema_version").fetchone(),
                         (1,))
        self.assertEqual(old.execute("SELECT name FROM things").fetchall(), [("kept",)])

    @defer.inlineCallbacks
    def test_wal_and_foreign_keys(self):
        """Server connections use WAL and enforce foreign keys, also after migrating."""
        database, _ = yield self.open()
        mode = yield database.read(lambda txn: txn.execute("PRAGMA journal_mode").fetchone())
        keys = yield database.read(lambda txn: txn.execute("PRAGMA foreign_keys").fetchone())
        writer = yield database.write(lambda txn: txn.execute(
            "PRAGMA foreign_keys").fetchone())
        self.assertEqual((mode[0], keys[0], writer[0]), ("wal", 1, 1))


class PlainConnectionTests(unittest.TestCase):

    def setUp(self):
        self.path = Path(self.mktemp()) / "p.sqlite"
        self.path.parent.mkdir()
        connection = plain_sqlite(self.path)
        db.migrate_sqlite(connection, db.SqliteEngine(), [FIRST])
        connection.execute("INSERT INTO things (name) VALUES ('one')")
        connection.close()

    def test_read_only_refuses_writes(self):
        """A read-only connection reads but cannot write."""
        connection = db.connect(self.path, readonly=True)
        self.addCleanup(connection.close)
        self.assertEqual(connection.execute("SELECT name FROM things").fetchall(), [("one",)])
        self.assertRaises(sqlite3.OperationalError, connection.execute,
                          "INSERT INTO things (name) VALUES ('two')")

    def test_read_only_needs_an_existing_file(self):
        """Opening a missing database read-only fails instead of creating it."""
        missing = self.path.with_name("missing.sqlite")
        self.assertRaises(FileNotFoundError, db.connect, missing, readonly=True)
        self.assertFalse(missing.exists())

    def test_write_transaction_rolls_back_on_error(self):
        """An exception inside write_transaction undoes its writes."""
        connection = plain_sqlite(self.path)
        self.addCleanup(connection.close)

        def failing(txn):
            txn.execute("INSERT INTO things (name) VALUES ('two')")
            raise ValueError("no")
        self.assertRaises(ValueError, db.write_transaction, connection, failing)
        self.assertEqual(connection.execute("SELECT COUNT(*) FROM things").fetchone(), (1,))

    def test_backup_file(self):
        """backup_file writes one self-contained, consistent copy and refuses nothing
        while another connection holds a write transaction open."""
        writer = plain_sqlite(self.path)
        self.addCleanup(writer.close)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO things (name) VALUES ('uncommitted')")
        target = self.path.with_name("copy.sqlite")
        size = db.backup_file(self.path, target)
        writer.rollback()
        self.assertEqual(size, target.stat().st_size)
        self.assertFalse(target.with_name("copy.sqlite-wal").exists())
        copy = sqlite3.connect(target)
        self.addCleanup(copy.close)
        self.assertEqual(copy.execute("SELECT name FROM things").fetchall(), [("one",)])
        self.assertEqual(copy.execute("PRAGMA journal_mode").fetchone(), ("delete",))
        self.assertEqual([p.name for p in target.parent.iterdir() if "partial" in p.name], [])

    def test_backup_path_never_overwrites(self):
        """The pre-upgrade copy gets a new name when one from before exists."""
        first = db.backup_path_for(self.path, 1)
        first.write_bytes(b"old")
        second = db.backup_path_for(self.path, 1)
        self.assertNotEqual(first, second)
        self.assertEqual(second.name, "p.sqlite.v1.bak.1")


class MessageIdMigrationTests(unittest.TestCase):
    """Schema 002: message ids are never handed out twice."""

    def setUp(self):
        path = Path(self.mktemp()) / "v1.sqlite"
        path.parent.mkdir()
        self.connection = db.connect(path)
        self.addCleanup(self.connection.close)

    def migrate(self, shipped):
        return db.migrate_sqlite(self.connection, db.SqliteEngine(), shipped)

    def newest_after_deleting_the_newest(self):
        c = self.connection
        c.execute("DELETE FROM messages WHERE id = (SELECT MAX(id) FROM messages)")
        c.execute("INSERT INTO messages (sender_id, recipient_id, client_id, body, created)"
                  " VALUES (1, 2, 'new', 'new', 9)")
        return c.execute("SELECT id FROM messages WHERE client_id = 'new'").fetchone()[0]

    def fill(self):
        c = self.connection
        for name in ("alice", "bob"):
            c.execute("INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
                      " created, password_changed) VALUES (?, ?, ?, ?, 'h', 0, 0)",
                      (name, name, f"{name}@x.org", f"{name}@x.org"))
        for i in range(3):
            c.execute("INSERT INTO messages (sender_id, recipient_id, client_id, body, created)"
                      " VALUES (1, 2, ?, ?, ?)", (f"c{i}", f"body {i}", float(i)))

    def test_version_1_reused_ids(self):
        """Without 002, the id of a deleted newest message is given out again (the bug)."""
        self.migrate(db.migrations()[:1])
        self.fill()
        self.assertEqual(self.newest_after_deleting_the_newest(), 3)

    def test_upgrade_keeps_rows_and_never_reuses(self):
        """Upgrading a version 1 database keeps every message with its id and indexes;
        afterwards a deleted newest id is not given out again."""
        self.migrate(db.migrations()[:1])
        self.fill()
        columns = "id, sender_id, recipient_id, client_id, body, created"
        before = self.connection.execute(f"SELECT {columns} FROM messages ORDER BY id"
                                         ).fetchall()
        self.assertEqual(self.migrate(db.migrations()), db.latest_version())
        after = self.connection.execute(f"SELECT {columns} FROM messages ORDER BY id"
                                        ).fetchall()
        self.assertEqual(after, before)
        indexes = {row[0] for row in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")}
        self.assertTrue({"messages_client", "messages_recipient", "messages_pair"} <= indexes)
        self.assertEqual(self.newest_after_deleting_the_newest(), 4)
        self.assertEqual(self.connection.execute("PRAGMA foreign_key_check").fetchall(), [])

    def test_engine_only_file_is_recorded_everywhere(self):
        """A file marked '-- engines: sqlite' is skipped on other engines but recorded,
        so version numbers agree across engines."""
        sql = "-- engines: postgres\nCREATE TABLE only_pg (x INTEGER);\n"
        self.assertEqual(self.migrate([FIRST, (2, "pg", sql)]), 2)
        tables = {row[0] for row in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        self.assertNotIn("only_pg", tables)
        self.assertTrue(db.applies_to(sql, PostgresEngine()))
        self.assertFalse(db.applies_to(sql, db.SqliteEngine()))
        self.assertTrue(db.applies_to(FIRST[2], db.SqliteEngine()))

    def test_foreign_keys_must_be_off(self):
        """migrate_txn refuses a SQLite connection with foreign keys on (a table rebuild
        would cascade into the tables that refer to it); migrate_sqlite turns them off
        and back on."""
        self.assertRaises(RuntimeError, db.write_transaction, self.connection,
                          db.migrate_txn, db.SqliteEngine(), [FIRST])
        self.migrate([FIRST])
        self.assertEqual(self.connection.execute("PRAGMA foreign_keys").fetchone(), (1,))


class UserIdMigrationTests(unittest.TestCase):
    """Schema 003: account ids are never handed out twice (the users table is rebuilt
    with AUTOINCREMENT, and nothing that refers to an account is lost)."""

    def setUp(self):
        path = Path(self.mktemp()) / "v2.sqlite"
        path.parent.mkdir()
        self.connection = db.connect(path)
        self.addCleanup(self.connection.close)
        db.migrate_sqlite(self.connection, db.SqliteEngine(), db.migrations()[:2])
        c = self.connection
        for name in ("alice", "bob", "carol"):
            c.execute("INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
                      " created, password_changed) VALUES (?, ?, ?, ?, 'h', 0, 0)",
                      (name, name, f"{name}@x.org", f"{name}@x.org"))
        c.execute("INSERT INTO contacts VALUES (1, 2, 0), (2, 3, 0)")
        c.execute("INSERT INTO messages (sender_id, recipient_id, client_id, body, created)"
                  " VALUES (1, 3, 'm', 'hello', 1)")
        c.execute("INSERT INTO login_history (user_id, time, address, method, success)"
                  " VALUES (3, 1, '127.0.0.1', 'password', 1)")
        c.execute("INSERT INTO resume_tokens (user_id, token_hash, created, expires)"
                  " VALUES (3, 't', 1, 2)")

    def snapshot(self):
        columns = {"messages": "id, sender_id, recipient_id, client_id, body, created"}
        return {table: self.connection.execute(
            f"SELECT {columns.get(table, '*')} FROM {table} ORDER BY 1").fetchall()
            for table in ("users", "contacts", "messages", "login_history",
                          "resume_tokens")}

    def test_upgrade_keeps_every_row_and_reference(self):
        """Upgrading keeps every account with its id, and every row that refers to one
        (contacts, messages, logins, tokens); foreign keys hold and stay enforced."""
        before = self.snapshot()
        self.assertEqual(db.migrate_sqlite(self.connection, db.SqliteEngine(),
                                           db.migrations()[:3]), 3)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.connection.execute("PRAGMA foreign_key_check").fetchall(), [])
        self.assertRaises(sqlite3.IntegrityError, self.connection.execute,
                          "INSERT INTO contacts VALUES (1, 99, 0)")
        self.connection.execute("DELETE FROM users WHERE id = 3")
        self.assertEqual(self.connection.execute(
            "SELECT COUNT(*) FROM messages").fetchone(), (0,))

    def test_newest_id_not_reused_after_upgrade(self):
        """After the upgrade, deleting the newest account does not free its id."""
        db.migrate_sqlite(self.connection, db.SqliteEngine())
        self.connection.execute("DELETE FROM users WHERE id = 3")
        self.connection.execute(
            "INSERT INTO users (name, name_lower, email, email_lower, password_hash,"
            " created, password_changed) VALUES ('dan', 'dan', 'd@x.org', 'd@x.org', 'h', 0,"
            " 0)")
        self.assertEqual(self.connection.execute(
            "SELECT id FROM users WHERE name = 'dan'").fetchone(), (4,))


class PostgresPlainConnectionTests(OnPostgres, unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.url = yield services.fresh_database(self)

    def test_read_only_refuses_writes(self):
        """A read-only connection reads, and PostgreSQL itself refuses its writes."""
        connection = plain.open_plain(self.url, readonly=True)
        self.addCleanup(connection.close)
        self.assertEqual(connection.read(db.stored_version_txn, connection.engine),
                         db.latest_version())
        self.assertRaises(psycopg2.errors.ReadOnlySqlTransaction, connection.write,
                          lambda txn: txn.execute("DELETE FROM users"))

    def test_write_rolls_back_on_error(self):
        """An exception inside a write undoes its writes."""
        connection = plain.open_plain(self.url)
        self.addCleanup(connection.close)

        def failing(txn):
            txn.execute("INSERT INTO audit_log (time, actor, action) VALUES (1, 'a', 'b')")
            raise ValueError("no")
        self.assertRaises(ValueError, connection.write, failing)
        count = connection.read(lambda txn: txn.execute(
            "SELECT COUNT(*) FROM audit_log").fetchone())
        self.assertEqual(count, (0,))
