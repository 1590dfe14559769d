"""The test services themselves: a real Redis and a real HAProxy start on free loopback
ports, do their job, and are gone (by PID) when stopped; PostgreSQL gives each test its
own database (tests.support.services)."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import defer, protocol, reactor, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial import unittest

from tests.support import services


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(self.factory.name + b":" + data)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo

    def __init__(self, name):
        self.name = name


class Asker(protocol.Protocol):
    """Sends one line, collects the answer until the connection closes or it arrives."""

    def __init__(self):
        self.answer = defer.Deferred()
        self.received = b""

    def connectionMade(self):
        self.transport.write(b"ping")

    def dataReceived(self, data):
        self.received += data
        if b":" in self.received and not self.answer.called:
            self.answer.callback(self.received)
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.answer.called:
            self.answer.errback(reason)


@defer.inlineCallbacks
def ask(port):
    asker = Asker()
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), asker)
    answer = yield asker.answer.addTimeout(10, reactor)
    return answer


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class RedisTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_start_ping_kill(self):
        """Redis answers PING on its own port; SIGKILL by PID ends it."""
        redis = yield services.start_service(self, services.RedisServer(Path(self.mktemp())))
        self.assertTrue(services.ping_redis(redis.port))
        self.assertTrue(redis.url.startswith("redis://127.0.0.1:"))
        pid = redis.pid
        yield redis.kill()
        self.assertFalse(services.ping_redis(redis.port))
        self.assertFalse(alive(pid))


class HAProxyTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_spreads_and_routes_around_a_dead_backend(self):
        """HAProxy in TCP mode reaches both backends in turn; once one stops listening,
        its health check fails and every connection goes to the other."""
        ports = {}
        for name in (b"a", b"b"):
            listener = reactor.listenTCP(0, EchoFactory(name), interface="127.0.0.1")
            self.addCleanup(listener.stopListening)
            ports[name] = listener
        proxy = yield services.start_service(self, services.HAProxy(
            Path(self.mktemp()), [("a", ports[b"a"].getHost().port),
                                  ("b", ports[b"b"].getHost().port)], check_ms=100))
        answers = set()
        for _ in range(4):
            answer = yield ask(proxy.port)
            answers.add(answer.split(b":")[0])
        self.assertEqual(answers, {b"a", b"b"})
        yield ports[b"a"].stopListening()
        answers = []

        @defer.inlineCallbacks
        def only_b():
            answers[:] = []
            for _ in range(4):
                try:
                    answer = yield ask(proxy.port)
                except Exception:
                    return False
                answers.append(answer.split(b":")[0])
            return set(answers) == {b"b"}
        yield wait_until_async(only_b)
        pid = proxy.pid
        yield proxy.stop()
        self.assertFalse(alive(pid))


@defer.inlineCallbacks
def wait_until_async(condition, timeout=20.0):
    deadline = reactor.seconds() + timeout
    while not (yield condition()):
        if reactor.seconds() > deadline:
            raise AssertionError("condition not met")


class PostgresTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_each_test_gets_its_own_database(self):
        """Two fresh databases are separate; the shared cluster's postgres is our child
        and runs as the postgres user."""
        first = yield services.fresh_database(self)
        second = yield services.fresh_database(self)
        self.assertNotEqual(first, second)
        cluster = yield services.shared_postgres()
        cluster.execute("INSERT INTO audit_log (time, actor, action) VALUES (1, 'a', 'b')",
                        first.rsplit("/", 1)[1])
        connection = cluster.connect(second.rsplit("/", 1)[1])
        self.addCleanup(connection.close)
        cursor = connection.cursor()
        cursor.execute("SELECT COUNT(*) FROM audit_log")
        self.assertEqual(cursor.fetchone()[0], 0)
        self.assertTrue(alive(cluster.pid))

    @defer.inlineCallbacks
    def test_databases_are_emptied_for_the_next_test(self):
        """A database left at the migrated shape is emptied (ids start at 1 again) and
        handed out again; one whose shape a test changed is dropped."""
        cluster = yield services.shared_postgres()
        kept = "reuse_kept"
        changed = "reuse_changed"
        for name in (kept, changed):
            yield threads.deferToThread(services._create, cluster, name, True)
        cluster.execute("INSERT INTO audit_log (time, actor, action) VALUES (1, 'a', 'b')",
                        kept)
        cluster.execute("CREATE TABLE extra (x INTEGER)", changed)
        for name in (kept, changed):
            yield threads.deferToThread(services._recycle, cluster, name, True)
        self.assertIn(kept, cluster.free_databases)
        self.assertNotIn(changed, cluster.free_databases)
        cluster.execute("INSERT INTO audit_log (time, actor, action) VALUES (1, 'a', 'b')",
                        kept)
        connection = cluster.connect(kept)
        self.addCleanup(connection.close)
        cursor = connection.cursor()
        cursor.execute("SELECT id FROM audit_log")
        self.assertEqual(cursor.fetchall(), [(1,)])
        cursor.execute("SELECT COUNT(*) FROM pg_database WHERE datname = %s", (changed,))
        self.assertEqual(cursor.fetchone()[0], 0)
        cluster.free_databases.remove(kept)
        yield threads.deferToThread(services._recycle, cluster, kept, True)
