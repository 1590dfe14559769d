"""Plain connections for tools that run beside the server (messenger-admin, tests).

Not reactor code: these block the calling thread. `open_plain` opens either engine and
runs ``*_txn`` functions in one transaction each, like the server's pools do;
`connect`, `write_transaction` and `read_transaction` are the SQLite-only primitives
underneath, and `backup_file` is SQLite's online backup.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from messenger.store.engines import SQLITE, ConvertingCursor, Engine, is_postgres_url

T = TypeVar("T")


def connect(path: Path, readonly: bool = False, timeout: float = 30.0) -> sqlite3.Connection:
    """A plain SQLite connection set up like the server's (WAL, foreign keys, busy timeout).

    ``readonly`` opens the file read-only (``mode=ro``) and sets ``query_only``, so no
    statement can write. In autocommit mode: callers open transactions themselves
    (`write_transaction`).
    """
    path = Path(path)
    if readonly:
        if not path.exists():
            raise FileNotFoundError(f"no database at {path}")
        uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                                     check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        connection.execute("PRAGMA query_only=ON")
        return connection
    connection = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                                 check_same_thread=False)
    SQLITE.on_connect(connection)
    connection.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return connection


def write_transaction(connection: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(cursor, *args)`` in one BEGIN IMMEDIATE transaction on a plain connection."""
    cursor = connection.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    try:
        result = fn(cursor, *args)
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
    return result


def read_transaction(connection: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(cursor, *args)`` on one consistent snapshot (a read transaction)."""
    cursor = connection.cursor()
    cursor.execute("BEGIN")
    try:
        return fn(cursor, *args)
    finally:
        connection.rollback()


class PlainConnection:
    """One connection to either engine; `write` and `read` run one transaction each."""

    def __init__(self, raw: Any, engine: Engine, location: str) -> None:
        self.raw = raw
        self.engine = engine
        self.location = location

    @property
    def is_postgres(self) -> bool:
        return self.engine.name == "postgres"

    def write(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.is_postgres:
            return write_transaction(self.raw, fn, *args)
        return self.engine.run(_Raw(self.raw), fn, args, {})

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        if not self.is_postgres:
            return read_transaction(self.raw, fn, *args)
        cursor = ConvertingCursor(self.raw.cursor(), self.engine)
        try:
            return fn(cursor, *args)
        finally:
            self.raw.rollback()

    def close(self) -> None:
        self.raw.close()


class _Raw:
    """A psycopg2 connection as `PostgresEngine.run` expects it (retries included)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def reconnect(self) -> None:
        raise ConnectionError("the connection to PostgreSQL was lost")


def open_plain(location: str | Path, readonly: bool = False) -> PlainConnection:
    """A plain connection to a SQLite file or a ``postgresql://`` database.

    PostgreSQL writes run SERIALIZABLE, like the server's writers (messenger-admin's
    changes then cannot race a node's); ``readonly`` refuses every write on the
    server's side.
    """
    if is_postgres_url(location):
        import psycopg2.extensions

        from messenger.store import postgres
        raw = postgres.connect(str(location), readonly=readonly)
        if not readonly:
            raw.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_SERIALIZABLE)
        return PlainConnection(raw, postgres.PostgresEngine(str(location)), str(location))
    return PlainConnection(connect(Path(location), readonly=readonly), SQLITE, str(location))


# -- SQLite backups -----------------------------------------------------------------------

def backup_path_for(path: Path, version: int) -> Path:
    """Where the copy made before upgrading from ``version`` goes (never overwritten)."""
    base = path.with_name(f"{path.name}.v{version}.bak")
    candidate, number = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.name}.{number}")
        number += 1
    return candidate


def backup_file(source: Path, target: Path) -> int:
    """Copy the database at ``source`` to ``target`` with SQLite's online backup API.

    Safe while the server writes: the copy is one consistent snapshot (in WAL mode the
    writer is not held up). Written to a temporary file and renamed, so ``target`` is
    either complete or absent. Returns the size in bytes.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    src = connect(source, readonly=True)
    try:
        dst = sqlite3.connect(str(partial))
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    os.replace(partial, target)
    return target.stat().st_size
