"""The database: adbapi connection pools, per-engine setup, and the migration runner.

All SQL of the project runs here, in pool threads, never on the reactor thread. Queries
live in synchronous ``*_txn(txn, ...)`` functions in the modules next to this one and are
run with `Database.read` or `Database.write`.

Two engines (`messenger.store.engines`): SQLite, the embedded default, gets one writer
connection, so writes never contend, and a small pool of reader connections that WAL
mode lets run beside it. PostgreSQL (`messenger.store.postgres`), shared by the nodes of
a cluster, gets a few writer and reader connections, timeouts, reconnects and retries.
SQL is written with ``?`` placeholders; `Engine.convert` is the one place that rewrites
it for PostgreSQL's ``%s``.

When the database cannot be reached or does not answer in time, `read` and `write` fail
with `messenger.store.errors.Unavailable` (the server answers 503), and the outage is
logged once when it starts and once when it ends, not per request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from twisted.enterprise import adbapi
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from messenger.store.engines import (  # noqa: F401 (re-exported)
    MIGRATIONS_LOCK,
    ConvertingCursor,
    Engine,
    SqliteEngine,
    engine_of,
    is_postgres_url,
)
from messenger.store.errors import Unavailable
from messenger.store.plain import (  # noqa: F401 (re-exported for tools and tests)
    backup_file,
    backup_path_for,
    connect,
    read_transaction,
    write_transaction,
)

T = TypeVar("T")
log = Logger()

SCHEMA_PACKAGE = "messenger.store.schema"
MIGRATION_NAME = re.compile(r"(\d{3})_([a-z0-9_]+)\.sql")
ENGINES_LINE = re.compile(r"--\s*engines:\s*([a-z0-9_, ]+)$", re.MULTILINE)


class DatabaseTooNew(RuntimeError):
    """The database was migrated by a newer server than this one."""


def engine_for(location: str | Path, sqlite_sync: str = "FULL") -> Engine:
    """The engine for a ``--database`` value: a ``postgresql://`` URL, else a SQLite file."""
    if is_postgres_url(location):
        from messenger.store.postgres import PostgresEngine
        return PostgresEngine(str(location))
    return SqliteEngine(sqlite_sync)


