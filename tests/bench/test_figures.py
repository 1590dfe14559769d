"""messenger-bench connections, logins and relay: small end-to-end runs against a real server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.bench.test_delivery import ROOT, no_limits
from tests.support.server import SECRET, start_server


@defer.inlineCallbacks
def run_figure(testcase: unittest.TestCase, port: int, figure: str, *extra: str) -> Any:
    """Run one messenger-bench figure in a child process; fires with (code, JSON, stderr)."""
    directory = Path(testcase.mktemp()).resolve()
    directory.mkdir(parents=True)
    secret_file = directory / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    args = ["-m", "messenger.bench.cli", figure, "--server", f"127.0.0.1:{port}",
            "--secret-file", str(secret_file), "--server-pid", str(os.getpid()),
            "--max-seconds", "30", *extra]
    out, err, code = yield getProcessOutputAndValue(sys.executable, args, env=env,
                                                    path=str(ROOT), reactor=reactor)
    lines = out.decode().splitlines()
    return code, json.loads(lines[-1]) if lines else None, err.decode("utf-8", "replace")


class FigureTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_connections(self):
        """N authenticated connections are held and the per-connection memory reported."""
        server = yield start_server(self, limits=no_limits())
        code, result, err = yield run_figure(self, server.tcp_port, "connections", "-N", "20",
                                             "--hold", "0.2")
        self.assertEqual(code, 0, err)
        self.assertEqual((result["kind"], result["held"], result["ok"]),
                         ("connections", 20, True))
        self.assertIn("server_kib_per_conn", result)

    @defer.inlineCallbacks
    def test_seeded_connections_held_longer_answer_probes(self):
        """Accounts seeded straight into the database log in with a password; with
        --then-hold the connections stay after the reading, --ready-file says when the
        reading was taken, and the server's keepalive probes are answered (none dropped)."""
        server = yield start_server(self, limits=no_limits(), probe_interval=0.3,
                                    probe_timeout=0.3)
        sys.path.insert(0, str(ROOT / "scripts" / "bench"))
        self.addCleanup(sys.path.remove, str(ROOT / "scripts" / "bench"))
        import seed_accounts
        seed_accounts.main([str(server.config.data_dir / "messenger.sqlite"), "idle", "12"])
        ready = Path(self.mktemp()).resolve()
        code, result, err = yield run_figure(
            self, server.tcp_port, "connections", "-N", "12", "--login", "authenticate",
            "--user-prefix", "idle", "--hold", "0.2", "--then-hold", "1.2",
            "--ready-file", str(ready), "--source-addresses", "3")
        self.assertEqual(code, 0, err)
        self.assertEqual((result["held"], result["ok"], result["then_hold_s"]), (12, True, 1.2))
        self.assertEqual(ready.read_text(), "12\n")
        self.assertGreaterEqual(result["probes_answered"], 12)
        # --source-addresses 3: the server saw the connections come from three addresses
        self.assertEqual(result["source_addresses"], 3)
        rows = yield server.ctx.db.read(lambda txn: txn.execute(
            "SELECT DISTINCT address FROM login_history").fetchall())
        self.assertEqual(sorted(row[0] for row in rows), ["127.0.0.1", "127.0.0.2", "127.0.0.3"])

    @defer.inlineCallbacks
    def test_resume_logins(self):
        """Token logins on new connections are counted and timed."""
        server = yield start_server(self, limits=no_limits())
        code, result, err = yield run_figure(self, server.tcp_port, "logins", "--how", "resume",
                                             "--accounts", "4", "--concurrency", "2",
                                             "--logins", "12", "--settle", "0.1")
        self.assertEqual(code, 0, err)
        self.assertEqual((result["how"], result["logins"], result["ok"]), ("resume", 12, True))
        self.assertGreater(result["logins_per_s"], 0)

    @defer.inlineCallbacks
    def test_relay(self):
        """Two real calls through signalling and the UDP relay, every packet counted once."""
        server = yield start_server(self, limits=no_limits())
        code, result, err = yield run_figure(self, server.tcp_port, "relay", "-K", "2",
                                             "--seconds", "0.5", "--settle", "0.1")
        self.assertEqual(code, 0, err)
        self.assertTrue(result["ok"], err)
        self.assertGreater(result["packets_sent"], 0)
        self.assertEqual(result["packets_received"], result["packets_sent"])
        self.assertEqual(result["errors"], 0)
