"""The database layer: migrations applied once and recorded, refusing a newer database,
a backup before an upgrade, plain connections for tools, and online backups
(messenger.store.db)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial import unittest

from messenger.store import db

FIRST = (1, "first", "CREATE TABLE things (\n    id AUTO_ID,\n    name TEXT NOT NULL\n);\n")
SECOND = (2, "second", "-- a comment line\nALTER TABLE things ADD COLUMN colour TEXT;\n"
                       "CREATE INDEX things_name ON things (name);\n")
BROKEN = (3, "broken", "CREATE TABLE more (x INTEGER);\nTHIS IS NOT SQL;\n")


def plain(path: Path) -> sqlite3.Connection:
    return db.connect(path)


def versions(connection: sqlite3.Connection) -> list[tuple[int, str]]:
    return connection.execute("SELECT version, name FROM schema_version ORDER BY version"
                              ).fetchall()


class MigrationTests(unittest.TestCase):

    def setUp(self):
        self.path = Path(self.mktemp()) / "m.sqlite"
        self.path.parent.mkdir()
        self.connection = plain(self.path)
        self.addCleanup(self.connection.close)
        self.engine = db.SqliteEngine()

    def migrate(self, shipped):
        return db.write_transaction(self.connection, db.migrate_txn, self.engine, shipped, 5.0)

    def test_applied_once_in_order_and_recorded(self):
        """Each migration runs once, in order, and is recorded with its name and time."""
        self.assertEqual(self.migrate([FIRST]), 1)
        self.assertEqual(self.migrate([FIRST, SECOND]), 2)
        self.assertEqual(self.migrate([FIRST, SECOND]), 2)
        self.assertEqual(versions(self.connection), [(1, "first"), (2, "second")])
        applied = self.connection.execute("SELECT applied FROM schema_version").fetchall()
        self.assertEqual(applied, [(5.0,), (5.0,)])
        self.connection.execute("INSERT INTO things (name, colour) VALUES ('a', 'red')")
        self.assertEqual(self.connection.execute("SELECT id FROM things").fetchall(), [(1,)])

    def test_refuses_newer_database(self):
        """A database recorded at a version above the newest shipped one is refused and
        left untouched."""
        self.migrate([FIRST, SECOND])
        error = self.assertRaises(db.DatabaseTooNew, self.migrate, [FIRST])
        self.assertIn("newer than this server", str(error))
        self.assertEqual(versions(self.connection), [(1, "first"), (2, "second")])

    def test_failed_migration_changes_nothing(self):
        """A migration that fails rolls back with everything of its run."""
        self.migrate([FIRST])
        self.assertRaises(sqlite3.OperationalError, self.migrate, [FIRST, SECOND, BROKEN])
        self.assertEqual(versions(self.connection), [(1, "first")])
        tables = {row[0] for row in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        self.assertNotIn("more", tables)
        columns = [row[1] for row in self.connection.execute("PRAGMA table_info(things)")]
        self.assertEqual(columns, ["id", "name"])

    def test_stored_version_changes_nothing(self):
        """Reading the version of a new database gives 0 and creates no table."""
        version = db.read_transaction(self.connection, db.stored_version_txn, self.engine)
        self.assertEqual(version, 0)
        self.assertEqual(self.connection.execute(
            "SELECT COUNT(*) FROM sqlite_master").fetchone()[0], 0)

    def test_shipped_schema_files(self):
        """The package ships numbered schema files starting at 1, without gaps."""
        shipped = db.migrations()
        self.assertEqual([number for number, _, _ in shipped],
                         list(range(1, len(shipped) + 1)))
        self.assertEqual(shipped[0][1], "initial")

    def test_split_statements(self):
        """Schema files split at lines ending in ';', comments and blank lines dropped."""
        self.assertEqual(db.split_statements(SECOND[2]),
                         ["ALTER TABLE things ADD COLUMN colour TEXT",
                          "CREATE INDEX things_name ON things (name)"])


class DatabaseOpenTests(unittest.TestCase):

    def setUp(self):
        self.path = Path(self.mktemp()) / "data" / "messenger.sqlite"

    @defer.inlineCallbacks
    def open(self):
        database = db.Database(self.path, reactor=reactor)
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
        recorded = yield database.read(lambda txn: txn.execute(
            "SELECT version FROM schema_version").fetchall())
        self.assertEqual([row[0] for row in recorded], list(range(1, version + 1)))

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
        """Server connections use WAL and enforce foreign keys."""
        database, _ = yield self.open()
        mode = yield database.read(lambda txn: txn.execute("PRAGMA journal_mode").fetchone())
        keys = yield database.read(lambda txn: txn.execute("PRAGMA foreign_keys").fetchone())
        self.assertEqual((mode[0], keys[0]), ("wal", 1))
        failure = yield self.assertFailure(database.write(lambda txn: txn.execute(
            "INSERT INTO contacts (owner_id, contact_id, added) VALUES (1, 2, 0)")),
            sqlite3.IntegrityError)
        self.assertIn("FOREIGN KEY", str(failure))


class PlainConnectionTests(unittest.TestCase):

    def setUp(self):
        self.path = Path(self.mktemp()) / "p.sqlite"
        self.path.parent.mkdir()
        connection = plain(self.path)
        db.write_transaction(connection, db.migrate_txn, db.SqliteEngine(), [FIRST])
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
        connection = plain(self.path)
        self.addCleanup(connection.close)

        def failing(txn):
            txn.execute("INSERT INTO things (name) VALUES ('two')")
            raise ValueError("no")
        self.assertRaises(ValueError, db.write_transaction, connection, failing)
        self.assertEqual(connection.execute("SELECT COUNT(*) FROM things").fetchone(), (1,))

    def test_backup_file(self):
        """backup_file writes one self-contained, consistent copy and refuses nothing
        while another connection holds a write transaction open."""
        writer = plain(self.path)
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
        return db.write_transaction(self.connection, db.migrate_txn, db.SqliteEngine(),
                                    shipped)

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
        before = self.connection.execute(f"SELECT {columns} FROM messages ORDER BY id").fetchall()
        self.assertEqual(self.migrate(db.migrations()), db.latest_version())
        after = self.connection.execute(f"SELECT {columns} FROM messages ORDER BY id").fetchall()
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
        self.assertTrue(db.applies_to(sql, db.PostgresEngine()))
        self.assertFalse(db.applies_to(sql, db.SqliteEngine()))
        self.assertTrue(db.applies_to(FIRST[2], db.SqliteEngine()))