class Database:
    """Pools over one database plus migrations; the only door to SQL for the server.

    ``location`` is a SQLite file path or a PostgreSQL URL (``engine`` defaults to the
    one `engine_for` picks). ``writers`` applies to PostgreSQL only: SQLite always has
    exactly one writer.
    """

    def __init__(self, location: Path | str, engine: Engine | None = None, readers: int = 2,
                 reactor: Any = None, writers: int | None = None) -> None:
        self.engine = engine or engine_for(location)
        self.postgres = self.engine.name == "postgres"
        self.location = str(location)
        self.path = Path(location) if not self.postgres else None
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self._reactor = reactor
        self._readers = readers
        self._writers = 1 if not self.postgres else (writers or self.engine.default_writers)
        self._writer: adbapi.ConnectionPool | None = None
        self._reader: adbapi.ConnectionPool | None = None
        self._timeout = self.engine.request_timeout
        self.unavailable_since: float | None = None

    def describe(self) -> str:
        """Where the data is, for logs (a PostgreSQL password is masked)."""
        return str(self.path) if self.path is not None else self.engine.describe()

    def _pool(self, size: int, write: bool) -> adbapi.ConnectionPool:
        if self.postgres:
            return self.engine.pool(size, self._reactor, write)  # type: ignore[attr-defined]
        args, kwargs = self.engine.pool_args(self.path)  # type: ignore[attr-defined]
        return adbapi.ConnectionPool(*args, cp_min=1, cp_max=size, cp_noisy=False,
                                     cp_openfun=self.engine.on_connect,  # type: ignore
                                     cp_reactor=self._reactor, **kwargs)

    @defer.inlineCallbacks
    def open(self) -> Any:
        """See `_open`; a database that cannot be reached is named with the cause."""
        try:
            version = yield self._open()
        except Unavailable as error:
            cause = error.__cause__ or error
            detail = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
            raise Unavailable(f"cannot use the database {self.describe()}: {detail}") from cause
        return version

    @defer.inlineCallbacks
    def _open(self) -> Any:
        """Open the pools and apply pending migrations; fires with the schema version.

        Before a SQLite database that holds data is upgraded, it is copied (SQLite
        online backup) to ``<name>.v<old version>.bak`` next to it, so a failed or
        unwanted upgrade can be undone by putting that file back. (On PostgreSQL the
        operator backs up with pg_dump; see docs/OPERATIONS.md.)
        """
        existed = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            existed = self.path.exists() and self.path.stat().st_size > 0
        self._writer = self._pool(self._writers, True)
        self._reader = self._pool(self._readers, False)
        for pool in (self._writer, self._reader):
            if not pool.running:
                pool.start()
        if existed:
            version = yield self.read(stored_version_txn, self.engine)
            newest = latest_version()
            if 0 < version < newest:
                target = backup_path_for(self.path, version)
                log.info("Backing up {path} to {target} before upgrading schema {old} to"
                         " {new}", path=str(self.path), target=str(target), old=version,
                         new=newest)
                yield threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(),
                                                backup_file, self.path, target)
        if self.postgres:
            warnings = yield self._guard(self._reader.runWithConnection(
                self.engine.run, self.engine.check_txn, (), {}), None)
            for warning in warnings:
                log.warn("Database {where}: {warning}", where=self.describe(), warning=warning)
            version = yield self._guard(self._writer.runWithConnection(
                self.engine.run, migrate_txn, (self.engine,), {}), None)
        else:
            version = yield self._writer.runWithConnection(migrate_sqlite, self.engine)
        return version

    def close(self) -> None:
        for pool in (self._reader, self._writer):
            if pool is not None and pool.running:
                pool.close()
        self._reader = self._writer = None

    def _interaction(self, fn: Callable[..., T], write: bool) -> Callable[..., T]:
        engine = self.engine

        def interaction(txn: Any, *args: Any, **kwargs: Any) -> T:
            if write:
                engine.begin_write(txn)
            return fn(txn, *args, **kwargs)
        return interaction

    def _run(self, pool: adbapi.ConnectionPool | None, fn: Callable[..., T], write: bool,
             args: Any, kwargs: Any) -> defer.Deferred[T]:
        if pool is None:
            return defer.fail(RuntimeError("database is closed"))
        if not self.postgres:
            return pool.runInteraction(self._interaction(fn, write), *args, **kwargs)
        d = pool.runWithConnection(self.engine.run, fn, args, kwargs)  # type: ignore
        return self._guard(d, self._timeout)

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """Run ``fn(txn, *args)`` in a writer connection, in one transaction."""
        return self._run(self._writer, fn, True, args, kwargs)

    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """Run ``fn(txn, *args)`` in a reader connection (sees every committed write)."""
        return self._run(self._reader, fn, False, args, kwargs)

    # -- outages --------------------------------------------------------------------------

    def _guard(self, d: defer.Deferred[T], timeout: float | None) -> defer.Deferred[T]:
        """A deadline for the transaction, and store failures turned into `Unavailable`.

        The deadline also covers the time spent waiting for a free connection: a request
        that cannot be served within it is better answered "try later" than left hanging.
        (A transaction that runs on past its deadline still completes or fails in its
        thread; its result is dropped.)
        """
        if timeout is not None:
            d.addTimeout(timeout, self._reactor)
        d.addCallbacks(self._answered, self._failed, errbackArgs=(timeout,))
        return d

    def _answered(self, result: T) -> T:
        if self.unavailable_since is not None:
            log.info("The database {where} answers again (it was unavailable for {seconds:.1f}"
                     " s)", where=self.describe(),
                     seconds=self._reactor.seconds() - self.unavailable_since)
            self.unavailable_since = None
        return result

    def _failed(self, failure: Failure, timeout: float | None) -> Failure:
        if failure.check(defer.TimeoutError):
            error = Unavailable(f"the database did not answer within {timeout:g} s")
        elif self.engine.is_unavailable(failure.value):
            error = Unavailable("the database is unavailable")
        else:
            self._answered(None)  # it answered, with an error of ours
            return failure
        if self.unavailable_since is None:
            self.unavailable_since = self._reactor.seconds()
            log.warn("The database {where} is unavailable: {error}; requests that need it"
                     " are answered 503 until it is back", where=self.describe(),
                     error=str(failure.value).strip().splitlines()[0] or repr(failure.value))
        raise error from failure.value


# -- migrations ---------------------------------------------------------------------------

def migrations() -> list[tuple[int, str, str]]:
    """The shipped schema files as (version, name, sql), in order."""
    found = []
    for entry in resources.files(SCHEMA_PACKAGE).iterdir():
        match = MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort()
    return found


