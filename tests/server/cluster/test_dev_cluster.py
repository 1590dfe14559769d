"""./dev cluster up|status|down (scripts/cluster.py) as a new user runs it: two lines
printed, a working cluster behind the address, one status line per node, and nothing
left running after down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.support import jimclient

ROOT = Path(__file__).resolve().parents[3]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class DevClusterTests(unittest.TestCase):
    timeout = 180

    def run_script(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "cluster.py"), command],
                              capture_output=True, text=True, env=self.env, timeout=150)

    @defer.inlineCallbacks
    def test_up_status_down(self):
        """up prints exactly the address and the secret; a client registers through the
        address; status has one line per node; down stops every process by PID."""
        state = Path(self.mktemp()) / "state.json"
        self.env = dict(os.environ, MESSENGER_CLUSTER_STATE=str(state))
        self.addCleanup(lambda: state.exists() and self.run_script("down"))
        up = yield threads.deferToThread(self.run_script, "up")
        self.assertEqual(up.returncode, 0, up.stderr)
        lines = up.stdout.splitlines()
        self.assertEqual(len(lines), 2, up.stdout)
        address = re.fullmatch(r"address 127\.0\.0\.1:(\d+)", lines[0])
        secret = re.fullmatch(r"secret (/\S+)", lines[1])
        self.assertTrue(address and secret, up.stdout)
        client = yield jimclient.connect(self, int(address.group(1)),
                                         secret=Path(secret.group(1)).read_text().strip()
                                         .encode())
        reply = yield client.request("register", **jimclient.new_user("newcomer"))
        self.assertEqual(reply["response"], 201, reply)
        yield client.close()
        status = yield threads.deferToThread(self.run_script, "status")
        nodes = [re.match(r"node (\S+) pid (\d+) port (\d+)( |$)", line)
                 for line in status.stdout.splitlines()]
        self.assertEqual(len(nodes), 3, status.stdout)
        self.assertTrue(all(nodes), status.stdout)
        recorded = json.loads(state.read_text())
        pids = [node["pid"] for node in recorded["nodes"]] + list(recorded["pids"].values())
        self.assertEqual(len(pids), 6)
        down = yield threads.deferToThread(self.run_script, "down")
        self.assertEqual(down.returncode, 0, down.stderr)
        self.assertEqual([pid for pid in pids if alive(pid)], [])
        self.assertFalse(Path(recorded["base"]).exists())
        self.assertFalse(state.exists())
