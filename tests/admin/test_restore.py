"""Backup and restore end to end, as docs/OPERATIONS.md tells an operator to do them:
``messenger-admin backup`` while the server runs, later stop it, put the copy back (and
remove the -wal/-shm files), start it again: the server is back at the backup's state."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.admin.test_cli import run_admin
from tests.support import jimclient
from tests.support.twistd_server import start_twistd_server


class BackupRestoreTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def test_backup_then_restore(self) -> Any:
        """What was acknowledged before the backup is there after the restore; what
        came after it is not (and the server runs normally on the restored file)."""
        server = yield start_twistd_server(self)
        alice, _ = yield jimclient.register(self, server.port, "alice")
        bob, _ = yield jimclient.register(self, server.port, "bob")
        reply = yield alice.request("msg", to="bob", message="before the backup")
        self.assertEqual(reply["response"], 200)
        backup = Path(self.mktemp()).resolve() / "messenger-backup.sqlite"
        status, out, err = yield run_admin(server.data_dir, "backup", str(backup))
        self.assertEqual(status, 0, err)
        self.assertIn("check ok", out)
        reply = yield alice.request("msg", to="bob", message="after the backup")
        self.assertEqual(reply["response"], 200)
        carol, reply = yield jimclient.register(self, server.port, "carol")
        self.assertEqual(reply["response"], 201)
        yield server.stop()

        database = server.data_dir / "messenger.sqlite"
        shutil.copyfile(backup, database)
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        yield server.start()

        bob = yield jimclient.connect(self, server.port)
        reply = yield bob.request("authenticate", user={"account_name": "bob",
                                                        "password": "correct horse"})
        self.assertEqual(reply["response"], 200)
        reply = yield bob.request("sync", since=0)
        self.assertEqual([m["message"] for m in reply["alert"]], ["before the backup"])
        carol = yield jimclient.connect(self, server.port)
        reply = yield carol.request("authenticate", user={"account_name": "carol",
                                                          "password": "correct horse"})
        self.assertEqual(reply["response"], 402)
        reply = yield carol.request("register", **jimclient.new_user("carol"))
        self.assertEqual(reply["response"], 201)
