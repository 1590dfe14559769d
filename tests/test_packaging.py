"""The packaged install, tried as an operator would: build the wheel (not editable),
install it into a fresh virtual environment, run the systemd unit's command from it,
chat, check /health, and use messenger-admin from the same install."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, utils
from twisted.trial import unittest

from tests.support import jimclient
from tests.support.httpget import get
from tests.support.twistd_server import ROOT, TwistdServer, free_port, wait_for

UNIT = ROOT / "contrib" / "messenger.service"


def unit_command() -> list[str]:
    """The ExecStart= command line of contrib/messenger.service."""
    for line in UNIT.read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line[len("ExecStart="):])
    raise AssertionError("the unit has no ExecStart=")


@defer.inlineCallbacks
def run(executable: str, *args: str, cwd: Path) -> Any:
    """Run a command outside the project tree; fires with (status, output)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PYTHON") and key != "VIRTUAL_ENV"}
    out, err, status = yield utils.getProcessOutputAndValue(
        executable, args, env=env, path=str(cwd))
    return status, (out + err).decode("utf-8", "replace")


class _UnitServer(TwistdServer):
    """The unit's ExecStart with its paths pointed at the test's install and files."""

    def __init__(self, base: Path, venv: Path, ini: Path) -> None:
        super().__init__(base)
        self.pythonpath = None                 # everything from the installed wheel
        self.venv, self.ini = venv, ini

    def args(self) -> list[str]:
        replace = {"/opt/messenger": str(self.venv), "/var/lib/messenger": str(self.data_dir),
                   "/etc/messenger/messenger.ini": str(self.ini)}
        command = []
        for word in unit_command():
            for old, new in replace.items():
                word = word.replace(old, new)
            command.append(word)
        return command


class WheelInstallTests(unittest.TestCase):
    timeout = 300

    @defer.inlineCallbacks
    def test_wheel_into_fresh_venv_runs_the_unit_command(self) -> Any:
        """pip install of the wheel gives twistd messenger (the plugin ships in the wheel)
        and messenger-admin; the unit's command serves clients and /health."""
        base = Path(self.mktemp()).resolve()
        base.mkdir(parents=True)
        # Built from a copy: setuptools leaves a build/ folder in the tree it builds.
        source = base / "source"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
            ".git", ".venv", "_trial_temp*", "build", "dist", "*.egg-info", "__pycache__",
            "var", "docs", "tests"))
        status, out = yield run(sys.executable, "-m", "pip", "wheel", "--no-deps",
                                "-q", "-w", str(base / "dist"), str(source), cwd=base)
        self.assertEqual(status, 0, out)
        (wheel,) = (base / "dist").glob("messenger-*.whl")
        # A fresh venv without a pip of its own; our pip installs into it (--python), and
        # without compiling .pyc files: the same install for a fraction of the CPU, which
        # the timing-sensitive tests running beside this one need.
        venv = base / "venv"
        status, out = yield run(sys.executable, "-m", "venv", "--without-pip", str(venv),
                                cwd=base)
        self.assertEqual(status, 0, out)
        status, out = yield run(sys.executable, "-m", "pip", "--python",
                                str(venv / "bin" / "python"), "install", "-q", "--no-compile",
                                str(wheel), cwd=base)
        self.assertEqual(status, 0, out)
        plugins = list((venv / "lib").glob("python3*/site-packages/twisted/plugins/"
                                           "messenger_plugin.py"))
        self.assertEqual(len(plugins), 1)

        metrics_port = free_port()
        ini = base / "messenger.ini"
        server = _UnitServer(base / "srv", venv, ini)
        ini.write_text(f"[messenger]\nport = {server.port}\ninterface = 127.0.0.1\n"
                       f"udp-port = 0\nrsa-bits = 2048\nscrypt-n = 16\n"
                       f"metrics-port = {metrics_port}\n")
        self.assertEqual(server.args()[0], str(venv / "bin" / "twistd"))
        self.addCleanup(server.stop)
        yield server.start()
        _, reply = yield jimclient.register(self, server.port, "admin")   # the first: admin
        self.assertEqual(reply["response"], 201)
        client, reply = yield jimclient.register(self, server.port, "alice")
        self.assertEqual(reply["response"], 201)
        yield wait_for(lambda: "Metrics on http" in server.log_path.read_text(),
                       what="the metrics listener")
        status, _ = yield get(f"http://127.0.0.1:{metrics_port}/health")
        self.assertEqual(status, 200)
        log = server.log_path.read_text()
        self.assertIn(str(venv), log)               # twistd from the venv
        self.assertNotIn(str(ROOT / "messenger"), log)

        admin = str(venv / "bin" / "messenger-admin")
        status, out = yield run(admin, "--data-dir", str(server.data_dir), "online",
                                cwd=base)
        self.assertEqual(status, 0, out)
        self.assertIn("alice", out)
        status, out = yield run(admin, "--data-dir", str(server.data_dir), "lock", "alice",
                                cwd=base)
        self.assertEqual((status, out), (0, "alice: locked until unlocked; disconnected"
                                            " from the running server\n"))
        yield client.closed
