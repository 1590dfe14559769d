"""Helpers for the messaging, presence, broadcast and admin tests: a server with several
real clients, logins and reconnects, and looks at the database through the server's own
store (off the reactor thread)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task

from messenger.server.config import LimitsConfig
from tests.support import jimclient
from tests.support.server import start_server

PASSWORD = "correct horse"


def no_limits() -> LimitsConfig:
    """Rate limits off: tests log in many users and send many requests (and bad ones)
    from 127.0.0.1."""
    return LimitsConfig(connections_per_minute=0, connections_per_minute_network=0,
                        logins_per_minute=0, logins_per_minute_network=0,
                        requests_per_second=0, request_burst=0, bad_requests_per_second=0,
                        stored_bytes_per_day=0)


@defer.inlineCallbacks
def server_with(testcase: Any, *names: str, **overrides: Any) -> Any:
    """A server and one registered, logged-in client per name: (server, [clients])."""
    overrides.setdefault("limits", no_limits())
    server = yield start_server(testcase, **overrides)
    clients = []
    for name in names:
        client, reply = yield jimclient.register(testcase, server.tcp_port, name)
        testcase.assertEqual(reply["response"], 201, reply)
        clients.append(client)
    return server, clients


@defer.inlineCallbacks
def login(testcase: Any, server: Any, name: str, password: str = PASSWORD) -> Any:
    """A new connection logged in as ``name`` (waits until an old session is gone)."""
    yield wait_until(lambda: not online(server, name))
    client = yield jimclient.connect(testcase, server.tcp_port)
    reply = yield client.request("authenticate",
                                 user={"account_name": name, "password": password})
    testcase.assertEqual(reply["response"], 200, reply)
    return client


@defer.inlineCallbacks
def drop(client: Any) -> Any:
    """Cut the connection abruptly from the client side (no quit, an RST)."""
    client.transport.abortConnection()
    yield client.closed


@defer.inlineCallbacks
def quit_(client: Any) -> Any:
    reply = yield client.request("quit")
    yield client.closed
    return reply


def online(server: Any, name: str) -> bool:
    ref = server.ctx.directory.cached(name)
    return ref is not None and server.ctx.router.is_online(ref.id)


@defer.inlineCallbacks
def wait_until(predicate: Any, timeout: float = 5.0, step: float = 0.01) -> Any:
    """Poll ``predicate`` (a callable, or one returning a Deferred) until it is true."""
    waited = 0.0
    while True:
        value = predicate()
        if isinstance(value, defer.Deferred):
            value = yield value
        if value:
            return value
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        yield task.deferLater(reactor, step, lambda: None)
        waited += step


def count(server: Any, table: str, where: str = "", *args: Any) -> defer.Deferred:
    """Rows in a table (optionally filtered), read through the server's reader pool."""
    def count_txn(txn: Any) -> int:
        txn.execute(f"SELECT COUNT(*) FROM {table} {where}", args)
        return txn.fetchone()[0]
    return server.db.read(count_txn)


def rows(server: Any, sql: str, *args: Any) -> defer.Deferred:
    def rows_txn(txn: Any) -> list[tuple[Any, ...]]:
        txn.execute(sql, args)
        return [tuple(row) for row in txn.fetchall()]
    return server.db.read(rows_txn)


TABLES = ("users", "contacts", "blocks", "messages", "broadcasts", "premium_codes", "audit_log",
          "resume_tokens", "chat_groups", "group_members", "read_markers", "uploads", "files",
          "blobs", "receipts", "message_changes")


@defer.inlineCallbacks
def snapshot(server: Any) -> Any:
    """Row counts of every table that a request could write to."""
    counts = {}
    for table in TABLES:
        counts[table] = yield count(server, table)
    return counts


def barrier(client: Any) -> defer.Deferred:
    """A round trip on ``client``'s connection. The server writes to one connection in
    order, so once this reply is in, every push it wrote to ``client`` before answering
    has arrived too: for checks that a push did *not* come, made after the request that
    would have caused it was answered (no waiting for a fixed time)."""
    return client.request("get_contacts")
