"""messenger-cli run as a child process for one user, for the end-to-end tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, utils

from messenger.wire import keys
from tests.support.keys import rsa_key
from tests.support.twistd_server import ROOT

PASSWORD = "correct horse"


class CliRunner:
    """Runs messenger-cli as a child process for one user (own HOME and config dir)."""

    def __init__(self, base: Path, name: str, server: Any) -> None:
        self.home = (base / name).resolve()
        self.config = self.home / ".config" / "messenger"
        self.config.mkdir(parents=True)
        # A ready-made key saves each first run the key generation.
        keys.write_private_key(self.config / "client_key.pem", rsa_key("cli-" + name, 2048))
        self.server = server

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "MESSENGER_", "XDG_"))}
        env.update(PYTHONPATH=str(ROOT), HOME=str(self.home),
                   XDG_CONFIG_HOME=str(self.home / ".config"), MESSENGER_PASSWORD=PASSWORD)
        env.update(extra)
        return env

    def run(self, *argv: str, server: bool = True, **env: str) -> defer.Deferred:
        """Fires with (stdout, stderr, exit status) as text."""
        args = ["-m", "messenger.client.cli"]
        if server:
            args += ["--server", f"127.0.0.1:{self.server.port}"]
        d = utils.getProcessOutputAndValue(sys.executable, [*args, *argv],
                                           env=self.env(**env), path=str(ROOT),
                                           reactor=reactor)
        d.addCallback(lambda result: (result[0].decode(), result[1].decode(), result[2]))
        return d
