"""Cluster nodes for tests: in-process `MessengerServer`s sharing a fresh PostgreSQL
database and the test process's Redis (tests.support.services), each with its own data
dir holding the same shared secret and server key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor

from messenger.server.config import ClusterConfig
from messenger.server.service import MessengerServer
from tests.server.people import no_limits
from tests.support import jimclient, services
from tests.support.server import test_config


@defer.inlineCallbacks
def start_nodes(testcase: Any, names: tuple[str, ...] = ("a", "b"),
                database: str | None = None, redis: str | None = None,
                **overrides: Any) -> Any:
    """Start one node per name (stopped in cleanup); fires with the MessengerServers."""
    if database is None:
        database = yield services.fresh_database(testcase)
    if redis is None:
        redis = yield services.fresh_redis(testcase)
    base = Path(testcase.mktemp())
    overrides.setdefault("limits", no_limits())
    nodes = []
    for name in names:
        config = test_config(base / name / "data", database=database, **overrides)
        config.cluster = ClusterConfig(redis=redis, node_name=name,
                                       relay_address=f"127.0.0.{len(nodes) + 1}:4{len(nodes)}00")
        server = MessengerServer(config, reactor)
        yield server.start()
        testcase.addCleanup(server.stop)
        nodes.append(server)
    return nodes


@defer.inlineCallbacks
def user_on(testcase: Any, node: Any, name: str, register: bool = True) -> Any:
    """A client of ``node`` registered (or logged in) as ``name``."""
    client = yield jimclient.connect(testcase, node.tcp_port)
    if register:
        reply = yield client.request("register", **jimclient.new_user(name))
        testcase.assertEqual(reply["response"], 201, reply)
    else:
        reply = yield client.request("authenticate", user={
            "account_name": name, "password": "correct horse"})
        testcase.assertEqual(reply["response"], 200, reply)
    return client


@defer.inlineCallbacks
def wait_until(condition: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    result = yield services.wait_until(condition, timeout, what)
    return result
