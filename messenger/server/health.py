"""``/health`` for load balancers: 200 when this node can take logins, 503 and why if not.

The node is healthy when

* it has started and is not stopping (its client port listens), and
* its store answers a query within `STORE_TIMEOUT` (1 s) through the server's own reader
  pool, and, for SQLite, the database file still opens and reads as one: the pool's
  connections were opened at start and keep working on a file that has since been
  made unreadable, deleted or replaced, which the next restart, backup or new
  connection would not survive.

The answer is a small JSON object: ``{"status": "ok"}`` or
``{"status": "unavailable", "reason": "..."}`` with HTTP 503. Each check runs its
queries off the reactor thread (adbapi and the reactor's thread pool).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.web import resource, server

STORE_TIMEOUT = 1.0


def _probe_txn(txn: Any) -> None:
    txn.execute("SELECT 1")
    txn.fetchall()


def _probe_file(path: Any) -> None:
    """Open the SQLite file anew and read its header (blocking).

    Plain ``open``, not sqlite3: SQLite keeps and reuses the descriptors of a file that
    is open elsewhere in the process, so a new sqlite3 connection would not notice.
    """
    with open(path, "rb") as handle:
        header = handle.read(16)
    if header and header != b"SQLite format 3\x00":
        raise ValueError(f"{path} is not an SQLite database")


def within(d: defer.Deferred[Any], seconds: float, clock: Any,
           what: str) -> defer.Deferred[Any]:
    """A Deferred that fires like ``d``, or fails with TimeoutError after ``seconds``.

    ``d`` itself is left alone (adbapi's Deferreds cannot be cancelled): its late result
    is simply ignored.
    """
    result: defer.Deferred[Any] = defer.Deferred()
    timer = clock.callLater(seconds, lambda: result.called or result.errback(
        TimeoutError(f"{what} did not answer within {seconds:g} s")))

    def done(outcome: Any) -> None:
        if timer.active():
            timer.cancel()
        if not result.called:
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)
    d.addBoth(done)
    return result


class HealthCheck:
    """Decides whether ``server`` (a `MessengerServer`) is healthy now."""

    def __init__(self, server_: Any, clock: Any, timeout: float = STORE_TIMEOUT) -> None:
        self.server = server_
        self.clock = clock
        self.timeout = timeout

    @defer.inlineCallbacks
    def check(self) -> Any:
        """Fires with (healthy, reason); reason is "" when healthy."""
        srv = self.server
        if srv.ctx is None or srv.port is None or srv.db is None:
            return False, "the server is starting or stopping"
        database = srv.db
        try:
            yield within(database.read(_probe_txn), self.timeout, self.clock, "the store")
            if database.engine.name == "sqlite":
                yield within(threads.deferToThreadPool(
                    self.clock, self.clock.getThreadPool(), _probe_file, database.path),
                    self.timeout, self.clock, "the database file")
        except Exception as error:
            return False, f"store: {error}"
        return True, ""


class HealthResource(resource.Resource):
    isLeaf = True

    def __init__(self, check: HealthCheck) -> None:
        super().__init__()
        self._check = check

    def render_GET(self, request: Any) -> Any:  # noqa: N802
        d = self._check.check()
        d.addCallback(self._answer, request)
        d.addErrback(lambda f: self._answer((False, f"health check failed: {f.value}"),
                                            request))
        return server.NOT_DONE_YET

    @staticmethod
    def _answer(outcome: tuple[bool, str], request: Any) -> None:
        healthy, reason = outcome
        body = {"status": "ok"} if healthy else {"status": "unavailable", "reason": reason}
        request.setResponseCode(200 if healthy else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if not request.finished and not getattr(request, "_disconnected", False):
            request.write(json.dumps(body).encode() + b"\n")
            request.finish()
