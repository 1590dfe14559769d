"""What differs between the database engines, behind one small interface.

SQLite (the embedded default) and PostgreSQL (a cluster's shared store) run the same
``*_txn`` functions. They differ in connection set-up, DDL for ids, the parameter style,
how a write transaction starts and how writers that must not overlap are serialised:

* SQLite has one writer connection and opens every write with ``BEGIN IMMEDIATE``, so
  writes never overlap at all;
* PostgreSQL has writer connections in several processes at once. Writes run
  SERIALIZABLE (retried on a serialisation failure, see `messenger.store.postgres`),
  and the few writes whose *commit order* matters (message and broadcast ids, which
  clients page by) take a transaction-level advisory lock (`serial_section`).

A ``*_txn`` function learns its engine with `engine_of(txn)`; SQL is written once with
``?`` placeholders and rewritten by `Engine.convert` where the engine needs ``%s``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


class Engine:
    """The SQLite behaviour; `messenger.store.postgres.PostgresEngine` overrides it."""

    name = "sqlite"
    auto_id = "INTEGER PRIMARY KEY"
    # An id that is never handed out twice, even after the newest rows were deleted
    # (clients keep "the last message id I saw"); SQLite needs AUTOINCREMENT for that.
    serial_id = "INTEGER PRIMARY KEY AUTOINCREMENT"
    paramstyle = "qmark"
    # Seconds a request waits for the database before it is answered "unavailable"
    # (None: wait; SQLite is a local file and its busy timeout bounds the wait).
    request_timeout: float | None = None
    default_writers = 1

    def convert(self, sql: str) -> str:
        """Rewrite ``?`` placeholders for this engine (identity for SQLite)."""
        return sql

    def begin_write(self, txn: Any) -> None:
        """Open a write transaction (engines with implicit transactions do nothing)."""

    def ddl(self, sql: str) -> str:
        return sql.replace("SERIAL_ID", self.serial_id).replace("AUTO_ID", self.auto_id)

    def table_exists(self, txn: Any, name: str) -> bool:
        txn.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?"
                    " AND table_schema = current_schema()", (name,))
        return txn.fetchone() is not None

    def serial_section(self, txn: Any, key: int) -> None:
        """Start a section that no other writer anywhere runs at the same time (until
        the commit). Nothing to do on SQLite: its single writer already runs one write
        transaction at a time."""
        sql = self.serial_section_sql(txn)
        if sql:
            txn.execute(sql, (key,))

    def serial_section_sql(self, txn: Any) -> str:
        """The SQL (with one ``?`` for the key) that `serial_section` runs, for callers
        that send it in one round trip with their own statement ("" on SQLite)."""
        return ""

    def begin_migration(self, txn: Any) -> None:
        """First statement of a migration (nodes that start together take turns)."""

    def lock(self, txn: Any, key: int) -> None:
        """Wait until no `serial_section` with ``key`` runs (held until commit)."""

    def is_unavailable(self, error: BaseException) -> bool:
        """Does this failure mean the database is unreachable or overloaded (503)?"""
        return False

    def describe(self) -> str:
        """Where the data is, for logs (never with a password)."""
        return self.name


class SqliteEngine(Engine):
    def __init__(self, synchronous: str = "FULL") -> None:
        self.synchronous = synchronous

    def pool_args(self, path: Path) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return ("sqlite3", str(path)), {"check_same_thread": False, "timeout": 30.0}

    def on_connect(self, connection: sqlite3.Connection) -> None:
        """Every connection: WAL, foreign keys, a busy timeout, chosen durability.

        Transactions are opened explicitly (autocommit mode otherwise): writes begin with
        BEGIN IMMEDIATE so that a write transaction holds the lock from its first read,
        and what it checked cannot change under it (messenger-admin may write too).
        """
        connection.isolation_level = None
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")

    def begin_write(self, txn: Any) -> None:
        txn.execute("BEGIN IMMEDIATE")

    def table_exists(self, txn: Any, name: str) -> bool:
        txn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return txn.fetchone() is not None


SQLITE = SqliteEngine()

# Keys of the advisory locks (any 64-bit numbers; these spell "msgr" and a number).
MESSAGES_LOCK = 0x6D736772_00000001
BROADCASTS_LOCK = 0x6D736772_00000002
MIGRATIONS_LOCK = 0x6D736772_00000003


class ConvertingCursor:
    """A cursor that knows its engine and rewrites ``?`` SQL for it.

    The PostgreSQL store hands one of these to every ``*_txn`` function (and so do the
    plain connections of messenger-admin). SQLite's pools hand over their cursor as it
    is, so the embedded default pays nothing for the engine choice.
    """

    def __init__(self, cursor: Any, engine: Engine) -> None:
        self._cursor = cursor
        self.engine = engine

    def execute(self, sql: str, args: Any = ()) -> Any:
        self._cursor.execute(self.engine.convert(sql), args)
        return self

    def executemany(self, sql: str, args: Any) -> Any:
        self._cursor.executemany(self.engine.convert(sql), args)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def engine_of(txn: Any) -> Engine:
    """The engine a ``*_txn`` function runs on (SQLite unless the cursor says else)."""
    return getattr(txn, "engine", SQLITE)


def is_postgres_url(location: str | Path) -> bool:
    """Does a ``--database`` value name a PostgreSQL database (else: a SQLite file)?"""
    text = str(location)
    return text.startswith(("postgresql://", "postgres://"))
