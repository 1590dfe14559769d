"""The bystander's own process: ``python -m tests.support.bystander ARGS_JSON``.

Logs in the watching users (`tests.support.abuse.Watch`), prints ``ready``, runs the two
loops until its standard input closes, then prints one JSON line of latencies (seconds)
and failures and exits. Run by `tests.support.abuse.Bystander`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import defer, reactor, stdio
from twisted.internet.protocol import Protocol

from tests.support.abuse import Watch


class _Shim:
    """What the test-client helpers need of a test case."""

    def __init__(self) -> None:
        self.cleanups: list[Any] = []

    def addCleanup(self, fn: Any, *args: Any) -> None:
        self.cleanups.append((fn, args))


class _Stdin(Protocol):
    def __init__(self, closed: defer.Deferred[None]) -> None:
        self.closed_ = closed

    def connectionLost(self, reason: Any = None) -> None:
        if not self.closed_.called:
            self.closed_.callback(None)


@defer.inlineCallbacks
def main(args: dict[str, Any]) -> Any:
    kwargs = {"suites": tuple(args["suites"])} if args.get("suites") else {}
    watch = Watch(_Shim(), args["port"], args["reader"], args["login"], args["period"],
                  args["login_every"], args.get("bind"), **kwargs)
    stdin_closed: defer.Deferred[None] = defer.Deferred()
    stdio.StandardIO(_Stdin(stdin_closed))
    yield watch.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    yield stdin_closed
    yield watch.stop()
    sys.stdout.write(json.dumps({
        "requests": watch.requests.samples, "request_failures": watch.requests.failures,
        "logins": watch.logins.samples, "login_failures": watch.logins.failures}) + "\n")
    sys.stdout.flush()


def run() -> None:
    outcome: list[int] = [0]

    def failed(failure: Any) -> None:
        sys.stdout.write(f"bystander failed: {failure.getTraceback()}\n")
        outcome[0] = 1

    d = main(json.loads(sys.argv[1]))
    d.addErrback(failed)
    d.addBoth(lambda _: reactor.stop())
    reactor.run()
    sys.exit(outcome[0])


if __name__ == "__main__":
    run()
