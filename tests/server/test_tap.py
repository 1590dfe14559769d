"""``twistd messenger``: option parsing (messenger.server.tap.Options), the config file,
validation, the help text, the plugin, and the real ``twistd -n messenger`` run as a child
process that a client does the handshake and registers against."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

from twisted.application.service import IServiceMaker, MultiService
from twisted.internet import defer, protocol, reactor, utils
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

from messenger.server import tap
from messenger.server.service import MessengerService
from messenger.server.tap import Options, makeService
from messenger.wire.suites import SUITES
from tests.support import jimclient
from tests.support.jimclient import new_user

ROOT = Path(__file__).resolve().parents[2]
TWISTD = ROOT / ".venv" / "bin" / "twistd"


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def option_names() -> list[str]:
    return ([entry[0] for entry in Options.optParameters]
            + [entry[0] for entry in Options.optFlags])


class OptionsTests(unittest.TestCase):
    def test_defaults(self) -> None:
        """With no options: port 7777, ./var, both suites, the documented limits."""
        config = parse().config
        self.assertEqual((config.port, config.interface, str(config.data_dir)),
                         (7777, "", "var"))
        self.assertEqual(config.secret_path, Path("var/secret"))
        self.assertEqual(config.suites, SUITES)
        self.assertEqual((config.max_frame, config.max_body), (128 * 1024, 16 * 1024))
        self.assertEqual(config.max_queued_bytes, 4 * 1024 * 1024)
        self.assertEqual((config.handshake_timeout, config.login_timeout,
                          config.probe_interval, config.probe_timeout),
                         (10.0, 60.0, 30.0, 15.0))
        self.assertEqual(config.token_lifetime, 30 * 24 * 3600)
        self.assertEqual(config.tls.port, 0)
        self.assertEqual(config.mail.relay_host, "")
        limits = config.limits
        self.assertEqual((limits.connections_per_minute, limits.logins_per_minute,
                          limits.requests_per_second, limits.request_burst),
                         (60, 20, 50.0, 200))
        self.assertEqual((limits.lockout_failures, limits.lockout_window,
                          limits.lockout_duration), (5, 900.0, 900.0))
        self.assertFalse(config.auto_register)
        self.assertTrue(config.persist)

    def test_every_option_reaches_the_config(self) -> None:
        """Each command-line option lands in its field of the config, converted."""
        base = Path(self.mktemp())
        base.mkdir()
        (base / "pw").write_text("relay secret\n")
        config = parse(
            "--port", "7000", "--interface", "127.0.0.1", "--data-dir", str(base / "d"),
            "--secret-file", str(base / "s"), "--max-frame", "165536", "--cipher", "rsa-oaep",
            "--rsa-bits", "2048", "--max-body", "1000", "--handshake-timeout", "3",
            "--login-timeout", "4", "--probe-interval", "5", "--probe-timeout", "6",
            "--token-days", "2", "--scrypt-n", "1024", "--udp-port", "7001",
            "--public-host", "chat.example.org", "--ring-timeout", "7", "--tls-port", "7002",
            "--tls-cert", "c.pem", "--tls-key", "k.pem", "--smtp-host", "mail.example.org",
            "--smtp-port", "587", "--smtp-user", "bot", "--smtp-password-file",
            str(base / "pw"), "--smtp-ca-file", "ca.pem", "--smtp-timeout", "8",
            "--mail-give-up-days", "1", "--server-name", "Chat", "--mail-from",
            "Chat <chat@example.org>", "--new-location-prefix", "24",
            "--connections-per-minute", "9", "--logins-per-minute", "10",
            "--requests-per-second", "11", "--request-burst", "12", "--lockout-failures",
            "13", "--lockout-window", "14", "--lockout-duration", "15", "--auto-register",
            "--no-persist", "--smtp-starttls").config
        self.assertEqual((config.port, config.interface, config.data_dir, config.secret_path),
                         (7000, "127.0.0.1", base / "d", base / "s"))
        self.assertEqual((config.max_frame, config.suites, config.rsa_bits, config.max_body),
                         (165536, ("rsa-oaep",), 2048, 1000))
        self.assertEqual((config.handshake_timeout, config.login_timeout,
                          config.probe_interval, config.probe_timeout),
                         (3.0, 4.0, 5.0, 6.0))
        self.assertEqual((config.token_lifetime, config.scrypt_n, config.udp_port),
                         (2 * 86400.0, 1024, 7001))
        self.assertEqual((config.public_host, config.call_ring_timeout),
                         ("chat.example.org", 7.0))
        self.assertEqual((config.tls.port, config.tls.cert, config.tls.key),
                         (7002, "c.pem", "k.pem"))
        mail = config.mail
        self.assertEqual((mail.relay_host, mail.relay_port, mail.username, mail.password,
                          mail.relay_ca_file, mail.relay_timeout, mail.give_up_after,
                          mail.server_name, mail.from_address, mail.new_location_prefix,
                          mail.starttls),
                         ("mail.example.org", 587, "bot", "relay secret", "ca.pem", 8.0,
                          86400.0, "Chat", "Chat <chat@example.org>", 24, True))
        limits = config.limits
        self.assertEqual((limits.connections_per_minute, limits.logins_per_minute,
                          limits.requests_per_second, limits.request_burst,
                          limits.lockout_failures, limits.lockout_window,
                          limits.lockout_duration),
                         (9, 10, 11.0, 12, 13, 14 * 60.0, 15 * 60.0))
        self.assertTrue(config.auto_register)
        self.assertFalse(config.persist)

    def test_group_limits(self) -> None:
        """The group limits default to 1,000 members, 500 groups per user, names of 64
        and topics of 1,024 characters, and each option sets its field."""
        limits = parse().config.limits
        self.assertEqual((limits.max_group_members, limits.max_groups_per_user,
                          limits.max_group_name, limits.max_group_topic),
                         (1000, 500, 64, 1024))
        limits = parse("--max-group-members", "30", "--max-groups-per-user", "0",
                       "--max-group-name", "20", "--max-group-topic", "0").config.limits
        self.assertEqual((limits.max_group_members, limits.max_groups_per_user,
                          limits.max_group_name, limits.max_group_topic), (30, 0, 20, 0))

    def test_short_options(self) -> None:
        """-p and -d are short for --port and --data-dir."""
        config = parse("-p", "8000", "-d", "/srv/messenger").config
        self.assertEqual((config.port, str(config.data_dir)), (8000, "/srv/messenger"))

    def test_port_zero(self) -> None:
        """--port 0 picks any free port (the log says which)."""
        self.assertEqual(parse("--port", "0").config.port, 0)

    def test_db_sync(self) -> None:
        """--db-sync chooses SQLite's durability: full by default, normal on request."""
        self.assertEqual(parse().config.db_sync, "full")
        self.assertEqual(parse("--db-sync", "NORMAL").config.db_sync, "normal")
        error = self.assertRaises(usage.UsageError, parse, "--db-sync", "off")
        self.assertIn("--db-sync", str(error))

    def test_commit_window(self) -> None:
        """--commit-window is milliseconds (2 by default), kept in seconds; 0 turns it
        off; a negative or huge window is refused."""
        self.assertEqual(parse().config.commit_window, 0.002)
        self.assertEqual(parse("--commit-window", "0").config.commit_window, 0.0)
        self.assertAlmostEqual(parse("--commit-window", "5").config.commit_window, 0.005)
        for bad in ("-1", "101"):
            error = self.assertRaises(usage.UsageError, parse, "--commit-window", bad)
            self.assertIn("--commit-window", str(error))

    def test_validation(self) -> None:
        """Every impossible value stops with a usage error naming the option."""
        cases = [
            (["--port", "70000"], "--port must be 0..65535"),
            (["--port", "seven"], "'seven'"),
            (["--tls-port", "-1"], "--tls-port must be 0..65535"),
            (["--udp-port", "65536"], "--udp-port must be 0..65535"),
            (["--smtp-port", "0"], "--smtp-port must be 1..65535"),
            (["--cipher", "rot13"], "unknown cipher suite(s): rot13"),
            (["--cipher", ","], "unknown cipher suite(s): (none)"),
            (["--rsa-bits", "1024"], "--rsa-bits must be 2048, 3072 or 4096"),
            (["--max-frame", "100"], "--max-frame must be 99328.."),
            (["--max-frame", str(2**31)], "--max-frame must be 99328.."),
            (["--max-body", "20000", "--max-frame", "100000"],
             "at least six times --max-body"),
            (["--max-body", "0"], "--max-body must be 1..65536 bytes"),
            (["--max-body", str(2**20)], "--max-body must be 1..65536 bytes"),
            (["--max-queued-bytes", "1000"], "--max-queued-bytes must be at least 1 MiB"),
            (["--hash-queue", "0"], "--hash-queue must be at least 1"),
            (["--max-contacts", "-1"], "--max-contacts must not be negative"),
            (["--handshake-timeout", "0"], "--handshake-timeout must be a positive number"),
            (["--login-timeout", "-5"], "--login-timeout must be a positive number"),
            (["--probe-interval", "nan"], "--probe-interval must be a positive number"),
            (["--probe-timeout", "inf"], "--probe-timeout must be a positive number"),
            (["--token-days", "0"], "--token-days must be a positive number"),
            (["--lockout-window", "0"], "--lockout-window must be a positive number"),
            (["--lockout-duration", "-1"], "--lockout-duration must be a positive number"),
            (["--requests-per-second", "-1"], "--requests-per-second must not be negative"),
            (["--lockout-failures", "-1"], "--lockout-failures must not be negative"),
            (["--mail-give-up-days", "-1"], "--mail-give-up-days must not be negative"),
            (["--new-location-prefix", "33"], "--new-location-prefix must be 0..32"),
            (["--scrypt-n", "1000"], "--scrypt-n must be a power of two"),
            (["--scrypt-n", str(2**30)], "--scrypt-n must be a power of two"),
            (["--tls-port", "7778"], "--tls-port needs --tls-cert and --tls-key"),
            (["--mail-from", "not an address"], "--mail-from is not a usable address"),
            (["--smtp-password-file", "/nonexistent/pw"],
             "cannot read --smtp-password-file"),
            (["--no-such-option"], "no-such-option"),
            (["--max-group-members", "-1"], "--max-group-members must not be negative"),
            (["--max-groups-per-user", "-2"], "--max-groups-per-user must not be negative"),
            (["--max-group-name", "0"], "--max-group-name must be 1..256"),
            (["--max-group-name", "257"], "--max-group-name must be 1..256"),
            (["--max-group-topic", "4097"], "--max-group-topic must be 0..4096"),
        ]
        for argv, message in cases:
            error = self.assertRaises(usage.UsageError, parse, *argv)
            self.assertIn(message, str(error), argv)

    def test_scrypt_cost_floor(self) -> None:
        """Below 2**14 scrypt is refused, unless the test-only environment variable says
        the server runs under a test suite."""
        self.patch(os, "environ", {key: value for key, value in os.environ.items()
                                   if key != tap.WEAK_HASHING_ENV})
        error = self.assertRaises(usage.UsageError, parse, "--scrypt-n", "8192")
        self.assertIn("--scrypt-n must be a power of two, 16384..", str(error))
        self.assertEqual(parse("--scrypt-n", "16384").config.scrypt_n, 16384)
        self.patch(os, "environ", {**os.environ, tap.WEAK_HASHING_ENV: "1"})
        self.assertEqual(parse("--scrypt-n", "16").config.scrypt_n, 16)

    def test_help_lists_every_option(self) -> None:
        """The usage text names every option, long form, with its help."""
        text = str(Options())
        for name in option_names():
            self.assertIn(f"--{name}", text)
        self.assertIn("TCP port for clients", text)

    def test_make_service(self) -> None:
        """makeService gives twistd a MultiService holding the Messenger service."""
        options = parse("--port", "7010")
        top = makeService(options)
        self.assertIsInstance(top, MultiService)
        (child,) = list(top)
        self.assertIsInstance(child, MessengerService)
        self.assertEqual(child.config.port, 7010)

    def test_plugin(self) -> None:
        """The twistd plugin 'messenger' points at this module."""
        (maker,) = [m for m in getPlugins(IServiceMaker) if m.tapname == "messenger"]
        self.assertIs(maker.options, Options)
        self.assertIs(maker.makeService, makeService)


