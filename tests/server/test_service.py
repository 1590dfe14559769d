"""The running server (messenger.server.service): start prepares the data dir (secret file,
server key, database) and listens; a failed start leaves nothing behind; stop closes
every connection in every state and releases everything; slow work stays off the reactor
thread. Real sockets, real SQLite files."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from twisted.internet import defer, error, reactor
from twisted.internet.protocol import ClientCreator, Factory, Protocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from messenger.server import passwords
from messenger.server.config import ServerConfig, TlsConfig
from messenger.server.service import MessengerServer, MessengerService
from messenger.server.states import State
from messenger.server.tls import TlsConfigError
from messenger.wire import keys
from messenger.wire.handshake import ClientHandshake
from tests.server.test_connection_states import wait_for
from tests.support import jimclient
from tests.support.jimclient import new_user, raw_connect, wait_closed
from tests.support.keys import rsa_key
from tests.support.server import SECRET, start_server, test_config


class LogCapture:
    """Formatted log events while a test runs."""

    def __init__(self, testcase: unittest.TestCase) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def texts(self) -> list[str]:
        return [formatEvent(event) for event in self.events]


class StartTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_fresh_data_dir(self) -> Any:
        """A first start makes the data dir (0700), a 0600 secret file whose path is logged,
        a 0600 server key and the database; a second start reuses them."""
        log = LogCapture(self)
        data_dir = Path(self.mktemp()) / "var"
        config = ServerConfig(port=0, interface="127.0.0.1", data_dir=data_dir,
                              scrypt_n=16, rsa_bits=2048)
        server = MessengerServer(config, reactor)
        yield server.start()
        self.addCleanup(server.stop)
        secret_file = data_dir / "secret"
        self.assertEqual(data_dir.stat().st_mode & 0o777, 0o700)
        self.assertEqual(secret_file.stat().st_mode & 0o777, 0o600)
        self.assertEqual((data_dir / "server_key.pem").stat().st_mode & 0o777, 0o600)
        self.assertTrue((data_dir / "messenger.sqlite").exists())
        self.assertGreaterEqual(len(secret_file.read_text().strip()), 40)
        self.assertIn(f"Generated a new shared secret in {secret_file.resolve()}: give this"
                      " file to clients (--secret-file)", log.texts())
        fingerprint = keys.fingerprint(keys.load_or_create(data_dir / "server_key.pem")[0]
                                       .public_key())
        self.assertTrue(any(f"server key {data_dir / 'server_key.pem'}: {fingerprint}" in t
                            for t in log.texts()))
        secret = secret_file.read_bytes().strip()
        client = yield jimclient.connect(self, server.tcp_port, secret=secret)
        reply = yield client.request("register", **new_user("alice"))
        self.assertEqual(reply["response"], 201)
        yield client.close()
        yield server.stop()

        again = MessengerServer(config, reactor)
        yield again.start()
        self.addCleanup(again.stop)
        self.assertIn(f"Shared secret: {secret_file.resolve()}", log.texts())
        client = yield jimclient.connect(self, again.tcp_port, secret=secret)
        self.assertEqual(client.established.server_fingerprint, fingerprint)
        reply = yield client.request("authenticate", user={"account_name": "alice",
                                                           "password": "correct horse"})
        self.assertEqual(reply["response"], 200)

    @defer.inlineCallbacks
    def test_readable_data_dir_warns(self) -> Any:
        """A data dir other users can read is reported."""
        log = LogCapture(self)
        data_dir = Path(self.mktemp()) / "data"
        config = test_config(data_dir)
        data_dir.chmod(0o755)
        server = MessengerServer(config, reactor)
        yield server.start()
        self.addCleanup(server.stop)
        self.assertTrue(any("is readable by other users" in t for t in log.texts()))

    @defer.inlineCallbacks
    def test_bad_tls_files_fail_before_anything(self) -> Any:
        """A missing TLS certificate: TlsConfigError, and nothing was made or opened."""
        data_dir = Path(self.mktemp()) / "data"
        config = ServerConfig(port=0, interface="127.0.0.1", data_dir=data_dir,
                              tls=TlsConfig(port=1, cert=str(data_dir / "no.pem"),
                                            key=str(data_dir / "no.key")))
        server = MessengerServer(config, reactor)
        failure = yield self.assertFailure(server.start(), TlsConfigError)
        self.assertIn("does not exist", str(failure))
        self.assertFalse(data_dir.exists())
        self.assertIsNone(server.port)
        self.assertIsNone(server.db)

    @defer.inlineCallbacks
    def test_unusable_secret_file(self) -> Any:
        """An empty or binary secret file stops the start with a message naming it."""
        for content, message in ((b"  \n", "is empty"), (b"\xff\xfe", "is not UTF-8 text")):
            config = test_config(Path(self.mktemp()) / "data")
            config.secret_path.write_bytes(content)
            failure = yield self.assertFailure(MessengerServer(config, reactor).start(),
                                               ValueError)
            self.assertEqual(str(failure), f"the secret file {config.secret_path} {message}")

    @defer.inlineCallbacks
    def test_failed_start_cleans_up(self) -> Any:
        """A port in use: the start fails and what was started (database, mailer, timers,
        thread pools) is stopped again; trial would flag a dirty reactor otherwise."""
        blocker = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(blocker.stopListening)
        config = test_config(Path(self.mktemp()) / "data",
                             port=blocker.getHost().port)
        server = MessengerServer(config, reactor)
        yield self.assertFailure(server.start(), error.CannotListenError)
        self.assertIsNone(server.db)
        self.assertIsNone(server.ctx)
        self.assertFalse(server.mailer.running)
        yield server.stop()     # harmless after a failed start

    @defer.inlineCallbacks
    def test_slow_work_runs_off_the_reactor_thread(self) -> Any:
        """Key generation and password hashing run in worker threads."""
        threads: dict[str, list[threading.Thread]] = {"key": [], "hash": [], "verify": []}

        def recording(name: str, function: Any) -> Any:
            def run(*args: Any, **kwargs: Any) -> Any:
                threads[name].append(threading.current_thread())
                return function(*args, **kwargs)
            return run
        self.patch(keys, "load_or_create", recording("key", keys.load_or_create))
        self.patch(passwords, "hash_password_sync",
                   recording("hash", passwords.hash_password_sync))
        self.patch(passwords, "verify_password_sync",
                   recording("verify", passwords.verify_password_sync))
        server = yield start_server(self)
        client, _ = yield jimclient.register(self, server.tcp_port, "alice")
        yield client.request("quit")
        other = yield jimclient.connect(self, server.tcp_port)
        yield other.request("authenticate", user={"account_name": "alice",
                                                  "password": "correct horse"})
        yield other.request("quit")
        yield jimclient.connect(self, server.tcp_port)
        for name, used in threads.items():
            self.assertTrue(used, name)
            self.assertNotIn(threading.main_thread(), used, name)


class DurabilityTests(unittest.TestCase):
    """db_sync reaches SQLite on every connection of the server's pools."""

    @defer.inlineCallbacks
    def test_db_sync(self) -> Any:
        """'full' (the default) makes SQLite sync every commit; 'normal' does not."""
        def synchronous(txn: Any) -> int:
            txn.execute("PRAGMA synchronous")
            return txn.fetchone()[0]
        full = yield start_server(self)
        value = yield full.db.write(synchronous)
        self.assertEqual(value, 2)
        normal = yield start_server(self, db_sync="normal")
        value = yield normal.db.write(synchronous)
        self.assertEqual(value, 1)


class StopTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.server = yield start_server(self)
        self.port = self.server.tcp_port

    @defer.inlineCallbacks
    def test_stop_closes_every_connection(self) -> Any:
        """stop() closes connections in CHALLENGE, KEYX, UNAUTHENTICATED and READY; the
        logged-in user is told why; nothing is left open."""
        ctx = self.server.ctx
        challenge = yield raw_connect(self, self.port)
        keyx = yield raw_connect(self, self.port)
        handshake = ClientHandshake(SECRET, rsa_key("client", 2048))
        yield wait_for(lambda: keyx.frames(), what="the challenge")
        keyx.send_frame(handshake.receive(keyx.frames()[0])[0])
        unauthenticated = yield jimclient.connect(self, self.port)
        ready, _ = yield jimclient.register(self, self.port, "alice")
        yield wait_for(lambda: sorted(c.state.value for c in ctx.connections) ==
                       ["challenge", "keyx", "ready", "unauthenticated"], what="four states")
        connections = list(ctx.connections)
        yield self.server.stop()
        for client in (challenge, keyx, unauthenticated, ready):
            yield wait_closed(client)
        (notice,) = ready.pushes
        self.assertEqual((notice["action"], notice["level"], notice["message"]),
                         ("notice", 101, "The server is shutting down."))
        self.assertEqual(ctx.connections, set())
        self.assertEqual(ctx.router.online_count(), 0)
        self.assertEqual([c.state for c in connections], [State.CLOSED] * 4)
        self.assertIsNone(self.server.db)
        yield self.assertFailure(ClientCreator(reactor, Protocol).connectTCP(
            "127.0.0.1", self.port), error.ConnectionRefusedError)

    @defer.inlineCallbacks
    def test_stop_aborts_a_peer_that_does_not_read(self) -> Any:
        """A peer that never reads cannot hold up the shutdown past the grace period."""
        client, _ = yield jimclient.register(self, self.port, "alice")
        client.transport.pauseProducing()       # stop reading: writes back up
        (session,) = self.server.ctx.connections
        session.outbound.limit = 64 * 1024 * 1024  # below the bound that drops at once
        for _ in range(400):
            session.push({"action": "notice", "message": "x" * 60000})
        started = reactor.seconds()
        yield self.server.stop()
        elapsed = reactor.seconds() - started
        self.assertGreaterEqual(elapsed, 1.9, "the close waited for the grace period")
        self.assertLess(elapsed, 5, "then the connection was aborted")
        client.transport.resumeProducing()
        yield wait_closed(client)

    @defer.inlineCallbacks
    def test_stop_twice(self) -> Any:
        """stop() may be called again (twistd and a test cleanup both do)."""
        yield self.server.stop()
        yield self.server.stop()
        self.assertIsNone(self.server.port)


