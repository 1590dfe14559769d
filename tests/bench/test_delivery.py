"""messenger-bench delivery: end to end against a real server, and against a faulty one.

The generator runs as a child process (as it does for real: it installs its own epoll
reactor and runs it), the server in this test's reactor on loopback port 0.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from messenger.server.config import LimitsConfig
from tests.bench.fakeserver import FakeServerFactory
from tests.support.server import SECRET, start_server

ROOT = Path(__file__).resolve().parents[2]

# The keys of the shared harness's summarize() (../shared/bench/xmpp/xmpp_load.py) that
# its report.py reads, and the messenger's own.
SHARED_KEYS = {
    "date", "label", "pairs", "window", "rate", "quickack", "messages_per_sender",
    "body_bytes", "procs", "delivered", "expected", "errors", "ok", "fail", "error_samples",
    "duration_s", "msgs_per_s", "lat_ms_p50", "lat_ms_p95", "lat_ms_p99", "lat_ms_max",
    "gen_cpu_s", "gen_cpu_us_per_msg", "server_cpu_s", "server_user_s", "server_sys_s",
    "server_cpu_us_per_msg", "server_cpu_util", "server_rss_kib_before",
    "server_rss_kib_after", "server_hwm_kib", "machine_busy_2cores",
}
OWN_KEYS = {"server", "cipher", "persist", "acks", "ack_ms_p50", "ack_ms_p95", "ack_ms_p99",
            "ack_ms_max", "server_main_thread_s", "server_other_threads_s"}


def no_limits() -> LimitsConfig:
    # The hashing queues too: a figure registers its accounts all at once, and on a
    # loaded machine four waiting hashes (the default) fill before the threads run.
    return LimitsConfig(connections_per_minute=0, logins_per_minute=0, requests_per_second=0,
                        hash_queue=1000, decoy_queue=1000)


@defer.inlineCallbacks
def run_bench(testcase: unittest.TestCase, port: int, *extra: str) -> Any:
    """Run messenger-bench in a child process; fires with (exit code, JSON line, stderr)."""
    directory = Path(testcase.mktemp()).resolve()
    directory.mkdir(parents=True)
    secret_file = directory / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    json_out = directory / "results.jsonl"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    args = ["-m", "messenger.bench.cli", "--server", f"127.0.0.1:{port}",
            "--secret-file", str(secret_file), "--server-pid", str(os.getpid()),
            "-P", "2", "-M", "50", "--warmup", "5", "--max-seconds", "20",
            "--json-out", str(json_out), *extra]
    out, err, code = yield getProcessOutputAndValue(sys.executable, args, env=env,
                                                    path=str(ROOT), reactor=reactor)
    lines = json_out.read_text().splitlines() if json_out.exists() else []
    result = json.loads(lines[-1]) if lines else None
    if result is not None:
        testcase.assertEqual(json.loads(out.decode().splitlines()[-1]), result)
    return code, result, err.decode("utf-8", "replace")


class RealServerTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_exactly_once_in_order(self):
        """P=2, M=50 against a real server passes, exits 0 and writes every harness key."""
        server = yield start_server(self, limits=no_limits())
        code, result, err = yield run_bench(self, server.tcp_port, "--label", "e2e")
        self.assertEqual(code, 0, err)
        self.assertTrue(result["ok"], err)
        self.assertEqual((result["delivered"], result["expected"], result["errors"]),
                         (100, 100, 0))
        self.assertEqual(result["acks"], 100)
        self.assertEqual((SHARED_KEYS | OWN_KEYS) - set(result), set())
        self.assertEqual((result["server"], result["cipher"], result["label"]),
                         ("messenger", "aes-256-gcm", "e2e"))
        self.assertGreater(result["msgs_per_s"], 0)
        self.assertGreater(result["server_hwm_kib"], 0)


    @defer.inlineCallbacks
    def test_with_read_receipts_and_typing(self):
        """With --read-receipts and --typing every receiver sends batched read receipts
        (the server stores and pushes them back to the senders) and every sender typing
        notices, and delivery is still exactly once, in order."""
        server = yield start_server(self, limits=no_limits())
        code, result, err = yield run_bench(self, server.tcp_port, "--read-receipts", "0.002",
                                            "--typing", "0.002", "-M", "2000")
        self.assertEqual(code, 0, err)
        self.assertTrue(result["ok"], err)
        self.assertEqual((result["delivered"], result["errors"]), (4000, 0))
        self.assertGreater(result["receipts"], 0)
        self.assertGreater(result["typing"], 0)
        self.assertLess(result["receipts"], 4000)           # batched, not one per message
        stored = yield server.db.read(lambda txn: (txn.execute(
            "SELECT COUNT(*), MIN(read_up_to) FROM receipts"), txn.fetchone())[1])
        self.assertEqual(stored[0], 2)                       # one row per conversation
        self.assertGreater(stored[1], 0)


class FaultTests(unittest.TestCase):
    """The check fails the run (exit 1, ok false) for each kind of misdelivery."""

    timeout = 60

    def listen(self, fault: str | None) -> int:
        port = reactor.listenTCP(0, FakeServerFactory(SECRET, fault, at=30),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def test_fake_server_without_fault_passes(self):
        """The fake server itself delivers correctly, so the failures below are the faults'."""
        code, result, err = yield run_bench(self, self.listen(None))
        self.assertEqual(code, 0, err)
        self.assertTrue(result["ok"])

    @defer.inlineCallbacks
    def assert_caught(self, fault: str, words: str):
        code, result, err = yield run_bench(self, self.listen(fault))
        self.assertEqual(code, 1, err)
        self.assertFalse(result["ok"])
        self.assertGreater(result["errors"], 0)
        self.assertIn(words, " ".join(result["error_samples"]))
        self.assertIsNone(result["fail"], "the run should end by itself, not by the deadline")

    def test_duplicate_fails(self):
        """A message pushed twice makes the run fail."""
        return self.assert_caught("duplicate", "duplicate")

    def test_drop_fails(self):
        """A message acknowledged but never delivered makes the run fail."""
        return self.assert_caught("drop", "lost or reordered")

    def test_reorder_fails(self):
        """Two messages delivered out of order make the run fail."""
        return self.assert_caught("reorder", "lost or reordered")


class ArgumentTests(unittest.TestCase):
    def test_only_loopback(self):
        """--server refuses an address that is not loopback."""
        from messenger.bench.cli import server_address
        self.assertEqual(server_address("127.0.0.1:7777"), ("127.0.0.1", 7777))
        self.assertEqual(server_address("localhost:1"), ("127.0.0.1", 1))
        self.assertEqual(server_address("[::1]:7777"), ("::1", 7777))
        import argparse
        for bad in ("10.0.0.1:7777", "example.org:7777", "127.0.0.1", "127.0.0.1:0"):
            self.assertRaises(argparse.ArgumentTypeError, server_address, bad)
