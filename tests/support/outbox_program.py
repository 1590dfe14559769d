"""A client program for the outbox restart test: the client core in its own process.

``python -m tests.support.outbox_program PORT CONFIG_DIR queue TEXT...`` starts the saved
login of the config dir against a server that does not answer, queues the texts to bob,
waits until the outbox is on disk, prints ``QUEUED <request ids>`` and waits to be
killed. ``... deliver`` starts the saved login again and prints ``DELIVERED <msg ids>``
once its outbox is empty, then stops cleanly.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import defer, reactor, task

from messenger.client import reconnect
from messenger.client.core import MessengerClient
from messenger.client.events import State
from tests.support.server import SECRET


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@defer.inlineCallbacks
def until(condition, step: float = 0.02):
    while not condition():
        yield task.deferLater(reactor, step, lambda: None)


@defer.inlineCallbacks
def main(port: int, config: Path, mode: str, texts: list[str]):
    client = MessengerClient("127.0.0.1", port, SECRET, config_dir=config,
                             backoff=reconnect.backoff_policy(0.05, 0.2))
    acked = []
    client.subscribe("state", lambda state: sys.stderr.write(f"state: {state}\n"))
    client.subscribe("message_status", lambda entry: entry.msg_id is not None and
                     acked.append(entry.msg_id))
    client.start(fail_fast=False).addErrback(lambda _: None)
    if mode == "queue":
        yield until(lambda: client.state.name == State.RECONNECTING)
        entries = [client.queue_message("bob", text) for text in texts]
        yield client.outbox_saved()
        say("QUEUED " + " ".join(entry.request_id for entry in entries))
        return                                   # ... and wait to be killed
    yield until(lambda: client.state.name == State.ONLINE and not client.pending_messages())
    yield client.stop()
    say("DELIVERED " + " ".join(str(msg_id) for msg_id in acked))
    reactor.stop()


if __name__ == "__main__":
    port, config, mode, *rest = sys.argv[1:]
    reactor.callWhenRunning(main, int(port), Path(config), mode, rest)
    reactor.run()
