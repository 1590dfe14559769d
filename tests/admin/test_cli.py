"""messenger-admin against a live server's data dir: the commands run as real processes
beside a running server and real clients (messenger.admin.cli)."""

from __future__ import annotations

import getpass
import io
import os
import sqlite3
import sys
from importlib import metadata
from pathlib import Path

from twisted.internet import defer, utils
from twisted.trial import unittest

from messenger.admin import cli
from messenger.admin.certs import fingerprint_file
from messenger.store import db
from tests.server.people import count, login, quit_, rows, server_with, wait_until
from tests.support import jimclient
from tests.support.services import OnPostgres

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = f"operator:{getpass.getuser()}"


def run_admin(data_dir: Path, *args: str) -> defer.Deferred:
    """Run messenger-admin in a child process; fires with (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    d = utils.getProcessOutputAndValue(
        sys.executable, ("-m", "messenger.admin.cli", "--data-dir", str(data_dir), *args),
        env=env, path=str(ROOT))
    d.addCallback(lambda result: (result[2], result[0].decode(), result[1].decode()))
    return d


def run_inline(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(argv), out, err)
    return status, out.getvalue(), err.getvalue()


class LiveServerCase(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.server, (self.admin, self.alice, self.bob) = yield server_with(
            self, "admin", "alice", "bob")
        self.data_dir = self.server.config.data_dir.resolve()

    @defer.inlineCallbacks
    def admin_cli(self, *args, status=0):
        database = self.server.config.database  # a PostgreSQL URL for the ...OnPostgres twins
        if database:
            args = ("--database", database, *args)
        code, out, err = yield run_admin(self.data_dir, *args)
        self.assertEqual(code, status, f"{args}: {out}{err}")
        return out if status == 0 else err


class UserCommandTests(LiveServerCase):

    @defer.inlineCallbacks
    def test_users_list_and_show(self):
        """users list prints a table of every account with its roles; users show one
        account with what it owns."""
        yield self.alice.request("msg", to="bob", message="hi")
        yield self.alice.request("add_contact", user_id="bob")
        out = yield self.admin_cli("users", "list")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "NAME", "EMAIL", "ADMIN", "PREMIUM",
                                            "LOCKED", "CREATED"])
        self.assertEqual([line.split()[1] for line in lines[1:4]], ["admin", "alice", "bob"])
        self.assertIn("yes", lines[1])
        self.assertEqual(lines[-1], "3 user(s)")
        out = yield self.admin_cli("users", "list", "--query", "LI", "--limit", "1")
        self.assertIn("alice@example.org", out)
        out = yield self.admin_cli("users", "show", "ALICE")
        self.assertIn("E-mail:", out)
        fields = dict(line.split(":", 1) for line in out.splitlines())
        self.assertEqual(fields["Name"].strip(), "alice")
        self.assertEqual(fields["Messages sent"].strip(), "1")
        self.assertEqual(fields["Contacts"].strip(), "1")
        self.assertIn("from 127.0.0.1", fields["Last login"])

    @defer.inlineCallbacks
    def test_usage_lists_the_largest_senders(self):
        """usage lists the accounts storing the most, by characters, with counts."""
        out = yield self.admin_cli("usage")
        self.assertEqual(out, "No messages stored.\n")
        yield self.alice.request("msg", to="bob", message="x" * 300)
        yield self.bob.request("msg", to="alice", message="hi")
        yield self.bob.request("msg", to="alice", message="there")
        out = yield self.admin_cli("usage", "--top", "5")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "MESSAGES", "CHARACTERS", "LAST", "24",
                                            "H"])
        self.assertEqual([line.split() for line in lines[1:3]],
                         [["alice", "1", "300", "300"], ["bob", "2", "7", "7"]])
        out = yield self.admin_cli("usage", "--top", "1")
        self.assertEqual(len(out.splitlines()), 2)

    @defer.inlineCallbacks
    def test_roles_reach_the_running_server(self):
        """set-premium/clear-premium and set-admin/clear-admin change what the running
        server allows on the very next request, and are audited as the operator."""
        out = yield self.admin_cli("set-premium", "alice")
        self.assertEqual(out, "alice: premium; the running server updated the live"
                              " session\n")
        pushed = yield self.alice.wait_push("account")
        self.assertTrue(pushed["user"]["premium"])
        reply = yield self.alice.request("broadcast", message="thanks, operator")
        self.assertEqual(reply["response"], 200)
        yield self.admin_cli("clear-premium", "alice")
        reply = yield self.alice.request("broadcast", message="again?")
        self.assertEqual(reply["response"], 403)
        yield self.admin_cli("set-admin", "bob")
        reply = yield self.bob.request("admin_list_users")
        self.assertEqual(reply["response"], 202)
        yield self.admin_cli("clear-admin", "bob")
        reply = yield self.bob.request("admin_list_users")
        self.assertEqual(reply["response"], 403)
        trail = yield rows(self.server, "SELECT actor, action, target FROM audit_log"
                                        " WHERE actor LIKE 'operator:%' ORDER BY id")
        self.assertEqual(trail, [(OPERATOR, "set_premium", "alice"),
                                 (OPERATOR, "clear_premium", "alice"),
                                 (OPERATOR, "set_admin", "bob"),
                                 (OPERATOR, "clear_admin", "bob")])

    @defer.inlineCallbacks
    def test_last_admin_and_unknown_user(self):
        """clear-admin of the only admin and any command on an unknown name fail with a
        message and exit status 1, changing nothing."""
        err = yield self.admin_cli("clear-admin", "admin", status=1)
        self.assertIn("would leave no administrator", err)
        err = yield self.admin_cli("lock", "ghost", status=1)
        self.assertEqual(err, "messenger-admin: no user named 'ghost'\n")
        admins = yield count(self.server, "users", "WHERE is_admin = 1")
        self.assertEqual(admins, 1)
        audited = yield count(self.server, "audit_log")
        self.assertEqual(audited, 0)

    @defer.inlineCallbacks
    def test_lock_unlock_and_history(self):
        """lock refuses the next login, unlock allows it; history lists the attempts."""
        yield quit_(self.alice)
        out = yield self.admin_cli("lock", "alice")
        self.assertEqual(out, "alice: locked until unlocked\n")
        client = yield jimclient.connect(self, self.server.tcp_port)
        reply = yield client.request("authenticate", user={"account_name": "alice",
                                                           "password": "correct horse"})
        self.assertEqual(reply["response"], 403)
        out = yield self.admin_cli("lock", "bob", "--minutes", "10")
        self.assertIn("bob: locked until ", out)
        yield self.admin_cli("unlock", "alice")
        alice = yield login(self, self.server, "alice")
        self.assertTrue(alice.connected_)
        out = yield self.admin_cli("history", "alice")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "TIME", "(UTC)", "ADDRESS", "METHOD",
                                            "RESULT"])
        self.assertEqual([line.split()[-2:] for line in lines[1:]],
                         [["password", "ok"], ["register", "ok"]])

    @defer.inlineCallbacks
    def test_delete(self):
        """delete needs --yes when not on a terminal; with it the account is gone."""
        yield quit_(self.bob)
        err = yield self.admin_cli("delete", "bob", status=1)
        self.assertIn("add --yes", err)
        out = yield self.admin_cli("delete", "bob", "--yes")
        self.assertEqual(out, "bob: deleted\n")
        left = yield count(self.server, "users", "WHERE name = 'bob'")
        self.assertEqual(left, 0)
        reply = yield self.alice.request("msg", to="bob", message="where are you?")
        self.assertEqual(reply["response"], 404)


class LiveActionTests(LiveServerCase):
    """Changes made with messenger-admin reach live sessions at once (control socket)."""

    @defer.inlineCallbacks
    def test_lock_disconnects_at_once(self):
        """lock closes the live session with a notice right away, not at the 10 s sweep;
        the data dir holds the control socket, mode 0600."""
        clock_before = self.server.ctx.clock.seconds()
        out = yield self.admin_cli("lock", "alice")
        self.assertEqual(out, "alice: locked until unlocked; disconnected from the running"
                              " server\n")
        notice = yield self.alice.wait_push("notice")
        self.assertIn("locked by an administrator", notice["message"])
        yield self.alice.closed
        self.assertLess(self.server.ctx.clock.seconds() - clock_before, 10.0)
        self.assertFalse(self.server.ctx.router.is_online(2))
        mode = (self.data_dir / "control.sock").stat().st_mode & 0o777
        self.assertEqual(mode, 0o600)

    @defer.inlineCallbacks
    def test_delete_disconnects_and_unknown_offline(self):
        """delete closes the session of a user online; a change to someone offline
        reports nothing more."""
        out = yield self.admin_cli("delete", "bob", "--yes")
        self.assertEqual(out, "bob: deleted; disconnected from the running server\n")
        yield self.bob.closed
        yield quit_(self.alice)
        out = yield self.admin_cli("set-premium", "alice")
        self.assertEqual(out, "alice: premium\n")

    @defer.inlineCallbacks
    def test_delete_of_someone_offline_is_forgotten_by_the_server(self):
        """delete of an account that is offline still reaches the running server: those
        online who had it as a contact get ``contact_deleted``; its name leaves the
        server's directory, its id the contact lists of the sessions online and the
        presence watch lists; a new account may take the name and gets the messages sent
        to it."""
        reply = yield self.alice.request("add_contact", user_id="bob")
        self.assertEqual(reply["response"], 201, reply)
        ctx = self.server.ctx
        bob_id = ctx.directory.cached("bob").id
        alice_session = ctx.router.session(ctx.directory.cached("alice").id)
        self.assertIn(bob_id, alice_session.contact_ids)
        yield quit_(self.bob)
        yield wait_until(lambda: not ctx.router.is_online(bob_id))
        out = yield self.admin_cli("delete", "bob", "--yes")
        self.assertEqual(out, "bob: deleted\n")
        push = yield self.alice.wait_push("contact_deleted")   # she had him as a contact
        self.assertEqual(push["account_name"], "bob")
        self.assertIsNone(ctx.directory.cached("bob"))
        self.assertNotIn(bob_id, alice_session.contact_ids)
        self.assertNotIn(bob_id, ctx.presence.watchers_of(alice_session.account.id))
        self.assertEqual(ctx.presence.watchers_of(bob_id), set())
        new_bob, reply = yield jimclient.register(self, self.server.tcp_port, "bob")
        self.assertEqual(reply["response"], 201, reply)
        self.assertNotEqual(ctx.directory.cached("bob").id, bob_id)
        reply = yield self.alice.request("msg", to="bob", message="welcome back")
        self.assertEqual(reply["response"], 200, reply)
        push = yield new_bob.wait_push("msg")
        self.assertEqual(push["message"], "welcome back")

    @defer.inlineCallbacks
    def test_online_lists_sessions(self):
        """online lists who is connected, from where and since when."""
        out = yield self.admin_cli("online")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "ADDRESS", "SINCE", "(UTC)", "STATUS"])
        self.assertEqual([line.split()[:2] for line in lines[1:4]],
                         [["admin", "127.0.0.1"], ["alice", "127.0.0.1"],
                          ["bob", "127.0.0.1"]])
        self.assertRegex(lines[1], r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+online")
        self.assertEqual(lines[-1], "3 online")

    @defer.inlineCallbacks
    def test_without_a_server(self):
        """With no server running, changes just wait in the database; online says so."""
        yield self.server.stop()
        out = yield self.admin_cli("lock", "alice")
        self.assertEqual(out, "alice: locked until unlocked\n")
        err = yield self.admin_cli("online", status=1)
        self.assertIn("no server is running", err)


class CodeAndAuditTests(LiveServerCase):

    @defer.inlineCallbacks
    def test_premium_codes(self):
        """premium-code create prints new codes that the running server accepts once;
        premium-code list shows who made and used them, never the code."""
        out = yield self.admin_cli("premium-code", "create", "--count", "2")
        codes = [line.split()[1] for line in out.splitlines() if line.startswith("#")]
        self.assertEqual(len(codes), 2)
        client = yield jimclient.connect(self, self.server.tcp_port)
        reply = yield client.request("register",
                                     **jimclient.new_user("vip", premium_code=codes[0]))
        self.assertEqual((reply["response"], reply["user"]["premium"]), (201, True))
        out = yield self.admin_cli("premium-code", "list")
        self.assertNotIn(codes[0], out)
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:4], ["ID", "HINT", "CREATED", "BY"])
        used = [line for line in lines if "vip" in line]
        self.assertEqual(len(used), 1)
        self.assertIn(OPERATOR, used[0])
        self.assertIn(codes[0][:4], used[0])

    @defer.inlineCallbacks
    def test_audit_shows_both_trails(self):
        """audit lists the protocol admins' and the operator's actions, newest first."""
        yield self.admin.request("admin_set_premium", user_id="bob", value=True)
        yield self.admin_cli("unlock", "bob")
        out = yield self.admin_cli("audit")
        lines = out.splitlines()
        self.assertIn("ACTOR", lines[0])
        self.assertIn(OPERATOR, lines[1])
        self.assertIn("unlock", lines[1])
        self.assertIn("set_premium", lines[2])
        self.assertIn(" admin ", lines[2])


class DatabaseCommandTests(LiveServerCase):

    @defer.inlineCallbacks
    def test_migrate_up_to_date(self):
        """migrate on the running server's database reports it up to date."""
        out = yield self.admin_cli("migrate")
        self.assertIn(f"schema version {db.latest_version()}, up to date", out)

    @defer.inlineCallbacks
    def test_sql_read_only_unless_write(self):
        """sql runs a SELECT as a table; a write without --write is refused (ATTACH and
        setting PRAGMAs too) and changes nothing; with --write it changes and is audited."""
        out = yield self.admin_cli("sql", "SELECT name, is_admin FROM users ORDER BY id")
        self.assertEqual(out.splitlines()[:2], ["NAME   IS_ADMIN", "admin  1"])
        self.assertTrue(out.endswith("3 row(s)\n"))
        for statement in ("UPDATE users SET is_premium = 1",
                          "DELETE FROM messages",
                          f"ATTACH DATABASE '{self.data_dir / 'x.db'}' AS x",
                          "PRAGMA journal_mode = DELETE",
                          "CREATE TABLE evil (x)"):
            err = yield self.admin_cli("sql", statement, status=1)
            self.assertIn("refused", err, statement)
        self.assertFalse((self.data_dir / "x.db").exists())
        premium = yield count(self.server, "users", "WHERE is_premium = 1")
        self.assertEqual(premium, 0)
        out = yield self.admin_cli("sql", "--write",
                                   "UPDATE users SET is_premium = 1 WHERE name = 'bob'")
        self.assertIn("1 row(s) changed", out)
        reply = yield self.bob.request("broadcast", message="via sql")
        self.assertEqual(reply["response"], 200)
        trail = yield rows(self.server, "SELECT actor, action, detail FROM audit_log")
        self.assertEqual(trail, [(OPERATOR, "sql",
                                  "UPDATE users SET is_premium = 1 WHERE name = 'bob'")])
        err = yield self.admin_cli("sql", "SELEC nonsense", status=1)
        self.assertIn("SQL error", err)

    @defer.inlineCallbacks
    def test_backup_while_clients_write(self):
        """backup runs while four clients keep sending messages; the copy opens, passes
        its check, and holds every message acknowledged before the backup started as one
        consistent snapshot (ids 1..N without gaps)."""
        names = ["writer0", "writer1", "writer2", "writer3"]
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
        loops = [keep_writing(client, names[(i + 1) % 4]) for i, client in enumerate(writers)]
        yield wait_until(lambda: len(acked) >= 100)
        before = set(acked)
        target = Path(self.mktemp()).resolve() / "backup.sqlite"
        out = yield self.admin_cli("backup", str(target))
        during = len(acked) - len(before)
        running[0] = False
        yield defer.gatherResults(loops)
        self.assertIn("check ok", out)
        self.assertGreater(during, 0)
        copy = sqlite3.connect(target)
        self.addCleanup(copy.close)
        self.assertEqual(copy.execute("PRAGMA integrity_check").fetchone(), ("ok",))
        ids = [row[0] for row in copy.execute("SELECT id FROM messages ORDER BY id")]
        self.assertTrue(before <= set(ids))
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        self.assertLessEqual(len(ids), len(acked))
        users = copy.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        self.assertEqual(users, 7)
        err = yield self.admin_cli("backup", str(target), status=1)
        self.assertIn("already exists", err)