class ConfigFileTests(unittest.TestCase):
    def write(self, text: str) -> str:
        path = Path(self.mktemp())
        path.write_text(text, "utf-8")
        return str(path)

    def test_config_file(self) -> None:
        """A [messenger] section sets options by their long names (or with '_')."""
        path = self.write("[messenger]\nport = 7100\ndata-dir = /srv/m\n"
                          "login_timeout = 30\nauto-register = yes\nsmtp-starttls = off\n"
                          "server-name = 100% chat\n")
        config = parse("--config", path).config
        self.assertEqual((config.port, str(config.data_dir), config.login_timeout),
                         (7100, "/srv/m", 30.0))
        self.assertTrue(config.auto_register)
        self.assertFalse(config.mail.starttls)
        self.assertEqual(config.mail.server_name, "100% chat")

    def test_command_line_wins(self) -> None:
        """An option on the command line overrides the file, wherever --config stands."""
        path = self.write("[messenger]\nport = 7100\nmax-body = 2000\n")
        for argv in (["--config", path, "--port", "7200"], ["--port", "7200", "-c", path],
                     [f"--config={path}", "--port=7200"], [f"-c{path}", "-p", "7200"]):
            config = parse(*argv).config
            self.assertEqual((config.port, config.max_body), (7200, 2000), argv)

    def test_file_values_are_validated(self) -> None:
        """A value from the file is checked like one from the command line."""
        path = self.write("[messenger]\nport = 99999\n")
        error = self.assertRaises(usage.UsageError, parse, "--config", path)
        self.assertIn("--port must be 0..65535", str(error))

    def test_file_errors(self) -> None:
        """Unreadable, shapeless or wrong files stop with a message naming the problem."""
        cases = [
            ("[messenger]\nport = seven\n", "bad value for port: 'seven'"),
            ("[messenger]\nportt = 1\n", "unknown option 'portt'"),
            ("[messenger]\nauto-register = maybe\n", "auto-register must be yes or no"),
            ("[server]\nport = 1\n", "has no [messenger] section"),
            ("port = 1\n", "is not a valid INI file"),
            ("[messenger]\nport = 1\nport = 2\n", "is not a valid INI file"),
        ]
        for text, message in cases:
            error = self.assertRaises(usage.UsageError, parse, "--config", self.write(text))
            self.assertIn(message, str(error), text)
        error = self.assertRaises(usage.UsageError, parse, "--config", "/nonexistent.ini")
        self.assertIn("cannot read config file /nonexistent.ini", str(error))