class ServiceTests(unittest.TestCase):
    """MessengerService: what twistd starts and stops."""

    timeout = 30

    @defer.inlineCallbacks
    def test_start_and_stop(self) -> Any:
        """startService starts the server in the background; stopService stops it."""
        svc = MessengerService(test_config(Path(self.mktemp()) / "data"))
        svc.startService()
        yield svc._started
        port = svc.server.tcp_port
        client, reply = yield jimclient.register(self, port, "alice")
        self.assertEqual(reply["response"], 201)
        yield svc.stopService()
        yield wait_closed(client)
        self.assertIsNone(svc.server.db)

    @defer.inlineCallbacks
    def test_stop_during_start(self) -> Any:
        """A stop that comes while the start is still running waits for it, then stops."""
        svc = MessengerService(test_config(Path(self.mktemp()) / "data"))
        svc.startService()
        yield svc.stopService()
        self.assertIsNone(svc.server.port)
        self.assertIsNone(svc.server.db)

    @defer.inlineCallbacks
    def test_operator_errors_are_one_line(self) -> Any:
        """A start that fails for an operator's reason is logged as one critical line,
        and the reactor is asked to stop."""
        log = LogCapture(self)
        config = test_config(Path(self.mktemp()) / "data",
                             tls=TlsConfig(port=1, cert="/nonexistent.pem",
                                           key="/nonexistent.key"))
        svc = MessengerService(config)
        stopped: list[bool] = []
        self.patch(reactor, "stop", lambda: stopped.append(True))
        svc.startService()
        yield svc._started
        self.assertEqual(stopped, [True])
        (line,) = [t for t in log.texts() if t.startswith("The server could not start")]
        self.assertIn("/nonexistent.pem does not exist", line)
        self.assertFalse([e for e in log.events if e.get("log_failure")])
        yield svc.stopService()


class TwistdFailureTests(unittest.TestCase):
    """Under twistd (exit_on_failure), a start that fails after the preflight still
    ends the process with status 1."""

    timeout = 30

    @defer.inlineCallbacks
    def test_late_failure_exits_with_status_one(self) -> Any:
        """A failure of the asynchronous start is one critical line, the reactor stops,
        and the exit status 1 is arranged for when twistd has cleaned up."""
        import atexit

        from messenger.server import service as service_module
        log = LogCapture(self)
        config = test_config(Path(self.mktemp()) / "data")
        svc = MessengerService(config, exit_on_failure=True)
        stopped: list[bool] = []
        registered: list[Any] = []
        self.patch(reactor, "stop", lambda: stopped.append(True))
        self.patch(atexit, "register", registered.append)

        def broken_start(server: Any) -> Any:
            return defer.fail(error.CannotListenError(
                "127.0.0.1", 7777, OSError(98, "Address already in use")))
        self.patch(MessengerServer, "start", broken_start)
        svc.startService()
        yield svc._started
        self.assertEqual(stopped, [True])
        self.assertEqual(registered, [service_module._exit_failed])
        (line,) = [t for t in log.texts() if t.startswith("The server could not start")]
        self.assertIn("--port 7777", line)
        self.assertIn("already in use", line)
