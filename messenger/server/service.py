"""The running server: opens the data dir, the database and the listeners.

`MessengerServer` does the work and offers ``start()``/``stop()`` Deferreds (tests use it
directly); `MessengerService` adapts it to twistd's service tree. Beside the client
listeners the server opens the control socket in the data dir (`control`) and, with
``--metrics-port``, the metrics and health site (`metrics`, `health`).

Under twistd, a configuration mistake stops the start with one line naming the option
and the fix (`startup.preflight`, before the reactor runs) and exit status 1.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Any

from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from messenger.server import control, startup
from messenger.server.admission import raise_open_file_limit
from messenger.server.config import ServerConfig
from messenger.server.context import ServerContext
from messenger.server.listen import (
    LISTEN_BACKLOG,
    listen_stream_dual,
    listen_tcp,
    listen_udp,
)
from messenger.server.mail.mailer import Mailer
from messenger.server.metrics import metrics_site
from messenger.server.portsniff import TlsPortFactory
from messenger.server.protocol import ServerProtocol
from messenger.server.relay import RelayProtocol
from messenger.server.relay_tcp import RelayStreamFactory
from messenger.server.secret import load_or_create_secret
from messenger.server.tls import server_tls_options
from messenger.store.db import Database, engine_for
from messenger.wire import keys


class MessengerFactory(ServerFactory):
    noisy = False

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def buildProtocol(self, addr: Any) -> ServerProtocol:
        protocol = ServerProtocol(self.ctx)
        protocol.factory = self
        return protocol


class MessengerServer:
    """The whole server: ``start()`` and ``stop()`` return Deferreds.

    ``start`` checks what an operator can get wrong first (TLS files), then prepares the
    data dir (secret, server key, database migrations) and listens. If any step fails,
    what was already started is stopped again and the failure is passed on. ``stop``
    stops listening, closes every connection (logged-in users are told why), writes the
    messages still queued, and closes the database and the mailer; calling it twice, or
    after a failed start, is harmless.
    """

    log = Logger()

    def __init__(self, config: ServerConfig, reactor: Any = None, mailer: Any = None) -> None:
        """``mailer`` defaults to a `Mailer` on the configured relay or the Maildir."""
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.mailer = mailer
        self.ctx: ServerContext | None = None
        self.db: Database | None = None
        self.port: Any = None
        self.tls_port: Any = None
        self.udp_port: Any = None
        self.relay_tcp: Any = None
        self.extra_ports: list[Any] = []
        self.relay: RelayProtocol | None = None
        self.metrics_port: Any = None
        self.control_port: Any = None
        self._own_mailer = False

    @defer.inlineCallbacks
    def start(self) -> Any:
        """Prepare the data dir, migrate the database, then listen. Fires with self."""
        try:
            yield self._start()
        except BaseException:
            try:
                yield self.stop()
            except Exception:
                self.log.failure("Cleaning up after a failed start failed")
            raise
        return self

    @defer.inlineCallbacks
    def _start(self) -> Any:
        config = self.config
        tls_options = None
        if config.tls.port:
            # Before anything else: a wrong certificate path should not cost a key pair.
            tls_options = server_tls_options(config.tls.cert, config.tls.key)
        secret = self._data_dir_and_secret()
        server_key = yield self._server_key()
        if self.mailer is None:
            self.mailer = Mailer(config.mail, config.mail_spool_path, config.maildir_path,
                                 self.reactor)
            self._own_mailer = True
        if self._own_mailer:
            self.mailer.startService()
        location = config.database_location
        self.db = Database(location, engine_for(location, config.db_sync.upper()),
                           readers=config.db_readers, writers=config.db_writers or None,
                           reactor=self.reactor)
        version = yield self.db.open()
        self.log.info("Database {path} at schema version {version}",
                      path=self.db.describe(), version=version)
        open_files = raise_open_file_limit()
        self.ctx = ServerContext(config, self.reactor, self.db, secret, server_key,
                                 mailer=self.mailer, open_files=open_files)
        self.log.info("Accepting up to {connections} connections ({files} open files)",
                      connections=self.ctx.admission.total_cap, files=open_files)
        self.ctx.start()
        yield self.ctx.blocks.load()               # before anyone can send
        if self.ctx.cluster is not None:
            yield self.ctx.cluster.start()
        self._listen(tls_options)
        self._start_relay()
        self._start_operations()

    def _data_dir_and_secret(self) -> bytes:
        """The data dir (made 0700, or a warning when others can read it) and the shared
        secret in it (made on first start)."""
        config = self.config
        if not config.data_dir.exists():
            config.data_dir.mkdir(parents=True, mode=0o700)
        elif config.data_dir.stat().st_mode & 0o077:
            self.log.warn("Data dir {path} is readable by other users; it holds password"
                          " hashes, messages and keys: chmod 700 it",
                          path=str(config.data_dir))
        secret, created = load_or_create_secret(config.secret_path)
        if created:
            self.log.info("Generated a new shared secret in {path}: give this file to"
                          " clients (--secret-file)", path=str(config.secret_path.resolve()))
        else:
            self.log.info("Shared secret: {path}", path=str(config.secret_path.resolve()))
        return secret

    def _server_key(self) -> defer.Deferred[Any]:
        """The server's RSA key, loaded or made (in a thread: making one takes seconds)."""
        config = self.config
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                      keys.load_or_create, config.server_key_path,
                                      config.rsa_bits)

        def loaded(result: tuple[Any, bool]) -> Any:
            server_key, made = result
            self.log.info("{what} server key {path}: {fingerprint}",
                          what="Generated" if made else "Loaded",
                          path=str(config.server_key_path), fingerprint=keys.fingerprint(
                              server_key.public_key()))
            return server_key

        return d.addCallback(loaded)

    def _listen(self, tls_options: Any) -> None:
        """The JIM listeners: plain TCP (dual stack) and, when configured, TLS."""
        config = self.config
        factory = MessengerFactory(self.ctx)
        self.port, *self.extra_ports = listen_tcp(self.reactor, config.port, factory,
                                                  config.interface)
        self.log.info("Messenger listening on {host}:{port} (suites: {suites})",
                      host=config.interface or "*", port=self.port.getHost().port,
                      suites=", ".join(config.suites))
        if tls_options is not None:
            self.tls_port = self.reactor.listenTCP(
                config.tls.port, TlsPortFactory(factory, tls_options, self.reactor),
                backlog=LISTEN_BACKLOG, interface=config.interface)
            self.log.info("Messenger listening with TLS on {host}:{port}",
                          host=config.interface or "*", port=self.tls_port.getHost().port)

    def _start_relay(self) -> None:
        """The call relay: UDP, and TCP for networks that block UDP (optional)."""
        config = self.config
        udp_port = config.udp_port if config.udp_port is not None else self.tcp_port
        self.relay = RelayProtocol(self.ctx.call_table, self.reactor)
        self.udp_port = listen_udp(self.reactor, udp_port, self.relay, config.interface)
        self.ctx.calls.relay_port = self.udp_port.getHost().port
        if config.cluster.relay_address:
            from messenger.server.cluster.settings import parse_host_port
            self.ctx.calls.relay_address = parse_host_port(config.cluster.relay_address)
        tcp_relay = config.relay_tcp_port
        if tcp_relay is None:   # the configured UDP port + 1; any free one for port 0
            wanted = config.udp_port if config.udp_port is not None else config.port
            tcp_relay = wanted + 1 if 0 < wanted < 65535 else 0
        if tcp_relay >= 0:
            try:
                self.relay_tcp = listen_stream_dual(self.reactor, tcp_relay,
                                                    RelayStreamFactory(self.relay),
                                                    config.interface)
                self.ctx.calls.relay_tcp_port = self.relay_tcp.getHost().port
            except CannotListenError as error:
                # optional: calls still work wherever UDP does
                self.log.warn("No call relay over TCP (port {port}: {error}); clients"
                              " behind UDP-blocking firewalls cannot call",
                              port=tcp_relay, error=error)
        self.log.info("Call relay listening on UDP {host}:{port} and TCP {tcp}",
                      host=config.interface or "*", port=self.ctx.calls.relay_port,
                      tcp=self.ctx.calls.relay_tcp_port)
    def _start_operations(self) -> None:
        """The control socket for messenger-admin, and the metrics site if configured."""
        config = self.config
        try:
            self.control_port = control.listen(self.reactor, config.control_socket_path,
                                               self.ctx)
        except control.AnotherServer as error:
            raise startup.StartupError(f"--data-dir: {error}") from None
        except control.ControlSocketError as error:
            self.log.warn("No control socket: {error}; messenger-admin changes reach this"
                          " server within 10 s instead of at once", error=str(error))
        if config.metrics_port:
            self.metrics_port = self.reactor.listenTCP(
                config.metrics_port, metrics_site(self, self.reactor),
                interface=config.metrics_interface)
            self.log.info("Metrics on http://{host}:{port}/metrics, health on /health",
                          host=config.metrics_interface,
                          port=self.metrics_port.getHost().port)

    @property
    def tcp_port(self) -> int:
        return self.port.getHost().port

    @property
    def tls_listen_port(self) -> int:
        return self.tls_port.getHost().port

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """Stop listening, close every connection, flush, close the database and mail."""
        ports = (self.port, self.tls_port, self.udp_port, self.relay_tcp, *self.extra_ports,
                 self.metrics_port, self.control_port)
        self.port = self.tls_port = self.udp_port = self.relay_tcp = None
        self.metrics_port = self.control_port = None
        self.extra_ports = []
        for port in ports:
            if port is not None:
                yield port.stopListening()
        ctx, self.ctx = self.ctx, None
        if ctx is not None:
            yield ctx.close_connections()
            yield ctx.messages.flush()
            yield ctx.group_messages.flush()
            yield ctx.files.messages.flush()
            yield ctx.files.group_messages.flush()
            yield ctx.files.stop()
            yield ctx.receipts.flush()
            yield ctx.search_index.stop()
            if ctx.cluster is not None:
                yield ctx.cluster.stop()
            ctx.stop()
        db, self.db = self.db, None
        if db is not None:
            db.close()
        if self._own_mailer and self.mailer is not None and self.mailer.running:
            yield self.mailer.stopService()
        if ctx is not None:
            self.log.info("Messenger stopped")