class _Child(protocol.ProcessProtocol):
    """A child process whose output is collected and watched for patterns."""

    def __init__(self) -> None:
        self.output = ""
        self.ended: defer.Deferred[tuple[int | None, int | None]] = defer.Deferred()
        self._watches: list[tuple[re.Pattern[str], defer.Deferred[re.Match[str]]]] = []

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        for watch in list(self._watches):
            match = watch[0].search(self.output)
            if match:
                self._watches.remove(watch)
                watch[1].callback(match)

    errReceived = outReceived

    def wait_for(self, pattern: str, timeout: float = 30.0) -> defer.Deferred[Any]:
        d: defer.Deferred[re.Match[str]] = defer.Deferred()
        self._watches.append((re.compile(pattern), d))
        self.outReceived(b"")
        return d.addTimeout(timeout, reactor)

    def processEnded(self, reason: Any) -> None:
        self.ended.callback((reason.value.exitCode, reason.value.signal))


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    return env


class TwistdTests(unittest.TestCase):
    """The real ``twistd`` command, as an operator runs it."""

    timeout = 60

    @defer.inlineCallbacks
    def test_twistd_runs_the_server(self) -> Any:
        """`twistd -n messenger` starts, logs the secret file's path and its port, serves
        a handshake and a registration, and stops cleanly on SIGTERM."""
        base = Path(self.mktemp()).resolve()
        base.mkdir(parents=True)
        data_dir = base / "var"
        child = _Child()
        transport = reactor.spawnProcess(
            child, str(TWISTD),
            [str(TWISTD), "-n", "--pidfile=", "--logfile=-", "messenger", "--port", "0",
             "--interface", "127.0.0.1", "--udp-port", "0", "--data-dir", str(data_dir),
             "--rsa-bits", "2048", "--scrypt-n", "16"],
            env=child_env(), path=str(base))

        def kill_if_running() -> None:
            if child.ended.called:
                return None
            transport.signalProcess("KILL")
            return child.ended
        self.addCleanup(kill_if_running)

        secret_line = yield child.wait_for(r"Generated a new shared secret in (\S+): give")
        listening = yield child.wait_for(r"Messenger listening on 127\.0\.0\.1:(\d+)")
        secret_file = Path(secret_line.group(1))
        self.assertEqual(secret_file, data_dir / "secret")
        self.assertEqual(secret_file.stat().st_mode & 0o777, 0o600)
        self.assertEqual(data_dir.stat().st_mode & 0o777, 0o700)
        port = int(listening.group(1))
        client = yield jimclient.connect(self, port, secret=secret_file.read_bytes().strip())
        reply = yield client.request("register", **new_user("alice"))
        self.assertEqual((reply["response"], reply["user"]["admin"]), (201, True))
        transport.signalProcess(signal.SIGTERM)
        code, signal_number = yield child.ended
        # twistd shuts down cleanly, then ends itself with the signal it got, so that
        # its parent sees why it ended.
        self.assertIn((code, signal_number), [(0, None), (None, signal.SIGTERM)],
                      child.output)
        self.assertIn("Server Shut Down.", child.output)
        self.assertIn("Messenger stopped", child.output)
        self.assertNotIn("Traceback", child.output)
        self.assertNotIn("correct horse", child.output)
        self.assertFalse((base / "twistd.pid").exists())

    @defer.inlineCallbacks
    def test_twistd_help(self) -> Any:
        """`twistd messenger --help` lists every option."""
        out, err, code = yield utils.getProcessOutputAndValue(
            str(TWISTD), ["messenger", "--help"], env=child_env())
        text = out.decode("utf-8")
        self.assertEqual(code, 0, err)
        for name in option_names():
            self.assertIn(f"--{name}", text)

    @defer.inlineCallbacks
    def test_twistd_refuses_bad_options(self) -> Any:
        """A bad option value: twistd prints the usage error and exits non-zero."""
        out, err, code = yield utils.getProcessOutputAndValue(
            str(TWISTD), ["-n", "--pidfile=", "messenger", "--port", "99999"],
            env=child_env())
        self.assertNotEqual(code, 0)
        self.assertIn("--port must be 0..65535", (out + err).decode("utf-8"))


