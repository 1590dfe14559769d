"""messenger-admin --database postgresql://... beside a live server on PostgreSQL:
migrate, the read-only sql (refused writes, one statement only), and backup with
pg_dump while clients write, restored with pg_restore (messenger.admin.dbcmd)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from twisted.internet import defer, threads
from twisted.trial import unittest

from messenger.admin import dbcmd
from messenger.store import db, plain
from tests.admin.test_cli import OPERATOR, LiveServerCase, run_inline
from tests.server.people import count, rows, wait_until
from tests.support import jimclient, services
from tests.support.services import OnPostgres


class PostgresDatabaseCommandTests(OnPostgres, LiveServerCase):

    @defer.inlineCallbacks
    def test_migrate_up_to_date(self):
        """migrate on the running server's database reports it up to date, naming the
        database without its password."""
        out = yield self.admin_cli("migrate")
        self.assertIn(f"schema version {db.latest_version()}, up to date", out)
        self.assertIn("postgresql://postgres@127.0.0.1:", out)

    @defer.inlineCallbacks
    def test_sql_read_only_unless_write(self):
        """sql runs a SELECT as a table; writes, DDL and a second statement (which could
        end the read-only transaction) are refused without --write and change nothing;
        with --write a change is made and audited."""
        out = yield self.admin_cli("sql", "SELECT name, is_admin FROM users ORDER BY id")
        self.assertEqual(out.splitlines()[:2], ["NAME   IS_ADMIN", "admin  1"])
        for statement in ("UPDATE users SET is_premium = 1", "DELETE FROM messages",
                          "CREATE TABLE evil (x INTEGER)", "SELECT 1; DELETE FROM messages",
                          "COMMIT; UPDATE users SET is_premium = 1"):
            err = yield self.admin_cli("sql", statement, status=1)
            self.assertTrue("refused" in err or "one SQL statement" in err, (statement, err))
        premium = yield count(self.server, "users", "WHERE is_premium = 1")
        self.assertEqual(premium, 0)
        out = yield self.admin_cli("sql", "SELECT ';' AS semicolon -- a comment; still one")
        self.assertIn("1 row(s)", out)
        out = yield self.admin_cli("sql", "--write",
                                   "UPDATE users SET is_premium = 1 WHERE name = 'bob'")
        self.assertIn("1 row(s) changed", out)
        trail = yield rows(self.server, "SELECT actor, action, detail FROM audit_log")
        self.assertEqual(trail, [(OPERATOR, "sql",
                                  "UPDATE users SET is_premium = 1 WHERE name = 'bob'")])
        err = yield self.admin_cli("sql", "SELEC nonsense", status=1)
        self.assertIn("SQL error", err)

    @defer.inlineCallbacks
    def test_backup_with_pg_dump_while_clients_write(self):
        """backup runs pg_dump while clients keep sending; the dump restores into an
        empty database and holds every message acknowledged before the backup, as one
        consistent snapshot (ids 1..N without gaps: ids commit in order)."""
        names = ["writer0", "writer1"]
        writers = []
        for name in names:
            client, reply = yield jimclient.register(self, self.server.tcp_port, name)
            self.assertEqual(reply["response"], 201, reply)
            writers.append(client)
        acked: list[int] = []
        running = [True]

        @defer.inlineCallbacks
        def keep_writing(client, to):
            n = 0
            while running[0]:
                reply = yield client.request("msg", to=to, message=f"load {n}")
                self.assertEqual(reply["response"], 200)
                acked.append(reply["msg_id"])
                n += 1
        loops = [keep_writing(client, names[1 - i]) for i, client in enumerate(writers)]
        yield wait_until(lambda: len(acked) >= 50)
        before = set(acked)
        target = Path(self.mktemp()).resolve() / "messenger.dump"
        password = self.server.config.database.replace("postgres@", "postgres:pw@")
        out = yield self.admin_cli("--database", password, "backup", str(target))
        running[0] = False
        yield defer.gatherResults(loops)
        self.assertIn("pg_dump", out)
        self.assertIn("check ok", out)
        self.assertNotIn(":pw@", out)
        restored = yield services.fresh_database(self, migrated=False)
        yield threads.deferToThread(
            subprocess.run, [dbcmd.pg_tool("pg_restore"), "--no-owner",
                             f"--dbname={restored}", str(target)], check=True)
        copy = plain.open_plain(restored, readonly=True)
        self.addCleanup(copy.close)
        ids = copy.read(lambda txn: [r[0] for r in txn.execute(
            "SELECT id FROM messages ORDER BY id").fetchall()])
        self.assertTrue(before <= set(ids))
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        self.assertEqual(copy.read(db.stored_version_txn, copy.engine), db.latest_version())
        err = yield self.admin_cli("backup", str(target), status=1)
        self.assertIn("already exists", err)


class OfflinePostgresTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_migrate_creates_an_empty_database(self):
        """migrate fills an empty PostgreSQL database, then finds it up to date."""
        url = yield services.fresh_database(self, migrated=False)
        status, out, err = run_inline("--database", url, "migrate")
        self.assertEqual(status, 0, err)
        self.assertIn(f"schema version 0 -> {db.latest_version()}", out)
        status, out, _ = run_inline("--database", url, "users", "list")
        self.assertEqual((status, out), (0, "No users.\n"))

    def test_unreachable(self):
        """A URL nobody answers at gives one line, exit status 1."""
        url = f"postgresql://postgres@127.0.0.1:{services.free_port()}/none"
        status, out, err = run_inline("--database", url, "users", "list")
        self.assertEqual(status, 1)
        self.assertIn("cannot connect to postgresql://postgres@127.0.0.1:", err)
        self.assertEqual(err.count("\n"), 1)

    def test_one_statement(self):
        """The statement splitter sees ';' only outside quotes and comments."""
        self.assertTrue(dbcmd.one_statement("SELECT 1;"))
        self.assertTrue(dbcmd.one_statement("SELECT 'a;b', \"c;d\" /* ; */ -- ;"))
        self.assertTrue(dbcmd.one_statement("SELECT 'it''s; fine'"))
        self.assertFalse(dbcmd.one_statement("SELECT 1; SELECT 2"))
        self.assertFalse(dbcmd.one_statement("SELECT $$;$$"))