def _exit_failed() -> None:
    """At interpreter exit after a failed start: exit status 1 (twistd would say 0).

    Registered only under twistd, once the reactor has been stopped because the start
    failed; twistd has cleaned up (pid file, log) by the time atexit handlers run.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(1)


class MessengerService(service.Service):
    """twistd's view of the server: start on startService, stop on stopService.

    With ``exit_on_failure`` (what ``twistd messenger`` uses), `startup.preflight` runs
    first, synchronously: a configuration mistake is logged as one critical line and
    the process exits with status 1 before the reactor runs. A failure later in the
    start is logged the same way, stops the reactor, and the exit status is 1 too.
    """

    log = Logger()

    def __init__(self, config: ServerConfig, exit_on_failure: bool = False) -> None:
        self.config = config
        self.exit_on_failure = exit_on_failure
        self.server: MessengerServer | None = None
        self._started: defer.Deferred[Any] | None = None

    def startService(self) -> None:
        super().startService()
        from twisted.internet import reactor
        if self.exit_on_failure:
            try:
                startup.preflight(self.config)
            except startup.StartupError as error:
                self.log.critical("The server cannot start: {error}", error=str(error))
                raise SystemExit(1) from None
        self.server = MessengerServer(self.config, reactor)
        self._started = self.server.start()
        self._started.addCallbacks(self._running, self._failed, errbackArgs=(reactor,))

    @staticmethod
    def _running(server: Any) -> Any:
        # What exists now (modules, config, pools) lives as long as the process: move it
        # out of the collector's way, so collections only walk per-message objects.
        gc.collect()
        gc.freeze()
        return server

    def _failed(self, failure: Any, reactor: Any) -> None:
        line = startup.describe(failure.value, self.config)
        if line is not None:
            # An operator's mistake (a file, a port): say what, without a traceback.
            self.log.critical("The server could not start: {error}", error=line)
        else:
            self.log.failure("The server could not start", failure)
        if self.exit_on_failure:
            atexit.register(_exit_failed)
        reactor.stop()

    def stopService(self) -> Any:
        super().stopService()
        server, started = self.server, self._started
        if server is None or started is None:
            return None
        # A stop during the start waits for the start to finish (or fail) first.
        done: defer.Deferred[Any] = defer.Deferred()
        started.addBoth(lambda _: server.stop().chainDeferred(done))
        return done