class MailAndCertTests(LiveServerCase):

    @defer.inlineCallbacks
    def test_mail_list_and_show(self):
        """mail list shows the server's welcome mails; mail show prints one of them."""
        maildir = self.data_dir / "Maildir" / "new"
        yield wait_until(lambda: maildir.is_dir() and len(os.listdir(maildir)) == 3)
        out = yield self.admin_cli("mail", "list")
        self.assertIn("alice@example.org", out)
        self.assertIn("3 mail(s): 3 new", out)
        key = [line.split()[0] for line in out.splitlines() if "bob@example.org" in line][0]
        out = yield self.admin_cli("mail", "show", key)
        self.assertIn("To:       bob@example.org", out)
        self.assertIn("bob", out)
        err = yield self.admin_cli("mail", "show", "zzzz", status=1)
        self.assertIn("no mail with a key starting with 'zzzz'", err)

    @defer.inlineCallbacks
    def test_gen_cert(self):
        """gen-cert makes a certificate and key in the data dir and prints its
        fingerprint; a second run needs --force."""
        out = yield self.admin_cli("gen-cert", "chat.example.org")
        cert = self.data_dir / "tls-cert.pem"
        self.assertIn(fingerprint_file(cert), out)
        self.assertEqual((self.data_dir / "tls-key.pem").stat().st_mode & 0o777, 0o600)
        err = yield self.admin_cli("gen-cert", "chat.example.org", status=1)
        self.assertIn("--force", err)
        out = yield self.admin_cli("gen-cert", "chat.example.org", "--force")
        self.assertIn(fingerprint_file(cert), out)


