"""Real PostgreSQL, Redis and HAProxy for tests, from Debian's packages.

Each runs as a child process of the test run, in a temporary directory, on a free port
of 127.0.0.1, and is stopped by its PID (never by name). No fakes and no skips: the
packages are in ./dev's APT_PACKAGES, and a missing binary fails the test loudly.

* `PostgresCluster`: ``initdb`` and ``postgres`` (as the ``postgres`` user when the tests
  run as root: PostgreSQL refuses root). `start`, `stop`, `kill` (SIGKILL: a crash) and
  `restart` return Deferreds, so a test can take the database away mid-traffic.
* `shared_postgres()`: one cluster per test process, started on first use and stopped
  at exit; `fresh_database(testcase)` gives each test its own database, copied from a
  migrated template (about 50 ms) and dropped in cleanup.
* `RedisServer` (Redis 7, no persistence) and `HAProxy` (2.6, TCP mode, health checks).

The processes are started with `subprocess.Popen`, not the reactor, so that a cluster
kept across tests leaves no selectable behind for trial's reactor check; waiting for
readiness polls on the reactor (`wait_until`), so nothing blocks it for long.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task, threads

START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port: int) -> bool:
    """Does something accept TCP connections on 127.0.0.1:port? (a quick local check)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@defer.inlineCallbacks
def wait_until(condition: Any, timeout: float = START_TIMEOUT, what: str = "condition",
               step: float = 0.02) -> Any:
    """Poll ``condition()`` on the reactor until it is true; fail after ``timeout`` s."""
    deadline = reactor.seconds() + timeout
    while True:
        value = condition()
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        yield task.deferLater(reactor, step, lambda: None)


def binary(name: str, *places: str) -> str:
    """The path of a service's program; fails the test when the package is missing."""
    for place in places:
        for candidate in sorted(Path("/").glob(place.lstrip("/")), reverse=True):
            path = candidate / name
            if path.exists():
                return str(path)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run ./dev install (it is in"
                           " APT_PACKAGES)")
    return found


