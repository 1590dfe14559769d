"""Readable failures: each bad configuration stops `twistd messenger` at start with one
clear line naming the option and the fix, exit status 1, never a traceback."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from twisted.internet import defer, utils
from twisted.internet.error import CannotListenError
from twisted.trial import unittest

from messenger.admin import certs
from messenger.server import startup
from messenger.server.config import ServerConfig
from tests.support.twistd_server import ROOT, TwistdServer, free_port

SETPRIV = ["/usr/bin/setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


class BadConfigurationTests(unittest.TestCase):
    """Each case runs a real ``twistd -n messenger`` child and reads what it prints."""

    timeout = 60

    def setUp(self) -> None:
        self.server = TwistdServer(Path(self.mktemp()))

    @defer.inlineCallbacks
    def run_server(self, *args: str, unprivileged: bool = False) -> Any:
        """Run the server with ``args`` added; fires with (status, output lines)."""
        command = [*self.server.args(), *args]
        if unprivileged:
            command = [*SETPRIV, *command]
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("PYTHON")}
        env["PYTHONPATH"] = str(ROOT)
        out, err, status = yield utils.getProcessOutputAndValue(
            command[0], command[1:], env=env, path=str(self.server.base))
        return status, (out + err).decode("utf-8", "replace").splitlines()

    @defer.inlineCallbacks
    def assert_one_line(self, *args: str, says: tuple[str, ...],
                        unprivileged: bool = False) -> Any:
        status, lines = yield self.run_server(*args, unprivileged=unprivileged)
        text = "\n".join(lines)
        self.assertEqual(status, 1, text)
        self.assertNotIn("Traceback", text)
        errors = [line for line in lines if "cannot start" in line
                  or line.startswith("twistd messenger:")]
        self.assertEqual(len(errors), 1, text)
        for word in says:
            self.assertIn(word, errors[0])
        self.assertFalse([line for line in lines if "Messenger listening" in line])
        return errors[0]

    def test_port_out_of_range(self) -> Any:
        """--port 70000: the range, in one line (not twistd's whole usage text)."""
        return self.assert_one_line("--port", "70000", says=("--port", "0..65535"))

    def test_option_of_the_wrong_type(self) -> Any:
        """--ring-timeout soon: names the option and the kind of value it wants."""
        return self.assert_one_line("--ring-timeout", "soon",
                                    says=("--ring-timeout", "a number", "'soon'"))

    def test_bad_value_in_the_config_file(self) -> Any:
        """A config file with a wrong value names the file and the key."""
        config = self.server.base / "messenger.ini"
        config.write_text("[messenger]\nmax-frame = big\n")
        return self.assert_one_line("--config", str(config),
                                    says=("messenger.ini", "max-frame"))

    @defer.inlineCallbacks
    def test_port_taken(self) -> Any:
        """A port another program holds: says which and what to do."""
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        self.server.port = port
        yield self.assert_one_line(says=(f"--port {port}", "already in use",
                                         "choose another --port"))

    @defer.inlineCallbacks
    def test_metrics_port_taken(self) -> Any:
        """The same for --metrics-port."""
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        yield self.assert_one_line("--metrics-port", str(port),
                                   says=("--metrics-port", "already in use"))

    def test_unreadable_secret_file(self) -> Any:
        """A secret file the server's user cannot read."""
        self.server.secret_file.chmod(0)
        return self.assert_one_line(says=("--secret-file", "cannot read", "readable"),
                                    unprivileged=True)

    def test_data_dir_not_writable(self) -> Any:
        """A data dir the server's user cannot write in."""
        self.server.data_dir.chmod(0o500)
        self.addCleanup(self.server.data_dir.chmod, 0o700)
        return self.assert_one_line(says=("--data-dir", "cannot write", "write access"),
                                    unprivileged=True)

    def test_tls_key_missing(self) -> Any:
        """--tls-key naming a file that is not there."""
        cert = self.server.base / "cert.pem"
        certs.generate_self_signed("127.0.0.1", cert, self.server.base / "key.pem",
                                   bits=2048)
        return self.assert_one_line(
            "--tls-port", str(free_port()), "--tls-cert", str(cert),
            "--tls-key", str(self.server.base / "missing.pem"),
            says=("--tls-key", "missing.pem", "does not exist"))

    def test_tls_key_not_matching(self) -> Any:
        """A key that does not belong to the certificate."""
        cert = self.server.base / "cert.pem"
        certs.generate_self_signed("127.0.0.1", cert, self.server.base / "key.pem",
                                   bits=2048)
        certs.generate_self_signed("127.0.0.1", self.server.base / "other.pem",
                                   self.server.base / "other-key.pem", bits=2048)
        return self.assert_one_line(
            "--tls-port", str(free_port()), "--tls-cert", str(cert),
            "--tls-key", str(self.server.base / "other-key.pem"),
            says=("--tls-key", "does not belong to the certificate"))

    def test_database_unreadable(self) -> Any:
        """A database file that is not a database (a bad restore)."""
        (self.server.data_dir / "messenger.sqlite").write_bytes(b"not a database" * 100)
        return self.assert_one_line(says=("--data-dir", "cannot open the database",
                                          "restore it from a backup"))

    @defer.inlineCallbacks
    def test_database_unreachable(self) -> Any:
        """A PostgreSQL --database nobody answers on: named, with its password masked."""
        url = f"postgresql://messenger:s3cret-pw@127.0.0.1:{free_port()}/messenger"
        line = yield self.assert_one_line("--database", url,
                                          says=("--database", "cannot connect",
                                                "start PostgreSQL"))
        self.assertNotIn("s3cret-pw", line)

    @defer.inlineCallbacks
    def test_second_server_on_the_same_data_dir(self) -> Any:
        """A second server on a data dir in use is told so (not about a port)."""
        yield self.server.start()
        self.addCleanup(self.server.stop)
        yield self.assert_one_line("--port", str(free_port()), "--udp-port", "0",
                                   says=("another server is running on this data dir",))


class DescribeTests(unittest.SynchronousTestCase):
    """The one-line descriptions of errors that arrive after the preflight."""

    def test_port_taken_later(self) -> None:
        """A port taken between the check and the listen still names the option."""
        config = ServerConfig(port=7777, metrics_port=9100)
        error = CannotListenError("127.0.0.1", 9100, OSError(98, "Address already in use"))
        line = startup.describe(error, config)
        self.assertIn("--metrics-port 9100", line)
        self.assertIn("already in use", line)

    def test_bugs_are_not_described(self) -> None:
        """Anything unexpected gets None: it is logged with its traceback."""
        self.assertIsNone(startup.describe(KeyError("x"), ServerConfig()))