class OfflineTests(unittest.TestCase):
    """Commands without a server, run in-process."""

    def test_missing_database(self):
        """Commands on a data dir without a database say how to make one."""
        status, out, err = run_inline("--data-dir", self.mktemp(), "users", "list")
        self.assertEqual(status, 1)
        self.assertIn("no database at", err)
        self.assertIn("messenger-admin migrate", err)

    def test_migrate_creates_then_refuses_newer(self):
        """migrate creates a database; one migrated by a newer server is refused by
        migrate and by every other command."""
        data_dir = self.mktemp()
        status, out, _ = run_inline("--data-dir", data_dir, "migrate")
        self.assertEqual(status, 0)
        self.assertIn(f"schema version 0 -> {db.latest_version()}", out)
        path = Path(data_dir) / "messenger.sqlite"
        connection = sqlite3.connect(path)
        connection.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
        connection.commit()
        connection.close()
        for argv in (("migrate",), ("users", "list"), ("set-admin", "x")):
            status, _, err = run_inline("--data-dir", data_dir, *argv)
            self.assertEqual(status, 1, argv)
            self.assertIn("newer than this tool", err)

    def test_empty_database_lists_nothing(self):
        """A fresh database lists no users, codes or audit entries, with a sentence."""
        data_dir = self.mktemp()
        run_inline("--data-dir", data_dir, "migrate")
        for argv, text in ((("users", "list"), "No users."),
                           (("premium-code", "list"), "No premium codes."),
                           (("audit",), "The audit log is empty.")):
            status, out, _ = run_inline("--data-dir", data_dir, *argv)
            self.assertEqual((status, out), (0, text + "\n"))

    def test_usage_errors(self):
        """A missing command or a bad number is a usage error (status 2) with help."""
        status, _, err = run_inline()
        self.assertEqual(status, 2)
        self.assertIn("usage: messenger-admin", err)
        status, _, err = run_inline("users", "list", "--limit", "0")
        self.assertEqual(status, 2)
        self.assertIn("--limit must be at least 1", err)

    def test_console_script_entry_point(self):
        """setup.py's console script messenger-admin runs messenger.admin.cli:main."""
        (entry,) = [ep for ep in metadata.entry_points(group="console_scripts")
                    if ep.name == "messenger-admin"]
        self.assertEqual(entry.value, "messenger.admin.cli:main")
        self.assertIs(entry.load(), cli.main)


class UserCommandTestsOnPostgres(OnPostgres, UserCommandTests):
    """The same on a PostgreSQL store (messenger-admin --database postgresql://...)."""


class CodeAndAuditTestsOnPostgres(OnPostgres, CodeAndAuditTests):
    """The same on a PostgreSQL store."""