class Child:
    """One service process started by us: its PID, its log, a way to stop it."""

    def __init__(self, argv: list[str], log_path: Path, user: str | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self.user = user
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (fixed argv of a service)
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                user=self.user, cwd=self.cwd, start_new_session=True)

    def send_signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signum)

    def ended(self, timeout: float = START_TIMEOUT) -> defer.Deferred[Any]:
        """Fires once the process has exited (polled on the reactor)."""
        return wait_until(lambda: not self.running, timeout, f"{self.argv[0]} to exit")

    def stop_now(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Blocking stop, for exit handlers: the signal, then SIGKILL after ``timeout``."""
        if not self.running:
            return
        assert self.process is not None
        self.send_signal(signum)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-size:]
        except OSError:
            return ""


# -- PostgreSQL ---------------------------------------------------------------------------

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
# No fsync (a test cluster is thrown away with its machine's page cache), but every commit
# is written out before it is acknowledged, so a crash of PostgreSQL itself (SIGKILL)
# keeps what was committed, as in production. No autovacuum (test databases are small and
# short-lived: it would only take CPU from the tests). Enough connections for servers.
PG_SETTINGS = ("fsync=off", "full_page_writes=off", "autovacuum=off",
               "max_connections=200", "shared_buffers=32MB")


_pristine: Path | None = None   # a freshly initdb'd data directory, copied for new clusters


class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb) on a free port of 127.0.0.1.

    Trust authentication for local users, the superuser ``postgres``, encoding UTF8 and
    the C collation (as docs/OPERATIONS.md tells operators to create the database).
    """

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(base or tempfile.mkdtemp(prefix="messenger-pg-")).resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        self.data = self.base / "data"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self.child = Child([binary("postgres", PG_BIN_GLOB), "-D", str(self.data),
                            "-p", str(self.port), "-k", str(self.base),
                            "-c", "listen_addresses=127.0.0.1",
                            *itertools.chain.from_iterable(("-c", s) for s in PG_SETTINGS)],
                           self.base / "postgres.log", self.user, self.base)
        self._initialised = False
        self.template_ready = False   # the migrated template database exists
        self.template_shape: frozenset[str] = frozenset()
        self.free_databases: list[str] = []   # migrated, emptied, ready for a test

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def _initdb(self) -> None:
        """initdb, or (after the first cluster of this process) a copy of its result:
        tests that stop and crash PostgreSQL get a cluster of their own quickly."""
        global _pristine
        if self._initialised or (self.data / "PG_VERSION").exists():
            self._initialised = True
            return
        if _pristine is not None and _pristine.exists():
            subprocess.run(["cp", "-a", str(_pristine), str(self.data)],  # noqa: S603, S607
                           check=True, user=self.user)
        else:
            subprocess.run(  # noqa: S603 (fixed argv)
                [binary("initdb", PG_BIN_GLOB), "-D", str(self.data), "-A", "trust",
                 "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                user=self.user, cwd=self.base)
            pristine = Path(tempfile.mkdtemp(prefix="messenger-pgdata-")) / "data"
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                os.chown(pristine.parent, entry.pw_uid, entry.pw_gid)
            subprocess.run(["cp", "-a", str(self.data), str(pristine)],  # noqa: S603, S607
                           check=True, user=self.user)
            atexit.register(shutil.rmtree, pristine.parent, True)
            _pristine = pristine
        self._initialised = True

    def _ready(self) -> bool:
        if not self.child.running:
            raise RuntimeError(f"postgres exited; log tail:\n{self.child.log_tail()}")
        try:
            connection = self.connect()
        except Exception:
            return False
        connection.close()
        return True

    @defer.inlineCallbacks
    def start(self) -> Any:
        """initdb (the first time), then start postgres; fires once it accepts logins."""
        if self.child.running:
            raise RuntimeError("postgres is already running")
        yield threads.deferToThread(self._initdb)
        self.child.spawn()
        yield wait_until(self._ready, what="postgres to accept connections")
        return self

    def stop(self) -> defer.Deferred[Any]:
        """A fast shutdown (SIGINT: sessions are ended, the data is kept)."""
        self.child.send_signal(signal.SIGINT)
        return self.child.ended()

    def kill(self) -> defer.Deferred[Any]:
        """SIGKILL the postmaster: a crash. Its backends end when they notice."""
        self.child.send_signal(signal.SIGKILL)
        return self.child.ended()

    @defer.inlineCallbacks
    def restart(self) -> Any:
        yield self.stop()
        yield self.start()

    def stop_now(self) -> None:
        self.child.stop_now(signal.SIGINT)

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg2 connection as the superuser, in autocommit mode (blocking)."""
        import psycopg2
        connection = psycopg2.connect(self.url(database), connect_timeout=2)
        connection.autocommit = True
        return connection

    def execute(self, sql: str, database: str = "postgres") -> None:
        connection = self.connect(database)
        try:
            connection.cursor().execute(sql)
        finally:
            connection.close()

    def remove(self) -> None:
        self.stop_now()
        shutil.rmtree(self.base, ignore_errors=True)


_shared: PostgresCluster | None = None
_shared_starting: defer.Deferred[Any] | None = None
_database_numbers = itertools.count(1)
TEMPLATE = "messenger_template"


def shared_postgres() -> defer.Deferred[PostgresCluster]:
    """The test process's cluster, started on first use and removed at exit."""
    global _shared, _shared_starting
    if _shared is not None and _shared.child.running:
        return defer.succeed(_shared)
    if _shared_starting is None:
        cluster = PostgresCluster()
        atexit.register(cluster.remove)

        def started(result: Any) -> PostgresCluster:
            global _shared, _shared_starting
            _shared, _shared_starting = cluster, None
            return cluster

        def failed(failure: Any) -> Any:
            global _shared_starting
            _shared_starting = None
            return failure
        _shared_starting = cluster.start().addCallbacks(started, failed)
    waiter: defer.Deferred[PostgresCluster] = defer.Deferred()
    _shared_starting.addBoth(lambda result: (waiter.callback(result), result)[1])
    return waiter


# What a migrated database looks like: its tables, columns and indexes. A database a
# test leaves in this shape is emptied and handed to the next test (a few ms); any other
# is dropped. Creating one from the template costs a file copy (0.05 to 0.5 s).
_SHAPE = ("SELECT table_name || '.' || column_name FROM information_schema.columns"
          " WHERE table_schema = 'public' UNION ALL"
          " SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
          " UNION ALL SELECT 'v' || MAX(version) FROM schema_version")


def _shape(cluster: PostgresCluster, name: str) -> frozenset[str]:
    connection = cluster.connect(name)
    try:
        cursor = connection.cursor()
        cursor.execute(_SHAPE)
        return frozenset(row[0] for row in cursor.fetchall())
    finally:
        connection.close()


def _make_template(cluster: PostgresCluster) -> None:
    """A database at the current schema, the template of every migrated test database."""
    if cluster.template_ready:
        return
    from messenger.store import db, plain
    cluster.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
    cluster.execute(f"CREATE DATABASE {TEMPLATE}")
    connection = plain.open_plain(cluster.url(TEMPLATE))
    try:
        connection.write(db.migrate_txn, connection.engine)
    finally:
        connection.close()
    cluster.template_shape = _shape(cluster, TEMPLATE)
    cluster.template_ready = True


def _create(cluster: PostgresCluster, name: str, migrated: bool) -> None:
    if migrated:
        _make_template(cluster)
    cluster.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")


def _recycle(cluster: PostgresCluster, name: str, migrated: bool) -> None:
    """Empty a migrated database that kept its shape, for the next test; else drop it."""
    if migrated:
        try:
            if _shape(cluster, name) == cluster.template_shape:
                _empty(cluster, name)
                cluster.free_databases.append(name)
                return
        except Exception:  # noqa: S110 (anything odd: the database is dropped below)
            pass
    cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _empty(cluster: PostgresCluster, name: str) -> None:
    """Delete every row and restart every id sequence (as new: ids start at 1)."""
    connection = cluster.connect(name)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT table_name FROM information_schema.tables"
                       " WHERE table_schema = 'public' AND table_name <> 'schema_version'")
        tables = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
        sequences = [row[0] for row in cursor.fetchall()]
        cursor.execute("SET lock_timeout = '2s'")
        cursor.execute("BEGIN; SET LOCAL session_replication_role = replica; "
                       + "".join(f"DELETE FROM {table}; " for table in tables)
                       + "".join(f"ALTER SEQUENCE {seq} RESTART; " for seq in sequences)
                       + "COMMIT")
    finally:
        connection.close()


@defer.inlineCallbacks
def fresh_database(testcase: Any, migrated: bool = True,
                   cluster: PostgresCluster | None = None) -> Any:
    """An empty database for ``testcase`` alone; fires with its URL.

    ``migrated``: at the current schema (what a server makes at its first start), taken
    from the databases earlier tests left behind, emptied, or copied from a template;
    otherwise brand new and without tables, for tests of the migrations themselves.
    After the test it is emptied for the next one, or dropped if the test changed its
    shape.
    """
    if cluster is None:
        cluster = yield shared_postgres()
    if migrated and cluster.free_databases:
        name = cluster.free_databases.pop()
    else:
        name = f"test_{os.getpid()}_{next(_database_numbers)}"
        yield threads.deferToThread(_create, cluster, name, migrated)

    def recycle() -> defer.Deferred[Any] | None:
        if not cluster.child.running:
            return None
        return threads.deferToThread(_recycle, cluster, name, migrated)
    testcase.addCleanup(recycle)
    return cluster.url(name)


@defer.inlineCallbacks
def database_for(testcase: Any, migrated: bool = True) -> Any:
    """Where ``testcase`` keeps its data on the engine its class asks for
    (``store_engine``): a fresh PostgreSQL URL, or a SQLite path in its temp dir (a new
    file: migrated when a server or `migrate_sqlite` first opens it)."""
    if getattr(testcase, "store_engine", "sqlite") == "postgres":
        url = yield fresh_database(testcase, migrated)
        return url
    path = Path(testcase.mktemp()) / "store.sqlite"
    path.parent.mkdir(parents=True)
    return path


class OnPostgres:
    """Mixin for a test class: run it on a fresh PostgreSQL database instead of SQLite.

    ``class MessagingTestsOnPostgres(OnPostgres, MessagingTests): pass`` is the whole
    PostgreSQL twin of a server test class (`tests.support.server.start_server` and the
    store tests read ``store_engine``).
    """

    store_engine = "postgres"


# -- Redis --------------------------------------------------------------------------------

class RedisServer:
    """Redis on a free port of 127.0.0.1, nothing saved to disk."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = Path(base).resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.child = Child([binary("redis-server"), "--port", str(self.port),
                            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                            "--daemonize", "no", "--dir", str(self.base)],
                           self.base / "redis.log", cwd=self.base)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def _ready(self) -> bool:
        if not self.child.running:
            raise RuntimeError(f"redis-server exited; log tail:\n{self.child.log_tail()}")
        return ping_redis(self.port)

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.child.spawn()
        yield wait_until(self._ready, what="redis to answer PING")
        return self

    def stop(self) -> defer.Deferred[Any]:
        self.child.send_signal(signal.SIGTERM)
        return self.child.ended()

    def kill(self) -> defer.Deferred[Any]:
        self.child.send_signal(signal.SIGKILL)
        return self.child.ended()


_shared_redis: RedisServer | None = None


@defer.inlineCallbacks
def shared_redis() -> Any:
    """The test process's Redis, started on first use and stopped at exit."""
    global _shared_redis
    if _shared_redis is None or not _shared_redis.child.running:
        redis = RedisServer(Path(tempfile.mkdtemp(prefix="messenger-redis-")))
        atexit.register(redis.child.stop_now)
        atexit.register(shutil.rmtree, redis.base, True)
        yield redis.start()
        _shared_redis = redis
    return _shared_redis


@defer.inlineCallbacks
def fresh_redis(testcase: Any) -> Any:
    """The shared Redis, emptied for ``testcase``; fires with its URL. (Tests of one
    process run one after another; pub/sub channels carry no data between tests.)"""
    redis = yield shared_redis()
    yield threads.deferToThread(redis_command, redis.port, b"FLUSHALL")
    return redis.url


def redis_command(port: int, *args: bytes) -> bytes:
    """One command to a Redis on 127.0.0.1:port; its raw answer (blocking, short)."""
    command = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a)
                                               for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(65536)


def ping_redis(port: int) -> bool:
    """Does a Redis on 127.0.0.1:port answer PING? (one short blocking exchange)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# -- HAProxy ------------------------------------------------------------------------------

HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode tcp
    retries 2
    option redispatch 1
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout check 1s
frontend messenger
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance {balance}
    option tcp-check
    default-server inter {check_ms}ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
"""


def haproxy_config(port: int, backends: list[tuple[str, int]], balance: str = "roundrobin",
                   check_ms: int = 500) -> str:
    """An HAProxy configuration in TCP mode: one frontend, the nodes as checked backends.

    ``on-marked-down shutdown-sessions`` cuts the connections to a node that fails its
    checks, so clients notice at once and reconnect (to another node); ``option
    redispatch`` sends a connection whose node refuses it to another node, before the
    checks have noticed.
    """
    servers = "\n".join(f"    server {name} 127.0.0.1:{node_port} check"
                        for name, node_port in backends)
    return HAPROXY_CONFIG.format(port=port, balance=balance, check_ms=check_ms,
                                 servers=servers)


class HAProxy:
    """HAProxy in the foreground on a free port, in front of the given backends."""

    def __init__(self, base: Path, backends: list[tuple[str, int]],
                 port: int | None = None, **config: Any) -> None:
        self.base = Path(base).resolve()
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config_path = self.base / "haproxy.cfg"
        self.config_path.write_text(haproxy_config(self.port, backends, **config))
        self.child = Child([binary("haproxy", "/usr/sbin"), "-db", "-f",
                            str(self.config_path)], self.base / "haproxy.log", cwd=self.base)

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def _ready(self) -> bool:
        if not self.child.running:
            raise RuntimeError(f"haproxy exited; log tail:\n{self.child.log_tail()}")
        return accepts(self.port)

    @defer.inlineCallbacks
    def start(self) -> Any:
        check = subprocess.run(  # noqa: S603 (fixed argv)
            [self.child.argv[0], "-c", "-f", str(self.config_path)],
            capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses its configuration:\n{check.stdout}"
                               f"{check.stderr}")
        self.child.spawn()
        yield wait_until(self._ready, what="haproxy to listen")
        return self

    def stop(self) -> defer.Deferred[Any]:
        self.child.send_signal(signal.SIGTERM)
        return self.child.ended()


@defer.inlineCallbacks
def start_service(testcase: Any, service: Any) -> Any:
    """Start a service for ``testcase`` and stop it (by PID) in cleanup."""
    testcase.addCleanup(lambda: service.stop() if service.child.running else None)
    yield service.start()
    return service
