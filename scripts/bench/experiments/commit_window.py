"""twistd with a group-commit collection window (bench experiment only): when the writer is
idle, the first queued row waits up to BENCH_WINDOW_MS for company before the transaction."""
import os
import sys

from twisted.internet import reactor

from messenger.store.groupcommit import GroupCommit

DELAY = float(os.environ.get("BENCH_WINDOW_MS", "2")) / 1000


def submit(self, item, done):
    self._items.append(item)
    self._tokens.append(done)
    if not self._busy and getattr(self, "_window", None) is None:
        self._window = reactor.callLater(DELAY, _fire, self)


def _fire(self):
    self._window = None
    if not self._busy and self._items:
        self._start()


GroupCommit.submit = submit
from twisted.scripts.twistd import run  # noqa: E402

sys.exit(run())
