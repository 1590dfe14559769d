"""What an operator can get wrong, checked before the server starts, in one line each.

`preflight(config)` runs in ``MessengerService.startService`` (under twistd: before the
reactor runs, after twistd has switched to ``--uid``, so permissions are those the
server will have). It checks, in this order, and raises `StartupError` for the first
problem found: the data dir (created if missing, then written to), the shared-secret
file, the server key file, the TLS certificate and key, the database, and every port
(bound for a moment and released). A `StartupError` is one line that names the option
and says what to do; the service logs it and the process exits with status 1, never
with a traceback.

`describe(exc)` turns the errors the asynchronous rest of the start can still raise (a
port taken in between, a database that went away) into the same kind of line, or None
for a bug (which is logged with its traceback).

These are blocking calls (files, sockets, sqlite3) on purpose: they run once, before a
single client is served.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet.error import CannotListenError

from messenger.server import control
from messenger.server.config import ServerConfig
from messenger.server.tls import TlsConfigError, server_tls_options
from messenger.store import db
from messenger.store.errors import Unavailable


class StartupError(Exception):
    """A configuration problem, as one line naming the option and the fix."""


def preflight(config: ServerConfig) -> None:
    """Raise `StartupError` for the first configuration problem found."""
    check_data_dir(config.data_dir)
    try:
        control.prepare(config.control_socket_path)
    except control.AnotherServer as error:
        raise StartupError(f"--data-dir {config.data_dir}: {error}") from None
    except control.ControlSocketError:
        pass        # too long a path: the server starts without it, and says so
    check_readable("--secret-file", config.secret_path,
                   "make it readable by the server's user, or point --secret-file at the"
                   " deployment's secret (a missing file is created)")
    check_readable("--data-dir", config.server_key_path,
                   "make the server key readable by the server's user")
    check_server_key(config.server_key_path)
    if config.tls.port:
        try:
            server_tls_options(config.tls.cert, config.tls.key)
        except TlsConfigError as error:
            raise StartupError(f"--tls-cert/--tls-key: {error}") from None
    check_database(config)
    check_ports(config)


def check_data_dir(path: Path) -> None:
    """The data dir exists (or can be made) and the server can create files in it."""
    fix = (f"give the server's user write access to it (chown/chmod {path}) or choose"
           " another --data-dir")
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise StartupError(f"--data-dir {path}: exists and is not a directory; {fix}"
                           ) from None
    except OSError as error:
        raise StartupError(f"--data-dir {path}: cannot create it ({error.strerror});"
                           f" {fix}") from None
    probe = path / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise StartupError(f"--data-dir {path}: cannot write in it ({error.strerror});"
                           f" {fix}") from None


def check_readable(option: str, path: Path, fix: str) -> None:
    """A file that exists must be a readable file (a missing one is made at start)."""
    if not path.exists():
        return
    if path.is_dir():
        raise StartupError(f"{option}: {path} is a directory, not a file; {fix}")
    try:
        with open(path, "rb") as handle:
            content = handle.read(1)
    except OSError as error:
        raise StartupError(f"{option}: cannot read {path} ({error.strerror}); {fix}"
                           ) from None
    if not content:
        raise StartupError(f"{option}: {path} is empty; {fix}")


def check_server_key(path: Path) -> None:
    if not path.exists():
        return
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA key")
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise StartupError(f"--data-dir: the server key {path} is not a usable PEM private"
                           f" key ({error}); restore it from a backup (clients pinned it),"
                           " or move it away to make a new one") from None


def check_database(config: ServerConfig) -> None:
    """The database answers (PostgreSQL) or, when it exists, opens (SQLite), and is not
    newer than this server."""
    if db.is_postgres_url(config.database_location):
        check_postgres(str(config.database_location))
        return
    path = config.database_path
    if not path.exists():
        return
    fix = ("restore it from a backup (messenger-admin backup), or point --data-dir at the"
           " right directory")
    try:
        connection = db.connect(path, readonly=True, timeout=1.0)
        try:
            version = db.read_transaction(connection, db.stored_version_txn,
                                          db.SqliteEngine())
        finally:
            connection.close()
    except (sqlite3.Error, OSError) as error:
        raise StartupError(f"--data-dir: cannot open the database {path} ({error}); {fix}"
                           ) from None
    if version > db.latest_version():
        raise StartupError(f"--data-dir: the database {path} has schema version {version},"
                           f" newer than this server ({db.latest_version()}); run the newer"
                           " server, or restore the backup made before the upgrade")


def check_postgres(url: str) -> None:
    """A PostgreSQL URL: a connection opens within the connect timeout and reads."""
    import psycopg2

    from messenger.store import postgres
    shown = postgres.redact(url)
    try:
        connection = postgres.connect(url, readonly=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
        finally:
            connection.close()
    except (psycopg2.Error, ValueError) as error:
        cause = " ".join(str(error).split()) or type(error).__name__
        raise StartupError(f"--database {shown}: cannot connect ({cause}); start PostgreSQL,"
                           " or fix the host, port, user or password in the URL") from None


def check_ports(config: ServerConfig) -> None:
    """Every configured port can be bound now (each is released again at once)."""
    interface = config.interface
    checks = [("--port", config.port, socket.SOCK_STREAM, interface)]
    if config.tls.port:
        checks.append(("--tls-port", config.tls.port, socket.SOCK_STREAM, interface))
    udp = config.udp_port if config.udp_port is not None else config.port
    checks.append(("--udp-port" if config.udp_port is not None else "--port (UDP)", udp,
                   socket.SOCK_DGRAM, interface))
    if config.metrics_port:
        checks.append(("--metrics-port", config.metrics_port, socket.SOCK_STREAM,
                       config.metrics_interface))
    for option, port, kind, host in checks:
        if port:
            check_port(option, port, kind, host)


def check_port(option: str, port: int, kind: int, host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as error:
        raise StartupError(port_problem(option, port, host, error)) from None


def port_problem(option: str, port: int, host: str, error: OSError) -> str:
    """One line for a port that cannot be bound."""
    where = f"{host or '*'}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (f"{option} {port}: {where} is already in use (another server still"
                f" running?); stop that program or choose another {option.split()[0]}")
    if error.errno in (errno.EACCES, errno.EPERM):
        return (f"{option} {port}: permission denied for {where}; ports below 1024 need"
                " CAP_NET_BIND_SERVICE (AmbientCapabilities= in the systemd unit), or"
                " choose a port above 1023")
    if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(
            error, socket.gaierror):
        interface = "--metrics-interface" if option == "--metrics-port" else "--interface"
        return (f"{interface} {host}: not an address of this machine ({error.strerror});"
                f" give one of its addresses, or leave {interface} empty")
    return f"{option} {port}: cannot listen on {where} ({error.strerror or error})"


def describe(exc: BaseException, config: ServerConfig) -> str | None:
    """The one line for an error of the asynchronous start, or None for a bug."""
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, TlsConfigError):
        return f"--tls-cert/--tls-key: {exc}"
    if isinstance(exc, CannotListenError):
        port = exc.port
        option = {config.tls.port: "--tls-port", config.metrics_port: "--metrics-port"
                  }.get(port, "--port") if port else "--port"
        cause = exc.socketError
        if isinstance(cause, OSError):
            return port_problem(option, port, exc.interface, cause)
        return f"{option} {port}: cannot listen ({cause})"
    if isinstance(exc, db.DatabaseTooNew):
        return f"--data-dir: {exc}"
    if isinstance(exc, Unavailable):
        return f"--database: {exc}; start the database or fix --database"
    if isinstance(exc, sqlite3.Error):
        return f"--data-dir: the database {config.database_path} failed: {exc}"
    if isinstance(exc, OSError):
        name = f" {exc.filename}" if exc.filename else ""
        return f"--data-dir:{name} {exc.strerror or exc}; check the data dir's permissions"
    if isinstance(exc, ValueError):
        return str(exc)
    return None
