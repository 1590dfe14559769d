"""``twistd messenger --database``: a SQLite file or a PostgreSQL URL, on the command line
or in the config file, checked before anything starts; and the real ``twistd`` on a real
PostgreSQL, keeping only keys, secret and mail in --data-dir (messenger.server.tap)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python import usage
from twisted.trial import unittest

from tests.server.test_tap import parse
from tests.support import jimclient, services
from tests.support.jimclient import new_user
from tests.support.twistd_server import TwistdServer, start_twistd_server


class DatabaseOptionTests(unittest.TestCase):

    def test_default_is_sqlite_in_the_data_dir(self) -> None:
        """Without --database the store is DATA_DIR/messenger.sqlite, as before."""
        config = parse("--data-dir", "/srv/m").config
        self.assertEqual(config.database_location, Path("/srv/m/messenger.sqlite"))
        self.assertEqual((config.db_readers, config.db_writers), (2, 2))

    def test_postgres_url(self) -> None:
        """A postgresql:// URL is kept as given; pool sizes reach the config."""
        url = "postgresql://messenger:pw@db.example.org:5432/messenger"
        config = parse("--database", url, "--db-readers", "4", "--db-writers", "3").config
        self.assertEqual((config.database_location, config.db_readers, config.db_writers),
                         (url, 4, 3))

    def test_sqlite_file_elsewhere(self) -> None:
        """A plain path puts the SQLite file there."""
        config = parse("--database", "/fast/disk/m.sqlite").config
        self.assertEqual(config.database_location, Path("/fast/disk/m.sqlite"))

    def test_config_file(self) -> None:
        """The URL and pool sizes can live in the config file (keeping a password out
        of the process list)."""
        path = Path(self.mktemp())
        path.write_text("[messenger]\ndatabase = postgresql://m:p%40ss@127.0.0.1/m\n"
                        "db-readers = 3\n", "utf-8")
        config = parse("--config", str(path)).config
        self.assertEqual((config.database, config.db_readers),
                         ("postgresql://m:p%40ss@127.0.0.1/m", 3))

    def test_refused_values(self) -> None:
        """A URL libpq cannot read, another scheme, or pool sizes out of range stop the
        start with a message naming the option."""
        for argv, message in (
                (["--database", "postgresql://u@h:notaport/db"], "--database: not a PostgreSQL"),
                (["--database", "postgresql://u@h/db?bogus=1"], "invalid URI query parameter"),
                (["--database", "mysql://u@h/db"], "SQLite file or a postgresql:// URL"),
                (["--db-readers", "0"], "--db-readers must be 1..64"),
                (["--db-writers", "65"], "--db-writers must be 1..64")):
            error = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(message, str(error), argv)


class TwistdOnPostgresTests(unittest.TestCase):
    """The real ``twistd -n messenger --database postgresql://...``."""

    timeout = 60

    @defer.inlineCallbacks
    def test_serves_from_postgres(self) -> Any:
        """The server migrates the PostgreSQL database, logs where it is without the
        password, serves a registration, and writes no SQLite file into --data-dir."""
        url = yield services.fresh_database(self, migrated=False)
        with_password = url.replace("postgres@", "postgres:hunter2@")
        server = yield start_twistd_server(self, "--database", with_password)
        client = yield jimclient.connect(self, server.port)
        reply = yield client.request("register", **new_user("alice"))
        self.assertEqual((reply["response"], reply["user"]["admin"]), (201, True))
        yield server.stop()
        # The helper's own first line repeats the command line; the server's lines follow.
        log = server.log_path.read_text("utf-8").split("\n", 1)[1]
        self.assertIn("at schema version", log)
        self.assertIn("postgres:***@", log)
        self.assertNotIn("hunter2", log)
        self.assertFalse((server.data_dir / "messenger.sqlite").exists())
        self.assertTrue((server.data_dir / "server_key.pem").exists())

    @defer.inlineCallbacks
    def test_postgres_down_at_start(self) -> Any:
        """With nothing listening at the URL, twistd stops with one clear line and no
        traceback."""
        port = services.free_port()
        url = f"postgresql://postgres@127.0.0.1:{port}/nothing"
        server = TwistdServer(Path(self.mktemp()), ("--database", url))
        self.addCleanup(server.stop)
        yield self.assertFailure(server.start(), RuntimeError)
        log = server.log_path.read_text("utf-8")
        # Found by the start-up preflight (messenger.server.startup), which names the option.
        self.assertIn("The server cannot start: --database"
                      f" postgresql://postgres@127.0.0.1:{port}/nothing: cannot connect"
                      " (connection to server", log)
        self.assertNotIn("Traceback", log)
