"""messenger-bench files: end to end against a real server in this test's reactor (the
generator and its transfer children run as processes, as they do for real)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from messenger.bench import files
from tests.bench.test_delivery import ROOT, no_limits
from tests.support.server import SECRET, start_server


@defer.inlineCallbacks
def run_files(testcase: unittest.TestCase, port: int, *extra: str) -> Any:
    """Run messenger-bench files in a child process; fires with (exit code, result)."""
    directory = Path(testcase.mktemp()).resolve()
    directory.mkdir(parents=True)
    secret_file = directory / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    args = ["-m", "messenger.bench.cli", "files", "--server", f"127.0.0.1:{port}",
            "--secret-file", str(secret_file), "--server-pid", str(os.getpid()),
            "--size-mib", "3", "--seconds", "0.5", "--rate", "200", "-P", "2",
            "--pace-mib-s", "10", "--max-seconds", "60", *extra]
    out, err, code = yield getProcessOutputAndValue(sys.executable, args, env=env,
                                                    path=str(ROOT))
    lines = out.decode().strip().splitlines()
    return code, json.loads(lines[-1]) if lines else {"stderr": err.decode()}


class FilesBenchTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_every_phase(self):
        """Every phase runs against a real server: MiB/s for the transfers, latency
        figures without a lost message beside them, the server's CPU from /proc, and a
        report line for the run."""
        server = yield start_server(self, limits=no_limits())
        code, out = yield run_files(self, server.tcp_port)
        self.assertEqual(code, 0, out)
        self.assertTrue(out["ok"])
        for phase in ("upload", "download"):
            self.assertGreater(out[phase]["mib_s"], 0)
        for phase in ("baseline", "during_upload", "during_download", "paced_upload",
                      "paced_download"):
            self.assertGreater(out[phase]["received"], 0, phase)
            self.assertEqual(out[phase]["lost"], 0, phase)
            self.assertIsNotNone(out[phase]["p99_ms"])
            self.assertIn("server_reactor_util", out[phase])
        self.assertLessEqual(out["paced_upload"]["transfer_mib_s"], 10 * 1.5)
        self.assertEqual(len(files.table([out])), 3)

    @defer.inlineCallbacks
    def test_a_refused_transfer_fails_the_run(self):
        """A file over the server's limit fails the run (exit 1, fail says why)."""
        from messenger.server.config import FilesConfig
        server = yield start_server(self, limits=no_limits(),
                                    files=FilesConfig(max_size=1024 * 1024))
        code, out = yield run_files(self, server.tcp_port, "--phases", "upload")
        self.assertEqual(code, 1)
        self.assertIn("file_upload refused", out["fail"])