def split_statements(sql: str) -> list[str]:
    """Split a schema file into statements (each ends with ';' at the end of a line)."""
    statements, current = [], []
    for line in sql.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if any(part.strip() for part in current):
        statements.append("\n".join(current))
    return statements


def applies_to(sql: str, engine: Engine) -> bool:
    """A schema file may start with ``-- engines: sqlite`` to run on those engines only
    (it is still recorded everywhere, so versions stay the same on every engine)."""
    match = ENGINES_LINE.match(sql)
    if match is None:
        return True
    return engine.name in {part.strip() for part in match.group(1).split(",")}


def stored_version_txn(txn: Any, engine: Engine) -> int:
    """The schema version recorded in the database, 0 for a new one (changes nothing)."""
    if not engine.table_exists(txn, "schema_version"):
        return 0
    txn.execute("SELECT MAX(version) FROM schema_version")
    row = txn.fetchone()
    return row[0] or 0


def current_version_txn(txn: Any) -> int:
    txn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied DOUBLE PRECISION NOT NULL)")
    txn.execute("SELECT MAX(version) FROM schema_version")
    row = txn.fetchone()
    return row[0] or 0


def latest_version(shipped: list[tuple[int, str, str]] | None = None) -> int:
    shipped = migrations() if shipped is None else shipped
    return shipped[-1][0] if shipped else 0


def migrate_txn(txn: Any, engine: Engine,
                shipped: list[tuple[int, str, str]] | None = None,
                now: float | None = None) -> int:
    """Apply every shipped migration the database has not recorded, in number order,
    recording each one.

    Refuses (`DatabaseTooNew`) to run on a database that a newer server has migrated
    further. All of it runs in the caller's one transaction: a migration that fails
    leaves the database as it was. ``shipped`` defaults to the package's schema files.
    On SQLite, run it through `migrate_sqlite` (foreign keys must be off while a table
    that others refer to is rebuilt); on PostgreSQL, nodes that start together take
    turns (an advisory lock), and the later ones find the work done.
    """
    engine.begin_migration(txn)
    if engine.name == "sqlite" and txn.execute("PRAGMA foreign_keys").fetchone()[0]:
        raise RuntimeError("SQLite migrations run with foreign keys off: use migrate_sqlite")
    version = current_version_txn(txn)
    shipped = migrations() if shipped is None else shipped
    newest = latest_version(shipped)
    if version > newest:
        raise DatabaseTooNew(f"database schema version {version} is newer than this server"
                             f" ({newest}); upgrade the server")
    # Numbers are reserved per feature (DECISIONS.md 7), so a lower number can land
    # after a higher one was applied: apply every shipped file not yet recorded.
    txn.execute("SELECT version FROM schema_version")
    recorded = {row[0] for row in txn.fetchall()}
    for number, name, sql in shipped:
        if number in recorded:
            continue
        if applies_to(sql, engine):
            for statement in split_statements(engine.ddl(sql)):
                txn.execute(statement)
        txn.execute("INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)",
                    (number, name, time.time() if now is None else now))
        log.info("Applied schema migration {version:03d}_{name}", version=number, name=name)
        version = max(version, number)
    return version


def migrate_sqlite(connection: Any, engine: Engine,
                   shipped: list[tuple[int, str, str]] | None = None,
                   now: float | None = None) -> int:
    """`migrate_txn` on a SQLite connection (plain or adbapi), the way SQLite documents
    for changing a table that other tables refer to: foreign keys off around the
    transaction (a dropped ``users`` table would otherwise cascade into every table that
    refers to it), and every foreign key checked before the commit."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    try:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            before = stored_version_txn(cursor, engine)
            version = migrate_txn(cursor, engine, shipped, now)
            # Only after a change: the check reads every row of every referring table.
            broken = (cursor.execute("PRAGMA foreign_key_check").fetchall()
                      if version != before else [])
            if broken:
                raise RuntimeError(f"migration left {len(broken)} broken references,"
                                   f" e.g. {broken[0]}")
        except BaseException:
            connection.rollback()
            raise
        connection.commit()
    finally:
        cursor.execute("PRAGMA foreign_keys=ON")
    return version


def migrate_plain(connection: Any, shipped: list[tuple[int, str, str]] | None = None,
                  now: float | None = None) -> int:
    """Migrate through a `messenger.store.plain.PlainConnection` (tools and tests)."""
    if connection.is_postgres:
        return connection.write(migrate_txn, connection.engine, shipped, now)
    return migrate_sqlite(connection.raw, connection.engine, shipped, now)
