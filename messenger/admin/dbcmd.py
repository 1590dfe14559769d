"""messenger-admin's side of the database: which one, opening it, migrate, backup, sql.

``--database`` takes what the server takes: a SQLite file (default
DATA_DIR/messenger.sqlite) or a ``postgresql://`` URL. Everything here blocks (a tool,
not reactor code) and raises `CommandError` with a one-line message for the operator.

Backups: SQLite's online backup API into one file, checked with ``quick_check``; on
PostgreSQL ``pg_dump --format=custom`` (one consistent snapshot, taken while the nodes
keep writing), checked by reading its table of contents back with ``pg_restore --list``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg2

from messenger.server.config import ServerConfig
from messenger.store import db, plain
from messenger.store.engines import is_postgres_url

PG_BIN_GLOB = "usr/lib/postgresql/*/bin"
COUNTED = ("users", "messages", "broadcasts")


class CommandError(Exception):
    """A failure to report to the operator in one line (exit status 1)."""


def location(args: argparse.Namespace) -> str | Path:
    """The database the command works on: a PostgreSQL URL or a SQLite file."""
    config = ServerConfig(data_dir=Path(args.data_dir), database=args.database or "")
    return config.database_location


def describe(where: str | Path) -> str:
    if is_postgres_url(where):
        from messenger.store.postgres import redact
        return redact(str(where))
    return str(where)


def connect(where: str | Path, readonly: bool = False) -> plain.PlainConnection:
    """`plain.open_plain`, with a PostgreSQL that cannot be reached told in one line."""
    try:
        return plain.open_plain(where, readonly=readonly)
    except psycopg2.OperationalError as error:
        raise CommandError(f"cannot connect to {describe(where)}: "
                           f"{' '.join(str(error).split())}") from None


def open_database(args: argparse.Namespace, write: bool) -> plain.PlainConnection:
    """A connection to an existing database at the schema version this tool knows."""
    where = location(args)
    if not is_postgres_url(where) and not Path(where).exists():
        raise CommandError(f"no database at {where} (start the server once, or run"
                           " 'messenger-admin migrate' to create it)")
    connection = connect(where, readonly=not write)
    try:
        version = connection.read(db.stored_version_txn, connection.engine)
    except BaseException:
        connection.close()
        raise
    latest = db.latest_version()
    if version != latest:
        connection.close()
        if version > latest:
            raise CommandError(f"database schema version {version} is newer than this tool"
                               f" ({latest}); use the messenger-admin of the newer server")
        raise CommandError(f"database schema version {version} is older than this tool"
                           f" ({latest}); run 'messenger-admin migrate' first (the server"
                           " also migrates when it starts)")
    return connection


# -- migrate ------------------------------------------------------------------------------

def migrate(args: argparse.Namespace) -> str:
    """Create the database's tables or bring them up to date; returns the report."""
    where = location(args)
    existed = False
    if not is_postgres_url(where):
        path = Path(where)
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists() and path.stat().st_size > 0
    connection = connect(where)
    lines = []
    try:
        before = connection.read(db.stored_version_txn, connection.engine)
        latest = db.latest_version()
        if before > latest:
            raise CommandError(f"database schema version {before} is newer than this tool"
                               f" ({latest}); upgrade messenger")
        if before == latest:
            return f"{describe(where)}: schema version {before}, up to date\n"
        if existed and before > 0:
            target = db.backup_path_for(Path(where), before)
            db.backup_file(Path(where), target)
            lines.append(f"Backed up version {before} to {target}\n")
        elif connection.is_postgres and before > 0:
            lines.append("(PostgreSQL: no copy is made here; take one first with"
                         " 'messenger-admin backup FILE', which runs pg_dump)\n")
        after = db.migrate_plain(connection)
    except db.DatabaseTooNew as error:
        raise CommandError(str(error)) from None
    finally:
        connection.close()
    lines.append(f"{describe(where)}: schema version {before} -> {after}\n")
    return "".join(lines)


# -- backup -------------------------------------------------------------------------------