class OperationsOptionsTests(unittest.TestCase):
    """The options of issue 16: metrics, log format and rotation, the mail queue cap."""

    def test_defaults_and_values(self) -> None:
        """Metrics off on 127.0.0.1, text logs, 10 x 10 MiB, 1000 mails by default."""
        options = parse()
        self.assertEqual((options.config.metrics_port, options.config.metrics_interface),
                         (0, "127.0.0.1"))
        self.assertEqual(options.config.mail.queue_max, 1000)
        self.assertEqual((options["log-format"], options["log-max-files"]), ("text", 10))
        options = parse("--metrics-port", "9464", "--metrics-interface", "10.0.0.5",
                        "--mail-queue-max", "50", "--log-format", "json")
        self.assertEqual((options.config.metrics_port, options.config.metrics_interface,
                          options.config.mail.queue_max), (9464, "10.0.0.5", 50))

    def test_bad_values(self) -> None:
        """Each bad value is a usage error naming its option."""
        for argv, name in ((("--metrics-port", "70000"), "--metrics-port"),
                           (("--log-format", "xml"), "--log-format"),
                           (("--log-max-files", "0"), "--log-max-files"),
                           (("--log-max-bytes", "10"), "--log-max-bytes"),
                           (("--mail-queue-max", "0"), "--mail-queue-max"),
                           (("--metrics-port", "x"), "--metrics-port must be a whole")):
            with self.assertRaises(usage.UsageError) as caught:
                parse(*argv)
            self.assertIn(name, str(caught.exception))

    def test_under_twistd_the_observer_is_installed(self) -> None:
        """Run by twistd (a parent Options), makeService hands the application our
        observer: JSON lines into a bounded rotating file."""
        from twisted.application.service import Application
        from twisted.logger import ILogObserver

        class TwistdOptions(dict):
            pass
        path = Path(self.mktemp()).resolve()
        path.mkdir()
        twistd = TwistdOptions(logfile=str(path / "server.log"), nodaemon=True,
                               logger=None, syslog=False)
        options = parse("--log-format", "json", "--log-max-files", "3")
        options.parent = twistd
        top = makeService(options)
        application = Application("messenger")
        top.setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        self.assertIsNotNone(observer)
        observer({"log_format": "hello {who}", "who": "ops", "log_time": 0.0,
                  "log_namespace": "test"})
        self.assertIn('"text": "hello ops"', (path / "server.log").read_text())
        (child,) = list(top)
        self.assertTrue(child.exit_on_failure)
