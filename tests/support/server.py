"""Start a real Messenger server in-process for a test: real TCP on loopback, a real
SQLite file (or a fresh PostgreSQL database), a fresh data dir under the test's temp dir.

A test class chooses PostgreSQL with ``store_engine = "postgres"`` (the
`tests.support.services.OnPostgres` mixin), so ``class FooTestsOnPostgres(OnPostgres,
FooTests): pass`` runs every test of ``FooTests`` again on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor

from messenger.server.config import ServerConfig
from messenger.server.service import MessengerServer
from messenger.wire import keys
from tests.support import services
from tests.support.keys import rsa_key

SECRET = b"test-shared-secret"


def test_config(data_dir: Path, **overrides: Any) -> ServerConfig:
    """A config for tests: port 0 on loopback, cheap password hashing, a known secret."""
    data_dir.mkdir(parents=True, exist_ok=True)
    secret_file = data_dir / "secret"
    if not secret_file.exists():
        secret_file.write_bytes(SECRET + b"\n")
    if not (data_dir / "server_key.pem").exists():
        keys.write_private_key(data_dir / "server_key.pem", rsa_key("server", 2048))
    config = ServerConfig(port=0, interface="127.0.0.1", data_dir=data_dir, scrypt_n=2**4,
                          rsa_bits=2048, udp_port=0)
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise AttributeError(f"ServerConfig has no {name}")
        setattr(config, name, value)
    return config


@defer.inlineCallbacks
def start_server(testcase: Any, mailer: Any = None, **overrides: Any) -> Any:
    """Start a server for ``testcase`` (stopped in cleanup); fires with the MessengerServer.

    On the engine the test class asks for (``store_engine``: "sqlite", the default, or
    "postgres", which gets a fresh database unless ``database`` is given)."""
    data_dir = Path(testcase.mktemp()) / "data"
    if getattr(testcase, "store_engine", "sqlite") == "postgres" and "database" not in overrides:
        overrides["database"] = yield services.fresh_database(testcase)
    config = test_config(data_dir, **overrides)
    server = MessengerServer(config, reactor, mailer=mailer)
    yield server.start()
    testcase.addCleanup(server.stop)
    return server
