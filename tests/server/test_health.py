"""/health: 200 while the node takes logins, 503 with the reason when its store fails."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from tests.server.people import server_with
from tests.support.httpget import get
from tests.support.twistd_server import TwistdServer, free_port, wait_for


class HealthTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def health(self, port: int) -> Any:
        status, body = yield get(f"http://127.0.0.1:{port}/health")
        return status, json.loads(body)

    @defer.inlineCallbacks
    def test_ok_then_database_file_gone(self) -> Any:
        """200 while the store answers; 503 naming the store once the database file is
        moved away, though the pool's open connections still work."""
        port = free_port()
        server, _ = yield server_with(self, "alice", metrics_port=port)
        status, body = yield self.health(port)
        self.assertEqual((status, body), (200, {"status": "ok"}))
        path = server.config.database_path
        path.rename(path.with_name("moved.sqlite"))
        self.addCleanup(lambda: path.with_name("moved.sqlite").rename(path))
        status, body = yield self.health(port)
        self.assertEqual(status, 503)
        self.assertEqual(body["status"], "unavailable")
        self.assertIn("store", body["reason"])

    @defer.inlineCallbacks
    def test_store_that_does_not_answer_within_a_second(self) -> Any:
        """With every reader connection busy, the check gives up after 1 s: 503."""
        port = free_port()
        server, _ = yield server_with(self, metrics_port=port)
        release = threading.Event()
        self.addCleanup(release.set)
        started = threading.Semaphore(0)

        def hold(txn: Any) -> None:
            started.release()
            release.wait(20)
        held = [server.db.read(hold) for _ in range(2)]
        for _ in held:
            yield threads.deferToThread(started.acquire)
        began = reactor.seconds()
        status, body = yield self.health(port)
        self.assertEqual(status, 503)
        self.assertIn("did not answer within 1 s", body["reason"])
        self.assertLess(reactor.seconds() - began, 5.0)
        release.set()
        yield defer.gatherResults(held)
        status, _ = yield self.health(port)
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_stopping_server_is_unavailable(self) -> Any:
        """A server that is stopping answers 503 (the load balancer moves on)."""
        from messenger.server.health import HealthCheck
        server, _ = yield server_with(self)
        check = HealthCheck(server, reactor)
        yield server.stop()
        healthy, reason = yield check.check()
        self.assertFalse(healthy)
        self.assertIn("stopping", reason)


class _UnprivilegedServer(TwistdServer):
    """The real server as a twistd child without root's power over file permissions
    (what a dedicated service user has): CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH are
    taken from its bounding set, so a file of mode 000 is unreadable to it."""

    def args(self) -> list[str]:
        return ["/usr/bin/setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                *super().args()]


class UnreadableDatabaseTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_unreadable_database_file(self) -> Any:
        """Tried as an operator would: the SQLite file is made unreadable (chmod 000)
        under a running server, /health turns 503; readable again, 200."""
        metrics_port = free_port()
        server = _UnprivilegedServer(Path(self.mktemp()), ("--metrics-port",
                                                           str(metrics_port)))
        self.addCleanup(server.stop)
        yield server.start()
        yield wait_for(lambda: "Metrics on http" in server.log_path.read_text(),
                       what="the metrics listener")
        status, _ = yield get(f"http://127.0.0.1:{metrics_port}/health")
        self.assertEqual(status, 200)
        database = server.data_dir / "messenger.sqlite"
        database.chmod(0)
        status, body = yield get(f"http://127.0.0.1:{metrics_port}/health")
        self.assertEqual(status, 503)
        self.assertIn("store", json.loads(body)["reason"])
        database.chmod(0o600)
        status, _ = yield get(f"http://127.0.0.1:{metrics_port}/health")
        self.assertEqual(status, 200)