def backup(args: argparse.Namespace) -> str:
    where = location(args)
    target = Path(args.file)
    if target.exists() and not args.force:
        raise CommandError(f"{target} already exists (--force replaces it)")
    if is_postgres_url(where):
        return _pg_backup(str(where), target)
    source = Path(where)
    if not source.exists():
        raise CommandError(f"no database at {source}")
    if target.resolve() == source.resolve():
        raise CommandError("the backup must go to another file than the database")
    size = db.backup_file(source, target)
    check = db.connect(target, readonly=True)
    try:
        verdict = check.execute("PRAGMA quick_check").fetchone()[0]
        version = db.stored_version_txn(check.cursor(), db.SqliteEngine())
        counts = {table: check.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in COUNTED} if version else {}
    finally:
        check.close()
    if verdict != "ok":
        raise CommandError(f"the backup in {target} failed its check: {verdict}")
    summary = ", ".join(f"{count} {table}" for table, count in counts.items())
    return (f"Backed up {source} to {target}: {size} bytes, schema version {version}"
            f"{', ' + summary if summary else ''}; check ok\n")


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore of the newest PostgreSQL installed (never older than the
    server: an older pg_dump refuses a newer server)."""
    for candidate in sorted(Path("/").glob(PG_BIN_GLOB), reverse=True):
        if (candidate / name).exists():
            return str(candidate / name)
    found = shutil.which(name)
    if found is None:
        raise CommandError(f"{name} not found: install PostgreSQL's client programs"
                           " (Debian: apt-get install postgresql-client)")
    return found


def split_password(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that passes the password to
    libpq instead (a command line is visible to every user in ps)."""
    parts = urllib.parse.urlsplit(url)
    env = dict(os.environ)
    if parts.password is None:
        return url, env
    env["PGPASSWORD"] = urllib.parse.unquote(parts.password)
    netloc = parts.netloc.replace(":" + parts.password + "@", "@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), env


def _pg_backup(url: str, target: Path) -> str:
    connection = connect(url, readonly=True)
    try:
        version = connection.read(db.stored_version_txn, connection.engine)
    finally:
        connection.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    bare, env = split_password(url)
    dump = subprocess.run(  # noqa: S603 (fixed program, the operator's URL as one argument)
        [pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={partial}",
         f"--dbname={bare}"], capture_output=True, text=True, env=env)
    if dump.returncode != 0:
        partial.unlink(missing_ok=True)
        raise CommandError(f"pg_dump failed: {dump.stderr.strip() or dump.returncode}")
    listing = subprocess.run(  # noqa: S603 (fixed program and our own file)
        [pg_tool("pg_restore"), "--list", str(partial)], capture_output=True, text=True)
    tables = {line.split()[-2] for line in listing.stdout.splitlines()
              if " TABLE DATA " in line}
    missing = [table for table in COUNTED if table not in tables]
    if listing.returncode != 0 or missing:
        partial.unlink(missing_ok=True)
        raise CommandError(f"the dump failed its check: {listing.stderr.strip()}"
                           f" {' '.join(missing)} missing".strip())
    os.replace(partial, target)
    return (f"Backed up {describe(url)} to {target} with pg_dump (custom format):"
            f" {target.stat().st_size} bytes, schema version {version}; check ok."
            " Restore with: pg_restore --no-owner --dbname=URL_OF_AN_EMPTY_DATABASE"
            f" {target}\n")


# -- sql ----------------------------------------------------------------------------------

_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 sqlite3.SQLITE_RECURSIVE}


def _read_only_authorizer(action: int, arg1: Any, arg2: Any, dbname: Any,
                          source: Any) -> int:
    """Allow reading only: no writes, no ATTACH, no PRAGMA that sets anything."""
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg2 is None:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def one_statement(sql: str) -> bool:
    """Is this one statement? (a ';' outside quotes and comments ends one; a trailing
    one is fine). psycopg2 would otherwise run several, and the second could end the
    read-only transaction the first one is in."""
    text = sql.strip().rstrip(";").rstrip()
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"":
            end = text.find(char, i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == char:  # '' inside ''
                end = text.find(char, end + 2)
            if end == -1:
                return True  # unterminated: let the server report the syntax error
            i = end + 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif char == "$":
            return ";" not in text[i:]  # dollar quoting: refuse any ';' after it
        elif char == ";":
            return False
        else:
            i += 1
    return True


def run_sql(args: argparse.Namespace, statement: str, audit: Any) -> tuple[list[str],
                                                                          list[Any], int]:
    """Run one statement: (column names, rows, rows changed or -1).

    Read-only unless ``--write``: on SQLite an authorizer refuses every write, ATTACH and
    PRAGMA that sets something; on PostgreSQL the session is read-only on the server's
    side and only one statement is accepted. ``audit(txn, statement)`` records a write
    in the same transaction.
    """
    connection = open_database(args, write=args.write)
    try:
        if connection.is_postgres and not one_statement(statement):
            raise CommandError("give one SQL statement (a ';' in the middle starts a"
                               " second one)")
        if args.write:
            def run_txn(txn: Any) -> tuple[list[str], list[Any], int]:
                txn.execute(statement)
                headers = [d[0] for d in txn.description or ()]
                rows = txn.fetchall() if headers else []
                changed = txn.rowcount
                audit(txn, statement)
                return headers, rows, changed
            return connection.write(run_txn)
        if not connection.is_postgres:
            connection.raw.set_authorizer(_read_only_authorizer)
            cursor = connection.raw.execute(statement)
            headers = [d[0] for d in cursor.description or ()]
            return headers, cursor.fetchall() if headers else [], -1

        def read_txn(txn: Any) -> tuple[list[str], list[Any], int]:
            txn.execute(statement)
            headers = [d[0] for d in txn.description or ()]
            return headers, [tuple(row) for row in txn.fetchall()] if headers else [], -1
        return connection.read(read_txn)
    except sqlite3.DatabaseError as error:  # includes ProgrammingError (two statements)
        text = str(error)
        if not args.write and ("not authorized" in text or "readonly" in text):
            raise CommandError("refused: the database is opened read-only and this"
                               " statement would change it (add --write to change data)"
                               ) from None
        raise CommandError(f"SQL error: {text}") from None
    except psycopg2.Error as error:
        if getattr(error, "pgcode", None) == "25006":  # read_only_sql_transaction
            raise CommandError("refused: the database is opened read-only and this"
                               " statement would change it (add --write to change data)"
                               ) from None
        raise CommandError(f"SQL error: {str(error).strip()}") from None
    finally:
        connection.close()
